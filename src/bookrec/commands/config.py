"""bookrec config: the effective settings and where each came from."""

from __future__ import annotations

import typer

from bookrec.commands.common import load_settings, output, state


def config(
    ctx: typer.Context,
    json_output: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Print the effective settings and the source of each (option, env, .env, tuned, default)."""
    from dataclasses import asdict

    from bookrec.dburl import mask_url
    from bookrec.results import ConfigRow
    from bookrec.settings import database_url, setting_sources

    settings = _with_tuning(load_settings(ctx))
    rows = []
    for key, source in setting_sources(state(ctx).overrides, settings.tuned_sources()).items():
        section, name = key.split(".")
        value = getattr(getattr(settings, section), name)
        if key == "database.url":
            value = mask_url(database_url(settings))
            if source == "default":
                source = "default (embedded SQLite)"
        rows.append(ConfigRow(key, value, source))
    if json_output:
        output([asdict(row) for row in rows], True, "")
        return
    from rich.table import Table

    from bookrec import console

    table = Table("setting", "value", "source", box=None, pad_edge=False)
    for row in rows:
        table.add_row(row.setting, str(row.value), row.source)
    console.stdout.print(table)


def _with_tuning(settings):
    """The settings with the database's tuned values, when the database is there to ask (config
    works without one: then there are none)."""
    from bookrec.api import open as open_database
    from bookrec.errors import BookrecError

    try:
        with open_database(settings=settings) as db:
            return db.settings
    except BookrecError:
        return settings
