"""`python -m bookrec` and the `bookrec` program: signal handlers first, then the CLI, so that
Ctrl-C or SIGTERM while its modules load exits quietly with 130 / 143."""


def main() -> None:
    from bookrec import interrupts

    interrupts.install()
    try:
        from bookrec.cli import main as cli_main
    except Exception:
        # A signal while a module is created can surface as another error (a dataclass's
        # "Error calling __set_name__"): exit as the signal asked.
        interrupt = interrupts.raised()
        if interrupt is None:
            raise
        raise SystemExit(interrupts.exit_code(interrupt)) from None

    cli_main()


if __name__ == "__main__":
    main()
