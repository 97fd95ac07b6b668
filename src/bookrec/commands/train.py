"""bookrec train cf / train gnn."""

from __future__ import annotations

from typing import Any

import typer

from bookrec.commands.common import load_settings, output, phases, repository

app = typer.Typer(help="Train vectors from the interactions.", no_args_is_help=True)

JSON = typer.Option(False, "--json", help="Machine-readable summary.")
WAIT = typer.Option(False, "--wait", help="Wait for a running training of the same model.")
SEED = typer.Option(None, "--seed", help="Random seed (same data + seed = same vectors).")


def _summary_line(summary: dict[str, Any], vector_text: str) -> str:
    phase_text = ", ".join(f"{name} {sec:.1f}s" for name, sec in summary["phases"].items())
    return (
        f"{summary['model']} run {summary['run_id']}: {vector_text} from"
        f" {summary['interactions']:,} interactions in {summary['seconds']:.1f}s ({phase_text})"
    )


@app.command("cf")
def cf(
    ctx: typer.Context,
    factors: int = typer.Option(None, "--factors", help="Vector dimension [default: 128]."),
    iterations: int = typer.Option(None, "--iterations", help="ALS iterations [default: 15]."),
    min_interactions: int = typer.Option(
        None, "--min-interactions", help="Minimum interactions per user and per book [default: 2]."
    ),
    regularization: float = typer.Option(
        None, "--regularization", help="L2 regularization [default: 0.06 · alpha · √pairs]."
    ),
    alpha: float = typer.Option(None, "--alpha", help="Confidence scaling [default: 4]."),
    seed: int = SEED,
    threads: int = typer.Option(None, "--threads", help="ALS threads; 0 = all cores."),
    engine: str = typer.Option(
        None, "--engine", help="builtin (default, implicit) or spark (MLlib ALS, an extra)."
    ),
    wait: bool = WAIT,
    json_output: bool = JSON,
) -> None:
    """Implicit-feedback ALS → users.cf_vector and books.cf_embedding."""
    from bookrec.services.train_cf import train_cf

    settings = load_settings(
        ctx, "cf", factors=factors, iterations=iterations, min_interactions=min_interactions,
        regularization=regularization, alpha=alpha, seed=seed, threads=threads, engine=engine,
    )  # fmt: skip
    with repository(settings) as repo, phases(ctx, json_output) as progress:
        summary = train_cf(repo, settings, progress, wait=wait)
    text = _summary_line(
        summary,
        f"{summary['users']:,} user and {summary['books']:,} book vectors ({summary['factors']}-d)",
    )
    output(summary, json_output, text)


@app.command("gnn")
def gnn(
    ctx: typer.Context,
    dim: int = typer.Option(None, "--dim", help="Vector dimension [default: 256]."),
    min_interactions: int = typer.Option(
        None, "--min-interactions", help="Minimum interactions per book [default: 1]."
    ),
    walk_length: int = typer.Option(None, "--walk-length", help="Steps per walk [default: 20]."),
    walks_per_node: int = typer.Option(
        None, "--walks-per-node", help="Walks from each node [default: 10]."
    ),
    p: float = typer.Option(None, "--p", help="node2vec return parameter [default: 1]."),
    q: float = typer.Option(None, "--q", help="node2vec in-out parameter [default: 0.5]."),
    window: int = typer.Option(None, "--window", help="Skip-gram window [default: 10]."),
    epochs: int = typer.Option(None, "--epochs", help="Skip-gram epochs [default: 1]."),
    negative: int = typer.Option(None, "--negative", help="Negative samples [default: 5]."),
    sample: float = typer.Option(
        None,
        "--sample",
        help="Skip-gram down-sampling of frequent nodes [default: max(1e-4, 1 / nodes)].",
    ),
    seed: int = SEED,
    workers: int = typer.Option(None, "--workers", help="Skip-gram threads; 0 = all cores."),
    engine: str = typer.Option(
        None, "--engine", help="builtin (default), node2vec (PyPI package) or spark (extras)."
    ),
    wait: bool = WAIT,
    json_output: bool = JSON,
) -> None:
    """node2vec on the user↔book graph → books.gnn_vector."""
    from bookrec.services.train_gnn import train_gnn

    settings = load_settings(
        ctx, "gnn", dim=dim, min_interactions=min_interactions, walk_length=walk_length,
        walks_per_node=walks_per_node, p=p, q=q, window=window, epochs=epochs,
        negative=negative, sample=sample, seed=seed, workers=workers, engine=engine,
    )  # fmt: skip
    with repository(settings) as repo, phases(ctx, json_output) as progress:
        summary = train_gnn(repo, settings, progress, wait=wait)
    text = _summary_line(
        summary,
        f"{summary['books']:,} book vectors ({summary['dim']}-d, {summary['engine']} engine)",
    )
    output(summary, json_output, text)
