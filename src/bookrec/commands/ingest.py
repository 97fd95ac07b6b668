"""bookrec ingest books / interactions FILE."""

from __future__ import annotations

from pathlib import Path

import typer

from bookrec.commands import render
from bookrec.commands.common import load_settings, output, session

app = typer.Typer(
    help="Load books or interactions from CSV/JSONL/Parquet files.", no_args_is_help=True
)

FILE = typer.Argument(
    ..., help="CSV or JSONL file (optionally .gz), or a Parquet file.", show_default=False
)
SKIP_INVALID = typer.Option(
    False, "--skip-invalid", help="Load the valid rows; write rejected ones to --rejects."
)
REJECTS = typer.Option(
    None, "--rejects", help="With --skip-invalid: CSV of rejected rows and reasons."
)
JSON = typer.Option(False, "--json", help="Machine-readable output.")
MAX_ERRORS = typer.Option(
    1000,
    "--max-errors",
    min=0,
    help="Stop reading at the Nth invalid row (exit 2, nothing written); 0: no limit.",
)


def _check_rejects(skip_invalid: bool, rejects: Path | None) -> None:
    if rejects is not None and not skip_invalid:
        from bookrec.errors import InputError

        raise InputError("--rejects goes with --skip-invalid")


def _show_rejects(rejected: int, reasons: list[str], rejects: Path | None) -> None:
    """Without --rejects, the skipped rows' first reasons and their count on stderr."""
    if not rejected or rejects is not None:
        return
    from bookrec import console

    for reason in reasons:
        console.stderr.print(f"  {reason}", highlight=False, markup=False)
    shown = f" (the first {len(reasons)} above)" if len(reasons) < rejected else " (above)"
    console.stderr.print(
        f"warning: {rejected:,} invalid rows skipped{shown}; --rejects FILE keeps them all",
        highlight=False,
        markup=False,
    )


@app.command("books")
def books(
    ctx: typer.Context,
    file: Path = FILE,
    skip_embeddings: bool = typer.Option(
        False, "--skip-embeddings", help="Do not compute content embeddings of new books."
    ),
    skip_invalid: bool = SKIP_INVALID,
    rejects: Path | None = REJECTS,
    max_errors: int = MAX_ERRORS,
    max_record_size: int = typer.Option(
        1 << 20,
        "--max-record-size",
        min=1,
        help="Bytes one CSV record (a quoted field may span lines) may take; a quote still"
        " open past it is that line's error.",
    ),
    json_output: bool = JSON,
) -> None:
    """Load book metadata (goodbooks-10k books.csv or generic CSV/JSONL/Parquet); upsert by
    external id."""
    _check_rejects(skip_invalid, rejects)
    with session(ctx, load_settings(ctx), json_output=json_output) as db:
        result = db.ingest_books(
            file, embed=not skip_embeddings, skip_invalid=skip_invalid, rejects=rejects,
            max_errors=max_errors, max_record_bytes=max_record_size,
        )  # fmt: skip
    _show_rejects(result.rejected, list(result.reject_reasons), rejects)
    output(result, json_output, render.book_ingest(result, file.name))


@app.command("interactions")
def interactions(
    ctx: typer.Context,
    file: Path = FILE,
    skip_invalid: bool = SKIP_INVALID,
    rejects: Path | None = REJECTS,
    max_errors: int = MAX_ERRORS,
    json_output: bool = JSON,
) -> None:
    """Load events user_id,book_id,event,rating,timestamp (or goodbooks ratings)."""
    _check_rejects(skip_invalid, rejects)
    with session(ctx, load_settings(ctx), json_output=json_output) as db:
        result = db.ingest_interactions(
            file, skip_invalid=skip_invalid, rejects=rejects, max_errors=max_errors
        )
    _show_rejects(result.rejected, list(result.reject_reasons), rejects)
    output(result, json_output, render.interaction_ingest(result, file.name))
