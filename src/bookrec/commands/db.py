"""bookrec db init / db upgrade: create or migrate the schema (idempotent, versioned)."""

from __future__ import annotations

import typer

from bookrec.commands.common import load_settings, output, repository

app = typer.Typer(help="Create or migrate the database schema.", no_args_is_help=True)


def _migrate(ctx: typer.Context, json_output: bool, *, create: bool) -> None:
    settings = load_settings(ctx)
    with repository(settings, create=create, require_schema=False) as repo:
        before = repo.schema_version()
        if before is None and not create:
            from bookrec.errors import SchemaMissingError

            raise SchemaMissingError()
        applied = repo.migrate()
        after = repo.schema_version()
        where = repo.url.where
    data = {
        "database": where,
        "schema_version_before": before,
        "schema_version": after,
        "applied": [f"{m.version:04d}_{m.name}" for m in applied],
    }
    if applied:
        text = f"{where}: schema at version {after} (applied {', '.join(data['applied'])})"
    else:
        text = f"{where}: schema already at version {after}, nothing to do"
    output(data, json_output, text)


@app.command("init")
def init(
    ctx: typer.Context,
    json_output: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Create the schema (and the SQLite file); applies pending migrations if it exists."""
    _migrate(ctx, json_output, create=True)


@app.command("upgrade")
def upgrade(
    ctx: typer.Context,
    json_output: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Apply the migrations this bookrec has that the database has not."""
    _migrate(ctx, json_output, create=False)
