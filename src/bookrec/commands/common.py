"""What every command needs: effective settings, an open repository, progress, output."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from bookrec.progress import Phases
    from bookrec.settings import Settings
    from bookrec.storage.base import Repository


def state(ctx: typer.Context):
    from bookrec.cli import AppState

    found = ctx.find_object(AppState)
    return found if found is not None else AppState()


def load_settings(ctx: typer.Context, section: str | None = None, **overrides: Any) -> Settings:
    """Settings from defaults, .env and environment, with the command's options on top."""
    from pydantic import ValidationError

    from bookrec.errors import InputError
    from bookrec.settings import Settings

    app_state = state(ctx)
    try:
        settings = Settings()
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
def repository(
    settings: Settings, *, create: bool = False, require_schema: bool = True
) -> Iterator[Repository]:
    from bookrec.settings import database_url
    from bookrec.storage import open_repository

    repo = open_repository(
        database_url(settings), create=create, connect_timeout=settings.database.connect_timeout
    )
    try:
        if require_schema:
            repo.require_schema()
        yield repo
    finally:
        repo.close()


@contextmanager
def phases(ctx: typer.Context, json_output: bool = False) -> Iterator[Phases]:
    from bookrec.console import make_display
    from bookrec.progress import Phases

    display = make_display(quiet=state(ctx).quiet or json_output)
    try:
        yield Phases(display)
    finally:
        if display:
            display.close()


def output(data: Any, json_output: bool, text: str) -> None:
    from bookrec import console

    if json_output:
        console.print_json(data)
    else:
        console.message(text)
