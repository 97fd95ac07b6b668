"""`python -m bookrec` and the `bookrec` program: signal handlers first, then the CLI, so that
Ctrl-C or SIGTERM while its modules load exits quietly with 130 / 143."""


def main() -> None:
    from bookrec import interrupts

    interrupts.install()
    from bookrec.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
