"""bookrec embed: content embeddings of books."""

from __future__ import annotations

import typer

from bookrec.commands import render
from bookrec.commands.common import load_settings, output, session


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
    settings = load_settings(ctx, "content", model=model, dim=dim, batch_size=batch_size, seed=seed)
    with session(ctx, settings, json_output=json_output) as db:
        result = db.embed(only_missing=only_missing, wait=wait)
    output(result, json_output, render.embedding(result))
