"""bookrec db init / db upgrade: create or migrate the schema (idempotent, versioned)."""

from __future__ import annotations

import typer

from bookrec.commands import render
from bookrec.commands.common import load_settings, output, session

app = typer.Typer(help="Create or migrate the database schema.", no_args_is_help=True)
JSON = typer.Option(False, "--json", help="Machine-readable output.")


@app.command("init")
def init(ctx: typer.Context, json_output: bool = JSON) -> None:
    """Create the schema (and the SQLite file); applies pending migrations if it exists."""
    with session(ctx, load_settings(ctx), create=True, json_output=json_output) as db:
        result = db.init()
    output(result, json_output, render.migration(result))


@app.command("upgrade")
def upgrade(ctx: typer.Context, json_output: bool = JSON) -> None:
    """Apply the migrations this bookrec has that the database has not."""
    with session(ctx, load_settings(ctx), json_output=json_output) as db:
        result = db.upgrade()
    output(result, json_output, render.migration(result))
