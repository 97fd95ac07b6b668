"""bookrec demo: the whole pipeline on the embedded default, offline, in one command."""

from __future__ import annotations

import typer

from bookrec.commands import render
from bookrec.commands.common import load_settings, output, session, state


def demo(
    ctx: typer.Context,
    users: int = typer.Option(500, "--users", min=10, max=100_000, help="Synthetic readers."),
    seed: int = typer.Option(42, "--seed", help="Seed of the synthetic interactions."),
    database_url: str = typer.Option(
        None, "--database-url", help="Database to fill (default: the embedded SQLite file)."
    ),
    force: bool = typer.Option(False, "--force", help="Write into a database that holds data."),
    json_output: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Load the bundled goodbooks-10k books, synthetic interactions, train everything, show it."""
    if database_url:
        state(ctx).database_url = database_url
    with session(ctx, load_settings(ctx), create=True, json_output=json_output) as db:
        result = db.demo(users=users, seed=seed, force=force)
    if json_output:
        output(result, True, "")
    else:
        render.demo(result)
