"""bookrec ingest books / interactions FILE."""

from __future__ import annotations

from pathlib import Path

import typer

from bookrec.commands import render
from bookrec.commands.common import load_settings, output, session

app = typer.Typer(help="Load books or interactions from CSV/JSONL files.", no_args_is_help=True)

FILE = typer.Argument(..., help="CSV or JSONL file (optionally .gz).", show_default=False)
SKIP_INVALID = typer.Option(
    False, "--skip-invalid", help="Load the valid rows; write rejected ones to --rejects."
)
REJECTS = typer.Option(
    None, "--rejects", help="With --skip-invalid: CSV of rejected rows and reasons."
)
JSON = typer.Option(False, "--json", help="Machine-readable output.")


def _check_rejects(skip_invalid: bool, rejects: Path | None) -> None:
    if rejects is not None and not skip_invalid:
        from bookrec.errors import InputError

        raise InputError("--rejects goes with --skip-invalid")


@app.command("books")
def books(
    ctx: typer.Context,
    file: Path = FILE,
    skip_embeddings: bool = typer.Option(
        False, "--skip-embeddings", help="Do not compute content embeddings of new books."
    ),
    skip_invalid: bool = SKIP_INVALID,
    rejects: Path | None = REJECTS,
    json_output: bool = JSON,
) -> None:
    """Load book metadata (goodbooks-10k books.csv or generic CSV/JSONL); upsert by external id."""
    _check_rejects(skip_invalid, rejects)
    with session(ctx, load_settings(ctx), json_output=json_output) as db:
        result = db.ingest_books(
            file, embed=not skip_embeddings, skip_invalid=skip_invalid, rejects=rejects
        )
    output(result, json_output, render.book_ingest(result, file.name))


@app.command("interactions")
def interactions(
    ctx: typer.Context,
    file: Path = FILE,
    skip_invalid: bool = SKIP_INVALID,
    rejects: Path | None = REJECTS,
    json_output: bool = JSON,
) -> None:
    """Load events user_id,book_id,event,rating,timestamp (or goodbooks ratings)."""
    _check_rejects(skip_invalid, rejects)
    with session(ctx, load_settings(ctx), json_output=json_output) as db:
        result = db.ingest_interactions(file, skip_invalid=skip_invalid, rejects=rejects)
    output(result, json_output, render.interaction_ingest(result, file.name))
