"""bookrec demo: the whole pipeline on the embedded default, offline, in one command."""

from __future__ import annotations

from typing import Any

import typer

from bookrec.commands.common import load_settings, phases, repository, state


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
    from bookrec import console
    from bookrec.services.demo import run_demo

    if database_url:
        state(ctx).database_url = database_url
    settings = load_settings(ctx)
    with (
        repository(settings, create=True, require_schema=False) as repo,
        phases(ctx, json_output) as progress,
    ):
        result = run_demo(repo, settings, progress, users=users, seed=seed, force=force)
        where = repo.url.masked
    if json_output:
        console.print_json(result)
        return
    _render(result, where)


def _render(result: dict[str, Any], where: str) -> None:
    from bookrec import console
    from bookrec.commands.recommend import _table
    from bookrec.commands.status import _render as render_status

    out = console.stdout
    out.print(result["attribution"], markup=False, highlight=False)
    out.print(result["synthetic"], markup=False, highlight=False)
    out.print(f"\nDemo database: {where} ({result['seconds']:.0f}s)\n", markup=False)
    render_status(result["status"])
    for user, strategies in result["recommendations"].items():
        for strategy, rows in strategies.items():
            _table(f"\n{strategy} recommendations for {user}", rows, with_strategies=True)
    for spaces in result["similar"].values():
        for space, rows in spaces.items():
            if space != "title":
                _table(f"\nbooks similar to {spaces['title']} ({space})", rows, False)
    out.print(
        f"\nTry: bookrec --database-url '{where}' recommend u00004", markup=False, highlight=False
    )
