"""bookrec recommend USER / bookrec similar BOOK."""

from __future__ import annotations

import typer

from bookrec.commands import render
from bookrec.commands.common import load_settings, output, session


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
    with session(ctx, load_settings(ctx), json_output=json_output) as db:
        result = db.recommend(
            user, k=k, strategy=strategy, include_seen=include_seen, recent_days=recent_days
        )
    if json_output:
        output(result, True, "")
        return
    title = (
        f"{strategy} recommendations for {user} ({result.interactions} interactions;"
        f" strategies: {', '.join(result.strategies_used)})"
    )
    render.book_table(title, result.recommendations, with_strategies=True)
    render.fewer_than_asked(len(result.recommendations), k, f"books {strategy} can rank for {user}")


def similar(
    ctx: typer.Context,
    book: str = typer.Argument(..., help="External id of the book."),
    space: str = typer.Option("content", "--space", help="cf, gnn or content."),
    k: int = typer.Option(10, "--k", min=1, help="How many books."),
    json_output: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Nearest books by cosine in one vector space."""
    with session(ctx, load_settings(ctx), json_output=json_output) as db:
        result = db.similar(book, space=space, k=k)
    if json_output:
        output(result, True, "")
        return
    render.book_table(f"books similar to {result.title} ({space})", result.similar, False)
    render.fewer_than_asked(len(result.similar), k, f"other books with a {space} vector")
