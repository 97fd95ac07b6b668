"""What every command needs: the global options, effective settings, an open database
(`bookrec.open()`, with a progress display on a terminal) and output."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from bookrec.api import Bookrec
    from bookrec.settings import Settings


@dataclass
class AppState:
    """The global options, and which settings the command line set (for `config`)."""

    debug: bool = False
    quiet: bool = False
    database_url: str | None = None
    json_output: bool = False  # the command was given --json
    overrides: dict[str, set[str]] = field(default_factory=dict)


def state(ctx: typer.Context) -> AppState:
    found = ctx.find_object(AppState)
    return found if found is not None else AppState()


def load_settings(ctx: typer.Context, section: str | None = None, **overrides: Any) -> Settings:
    """Settings from defaults, .env and environment, with the command's options on top.
    Warns (stderr) about BOOKREC_* variables that are no setting."""
    from pydantic import ValidationError

    from bookrec import console
    from bookrec.errors import InputError
    from bookrec.settings import Settings, unknown_variables, variable_source

    for line in unknown_variables():
        console.warning(line)
    app_state = state(ctx)
    try:
        settings = Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        source = variable_source(*[str(p) for p in first["loc"][:2]]) if "." in where else None
        raise InputError(
            f"bad setting {where}" + (f" ({source})" if source else "") + f": {first['msg']}"
        ) from None
    try:
        if app_state.database_url:
            settings = settings.with_overrides("database", url=app_state.database_url)
            app_state.overrides.setdefault("database", set()).add("url")
        if section:
            settings = settings.with_overrides(section, **overrides)
            given = {k for k, v in overrides.items() if v is not None}
            app_state.overrides.setdefault(section, set()).update(given)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        if section and "." not in where:
            where = f"{section}.{where} (--{where.replace('_', '-')})"
        raise InputError(f"bad setting {where}: {first['msg']}") from None
    return settings


@contextmanager
def session(
    ctx: typer.Context, settings: Settings, *, create: bool = False, json_output: bool = False
) -> Iterator[Bookrec]:
    """The database of the settings, opened through the Python API; long jobs show progress
    bars on a terminal unless --quiet or --json, and what they log (waiting for a lock) on
    stderr unless --quiet."""
    from bookrec.api import open as open_database
    from bookrec.console import make_display, showing_log

    display = make_display(quiet=state(ctx).quiet or json_output)
    try:
        with (
            showing_log(quiet=state(ctx).quiet),
            open_database(settings=settings, create=create, display=display) as db,
        ):
            yield db
    finally:
        if display:
            display.close()


def output(data: Any, json_output: bool, text: str) -> None:
    """`data.to_dict()` (or data) as JSON with --json, else the text line."""
    from bookrec import console

    if json_output:
        console.print_json(data.to_dict() if hasattr(data, "to_dict") else data)
    else:
        console.message(text)
