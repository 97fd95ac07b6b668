"""bookrec embed: content embeddings of books."""

from __future__ import annotations

from typing import Any

import typer

from bookrec.commands.common import load_settings, output, phases, repository


def describe(summary: dict[str, Any]) -> str:
    if summary["run_id"] is None:
        return f"content: every book with text already has a vector ({summary['model']})"
    text = (
        f"content run {summary['run_id']}: {summary['embedded']:,} books embedded"
        f" ({summary['model']}, {summary['dim']}-d, {summary['mode']})"
        f", {summary['without_text']:,} without usable text (NULL)"
        f" in {summary['seconds']:.1f}s ({summary['books_per_second']:,} books/s)"
    )
    if summary.get("refit_reason"):
        text += f"; full refit: {summary['refit_reason']}"
    return text


def embed(
    ctx: typer.Context,
    model: str = typer.Option(None, "--model", help="lsa (default, offline) or minilm (extra)."),
    dim: int = typer.Option(None, "--dim", help="lsa vector dimension [default: 128]."),
    only_missing: bool = typer.Option(
        False, "--only-missing", help="Embed only books without a vector, with the stored model."
    ),
    batch_size: int = typer.Option(None, "--batch-size", help="minilm batch size."),
    seed: int = typer.Option(None, "--seed", help="Random seed of the lsa fit."),
    wait: bool = typer.Option(False, "--wait", help="Wait for a running embed."),
    json_output: bool = typer.Option(False, "--json", help="Machine-readable summary."),
) -> None:
    """Content vectors of books from their text → books.content_embedding."""
    from bookrec.services.embed import embed_books

    settings = load_settings(ctx, "content", model=model, dim=dim, batch_size=batch_size, seed=seed)
    with repository(settings) as repo, phases(ctx, json_output) as progress:
        summary = embed_books(repo, settings, progress, only_missing=only_missing, wait=wait)
    output(summary, json_output, describe(summary))
