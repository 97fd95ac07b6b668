"""bookrec export vectors."""

from __future__ import annotations

from pathlib import Path

import typer

from bookrec.commands.common import load_settings, output, session

app = typer.Typer(help="Write data out for other systems.", no_args_is_help=True)


@app.command("vectors")
def vectors(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="The file to write (replaced only once complete)."),
    family: str = typer.Option(..., "--family", help="cf, gnn or content."),
    side: str = typer.Option("books", "--side", help="books, or users (cf only)."),
    fmt: str = typer.Option(
        None,
        "--format",
        help="parquet, npy (an .npz) or jsonl [default: from the file's suffix].",
        show_default=False,
    ),
    json_output: bool = typer.Option(False, "--json", help="Machine-readable summary."),
) -> None:
    """A vector family with internal and external ids and the run that made it, for FAISS or
    a vector database."""
    with session(ctx, load_settings(ctx), json_output=json_output) as db:
        result = db.export_vectors(file, family=family, side=side, format=fmt)
    rate = f", {result.vectors_per_second:,} vectors/s" if result.vectors_per_second else ""
    output(
        result,
        json_output,
        f"wrote {result.rows:,} {family} {side} vectors ({result.dim}-d, run"
        f" {result.run_id}) to {result.file} as {result.format} in {result.seconds:.1f} s{rate}",
    )
