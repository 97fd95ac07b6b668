"""bookrec recommend USER / bookrec similar BOOK."""

from __future__ import annotations

from typing import Any

import typer

from bookrec.commands.common import load_settings, repository


def _table(title: str, rows: list[dict[str, Any]], with_strategies: bool) -> None:
    from rich.table import Table

    from bookrec import console

    table = Table(title=title, title_justify="left", box=None, pad_edge=False, header_style="bold")
    for column in ("#", "book", "title", "authors", "score"):
        table.add_column(column, overflow="fold")
    if with_strategies:
        table.add_column("strategies")
    for row in rows:
        cells = [
            str(row["rank"]),
            row["book"],
            row["title"],
            row["authors"] or "",
            f"{row['score']:.3f}",
        ]
        if with_strategies:
            cells.append(",".join(row["strategies"]))
        table.add_row(*cells)
    console.stdout.print(table, markup=False)


def recommend(
    ctx: typer.Context,
    user: str = typer.Argument(..., help="External id of the user."),
    k: int = typer.Option(10, "--k", min=1, help="How many books."),
    strategy: str = typer.Option(
        "hybrid", "--strategy", help="hybrid, cf, gnn, content or popular."
    ),
    include_seen: bool = typer.Option(
        False, "--include-seen", help="Keep books the user already interacted with."
    ),
    recent_days: float = typer.Option(
        None, "--recent-days", help="Popularity over the last N days only."
    ),
    json_output: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Recommendations for a user, as the serving API's /recommend would answer."""
    from bookrec import console
    from bookrec.services.recommend import recommend as run

    settings = load_settings(ctx)
    with repository(settings) as repo:
        result = run(
            repo, settings, user, k=k, strategy=strategy, include_seen=include_seen,
            recent_days=recent_days,
        )  # fmt: skip
    if json_output:
        console.print_json(result)
        return
    title = (
        f"{strategy} recommendations for {user} ({result['interactions']} interactions;"
        f" strategies: {', '.join(result['strategies_used'])})"
    )
    _table(title, result["recommendations"], with_strategies=True)


def similar(
    ctx: typer.Context,
    book: str = typer.Argument(..., help="External id of the book."),
    space: str = typer.Option("content", "--space", help="cf, gnn or content."),
    k: int = typer.Option(10, "--k", min=1, help="How many books."),
    json_output: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Nearest books by cosine in one vector space."""
    from bookrec import console
    from bookrec.services.recommend import similar as run

    settings = load_settings(ctx)
    with repository(settings) as repo:
        result = run(repo, book, space=space, k=k)
    if json_output:
        console.print_json(result)
        return
    _table(f"books similar to {result['title']} ({space})", result["similar"], False)
