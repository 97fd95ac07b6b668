"""The bookrec command line: global options, the error → exit code edge, the commands."""

from __future__ import annotations

import gc
import os
import sys
from typing import Any

import typer
from typer.core import TyperGroup

from bookrec import __version__
from bookrec.commands.common import AppState
from bookrec.errors import EXIT_FAILED, BookrecError, scrub


class BookrecGroup(TyperGroup):
    """Turns every failure into one line on stderr and a documented exit code."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort):
            raise
        except BookrecError as exc:
            from bookrec.commands.hints import hint_for

            _report(ctx, exc.message, hint_for(exc), exc.details)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            _report(ctx, "interrupted; nothing was changed by the unfinished step", None, [])
            raise typer.Exit(130) from None
        except Exception as exc:
            if _is_click_exception(exc):
                raise
            message = _unexpected_message(exc)
            _report(ctx, message, "run with --debug for the traceback", [])
            raise typer.Exit(EXIT_FAILED) from None


def _is_click_exception(exc: Exception) -> bool:
    return type(exc).__module__.startswith(("click", "typer"))


def _unexpected_message(exc: Exception) -> str:
    try:
        import psycopg
    except ImportError:  # pragma: no cover
        psycopg = None
    if psycopg is not None and isinstance(exc, psycopg.OperationalError):
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"database error: {first}"
    text = str(exc).strip().splitlines()
    return f"unexpected {type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _report(ctx: Any, message: str, hint: str | None, details: list[str]) -> None:
    from bookrec import console

    state = ctx.find_object(AppState)
    if state is not None and state.debug:
        import traceback

        sys.stderr.write(scrub(traceback.format_exc()))
    for line in details:
        console.stderr.print(f"  {scrub(line)}", highlight=False, markup=False)
    console.error(message + (f" ({hint})" if hint else ""))


app = typer.Typer(
    cls=BookrecGroup,
    name="bookrec",
    help="The offline toolkit of a book recommender: load books and interactions, train "
    "CF/graph/content vectors into the recommender's database, check its health.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"bookrec {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    database_url: str | None = typer.Option(
        None,
        "--database-url",
        help="Database to use (overrides BOOKREC_DATABASE_URL); default: embedded SQLite.",
        show_default=False,
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of failures."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """Commands are grouped by job; every reporting command takes --json."""
    ctx.obj = AppState(debug=debug, quiet=quiet, database_url=database_url)
    _prepare_process(ctx.invoked_subcommand)


def _register() -> None:
    from bookrec.commands import (
        config,
        db,
        demo,
        embed,
        evaluate,
        ingest,
        recommend,
        status,
        train,
    )

    app.add_typer(db.app, name="db")
    app.add_typer(ingest.app, name="ingest")
    app.add_typer(train.app, name="train")
    app.command("embed")(embed.embed)
    app.command("status")(status.status)
    app.command("recommend")(recommend.recommend)
    app.command("similar")(recommend.similar)
    app.command("evaluate")(evaluate.evaluate)
    app.command("demo")(demo.demo)
    app.command("config")(config.config)


_register()


# Commands that answer one question and exit; they keep main()'s start-up settings to the end.
QUICK_COMMANDS = frozenset({"recommend", "similar"})
_owns_process = False


def main() -> None:
    """The `bookrec` program: the CLI, with settings for the whole process."""
    global _owns_process
    _owns_process = True
    # Start-up creates ~75,000 long-lived objects (modules, classes, schemas); each collection
    # while they pile up scans them again, and so does the one at interpreter exit unless they
    # are frozen: together about a fifth of a recommend.
    gc.disable()
    # pydantic looks for plugins in every installed package's entry points at its first model
    # (~25 ms of each command); bookrec uses none. An explicit setting still wins.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    try:
        app(prog_name="bookrec")
    finally:
        gc.freeze()


def _prepare_process(command: str | None) -> None:
    """Once the command is known, before it imports numpy: a quick command keeps the cyclic
    GC off and BLAS on one thread (OpenBLAS starts a thread per core at import, which spins
    for ~0.14 s of CPU; a one-user answer has no matrix product worth a second thread). Every
    other command gets the GC back, and all cores."""
    if not _owns_process:
        return
    if command in QUICK_COMMANDS:
        if "numpy" not in sys.modules:
            os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        return
    gc.freeze()
    gc.enable()
