"""The bookrec command line: global options, the error → exit code edge, the commands."""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import sys
from typing import Any

import typer
from typer.core import TyperGroup

from bookrec import __version__, interrupts
from bookrec.commands.common import AppState, state
from bookrec.errors import EXIT_FAILED, BookrecError, scrub


class BookrecGroup(TyperGroup):
    """Turns every failure into one line on stderr and a documented exit code; gives every
    command the global options too (`bookrec train cf --quiet`, as cron lines are written)."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        for command in self.commands.values():
            _add_global_options(command)

    def invoke(self, ctx: Any) -> Any:
        try:
            with interrupts.command():
                result = super().invoke(ctx)
            _note_late_signal()
            return result
        except (typer.Exit, typer.Abort):
            raise
        except KeyboardInterrupt as exc:  # Ctrl-C, and SIGTERM / SIGHUP (bookrec.interrupts)
            _report_interrupt(ctx, exc)
        except Exception as exc:
            if _is_click_exception(exc):
                raise
            interrupt = interrupts.raised()
            if interrupt is not None:  # an error the command or a library made of it
                _report_interrupt(ctx, interrupt)
            if isinstance(exc, BookrecError):
                from bookrec.commands.hints import hint_for

                _report(ctx, exc, exc.message, hint_for(exc), exc.details, exc.exit_code)
                raise typer.Exit(exc.exit_code) from None
            hint = None if state(ctx).debug else "run with --debug for the traceback"
            _report(ctx, exc, _unexpected_message(exc), hint, [], EXIT_FAILED)
            raise typer.Exit(EXIT_FAILED) from None


def _report_interrupt(ctx: Any, exc: KeyboardInterrupt) -> None:
    from bookrec.interrupts import exit_code, signal_name

    what = "interrupted" if exit_code(exc) == 130 else f"stopped by {signal_name(exc)}"
    message = f"{what}; nothing was changed by the unfinished step"
    _report(ctx, exc, message, None, [], exit_code(exc))
    raise typer.Exit(exit_code(exc)) from None


def _note_late_signal() -> None:
    """A signal that came once the command's changes were being committed did not stop it."""
    late = interrupts.late_signal()
    if late is not None:
        import signal

        from bookrec import console

        with contextlib.suppress(OSError):
            console.stderr.print(
                f"note: {signal.Signals(late).name} came after the changes were committed;"
                " the command finished",
                highlight=False, markup=False,
            )  # fmt: skip


def _set_database_url(ctx: typer.Context, value: str | None) -> None:
    if value:
        state(ctx).database_url = value


def _set_debug(ctx: typer.Context, value: bool) -> None:
    if value:
        state(ctx).debug = True


def _set_quiet(ctx: typer.Context, value: bool) -> None:
    if value:
        state(ctx).quiet = True


def _note_json(ctx: Any, param: Any, value: bool) -> bool:
    """--json: an error is also reported as JSON on stdout."""
    if value:
        state(ctx).json_output = True
    return value


DATABASE_URL_HELP = "Database to use (overrides BOOKREC_DATABASE_URL); default: embedded SQLite."
DEBUG_HELP = "Show tracebacks of failures."
QUIET_HELP = "No progress bars."


def _command_options(
    database_url: str | None = typer.Option(
        None,
        "--database-url",
        callback=_set_database_url,
        help=DATABASE_URL_HELP,
        show_default=False,
    ),
    debug: bool = typer.Option(False, "--debug", callback=_set_debug, help=DEBUG_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", callback=_set_quiet, help=QUIET_HELP),
) -> None:
    """The global options as every command takes them; their callbacks set AppState."""


@functools.cache
def _global_options() -> list[Any]:
    """The click options of _command_options, built once: they hold no state of a run, so
    every command can share them (building them per command cost 5 ms of each start)."""
    holder = typer.Typer(add_completion=False)
    holder.command()(_command_options)
    return typer.main.get_command(holder).params


def _add_global_options(command: Any) -> None:
    """Append the global options to a command (every command of a group), and drop their
    values before its function is called: the option callbacks have already applied them."""
    if isinstance(command, TyperGroup):
        for sub in command.commands.values():
            _add_global_options(sub)
        return
    options = _global_options()
    names = {option.name for option in options}
    command.params.extend(options)
    for param in command.params:
        if param.name == "json_output":
            param.callback = _note_json
    inner = command.callback

    @functools.wraps(inner)
    def callback(**values: Any) -> Any:
        return inner(**{k: v for k, v in values.items() if k not in names})

    command.callback = callback


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


def _report(
    ctx: Any,
    exc: BaseException,
    message: str,
    hint: str | None,
    details: list[str],
    code: int,
) -> None:
    """The error as one line on stderr (after its details, and the traceback with --debug);
    with --json also as a JSON object on stdout, where the caller reads."""
    from bookrec import console

    app_state = state(ctx)
    # After a SIGHUP the terminal may be gone: the exit code still tells what happened.
    with contextlib.suppress(OSError):
        if app_state.debug:
            import traceback

            sys.stderr.write(scrub(traceback.format_exc()))
        for line in details:
            console.stderr.print(f"  {scrub(line)}", highlight=False, markup=False)
        console.error(message + (f" ({hint})" if hint else ""))
        if app_state.json_output:
            error = {"type": type(exc).__name__, "message": message, "hint": hint}
            console.print_json({"error": {**error, "details": details, "exit_code": code}})


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
        help=DATABASE_URL_HELP,
        show_default=False,
    ),
    debug: bool = typer.Option(False, "--debug", help=DEBUG_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """Commands are grouped by job; every reporting command takes --json. The global options
    work after the command too."""
    ctx.obj = AppState(debug=debug, quiet=quiet, database_url=database_url)
    _prepare_process(ctx.invoked_subcommand)


def _register() -> None:
    from bookrec.commands import (
        config,
        db,
        demo,
        embed,
        evaluate,
        export,
        ingest,
        recommend,
        status,
        train,
        tune,
    )

    app.add_typer(db.app, name="db")
    app.add_typer(ingest.app, name="ingest")
    app.add_typer(train.app, name="train")
    app.add_typer(export.app, name="export")
    app.command("embed")(embed.embed)
    app.command("status")(status.status)
    app.command("recommend")(recommend.recommend)
    app.command("similar")(recommend.similar)
    app.command("evaluate")(evaluate.evaluate)
    app.command("tune")(tune.tune)
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
    interrupts.install()
    try:
        app(prog_name="bookrec")
    finally:
        gc.freeze()
        interrupts.settle()


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
