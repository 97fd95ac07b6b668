"""bookrec ingest books / interactions FILE."""

from __future__ import annotations

from pathlib import Path

import typer

from bookrec.commands.common import load_settings, output, phases, repository

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
    """Load book metadata (goodbooks-10k books.csv or generic CSV/JSONL); upsert by external id."""
    from bookrec.commands.embed import describe
    from bookrec.services.embed import check_model_available, embed_books
    from bookrec.services.ingest import ingest_books

    _check_rejects(skip_invalid, rejects)
    settings = load_settings(ctx)
    if not skip_embeddings:
        check_model_available(settings)
    with repository(settings) as repo, phases(ctx, json_output) as progress:
        summary = ingest_books(
            repo, file, progress, skip_invalid=skip_invalid, rejects=rejects,
            max_errors=max_errors, max_record_bytes=max_record_size,
        )  # fmt: skip
        embedded = None
        if not skip_embeddings and summary.details["changed_book_ids"]:
            embedded = embed_books(repo, settings, progress, only_missing=True)
    data = summary.to_dict()
    del data["details"]["changed_book_ids"]
    data["embeddings"] = embedded
    d = data["details"]
    text = (
        f"{file.name}: {d['inserted']:,} books added, {d['updated']:,} updated,"
        f" {d['unchanged']:,} unchanged"
        + (f", {summary.rejected:,} rejected" if summary.rejected else "")
        + f" in {summary.seconds:.1f}s"
    )
    if embedded is not None:
        text += "\n" + describe(embedded)
    _show_rejects(summary.rejected, summary.reject_reasons, rejects)
    output(data, json_output, text)


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
    from bookrec.services.ingest import ingest_interactions

    _check_rejects(skip_invalid, rejects)
    settings = load_settings(ctx)
    with repository(settings) as repo, phases(ctx, json_output) as progress:
        summary = ingest_interactions(
            repo, file, progress, skip_invalid=skip_invalid, rejects=rejects, max_errors=max_errors
        )
    d = summary.details
    rate = summary.rows_read / summary.seconds if summary.seconds else 0
    text = (
        f"{file.name}: {d['inserted']:,} interactions added, {d['duplicates']:,} already there,"
        f" {d['new_users']:,} new users"
        + (f", {summary.rejected:,} rejected" if summary.rejected else "")
        + f" in {summary.seconds:.1f}s ({rate:,.0f} rows/s)"
    )
    _show_rejects(summary.rejected, summary.reject_reasons, rejects)
    output(summary.to_dict(), json_output, text)
