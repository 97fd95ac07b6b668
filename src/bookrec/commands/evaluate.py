"""bookrec evaluate: offline ranking metrics of every strategy on a held-out split."""

from __future__ import annotations

import typer

from bookrec.commands import render
from bookrec.commands.common import load_settings, output, session

STRATEGIES = "popular,cf,gnn,content,hybrid"


def evaluate(
    ctx: typer.Context,
    split: str = typer.Option("random", "--split", help="random, temporal or leave-last."),
    test_fraction: float = typer.Option(
        0.2, "--test-fraction", min=0.01, max=0.9, help="Share held out (random, temporal)."
    ),
    k: int = typer.Option(10, "--k", min=1, help="Length of the ranked lists."),
    strategies: str = typer.Option(STRATEGIES, "--strategies", help="Comma-separated."),
    seed: int = typer.Option(42, "--seed", help="Seed of the split and of every model."),
    factors: int = typer.Option(None, "--factors", help="cf: vector dimension."),
    iterations: int = typer.Option(None, "--iterations", help="cf: ALS iterations."),
    regularization: float = typer.Option(None, "--regularization", help="cf: L2."),
    alpha: float = typer.Option(None, "--alpha", help="cf: confidence scaling."),
    min_interactions: int = typer.Option(None, "--min-interactions", help="cf: k-core."),
    dim: int = typer.Option(None, "--dim", help="gnn: vector dimension."),
    walk_length: int = typer.Option(None, "--walk-length", help="gnn: steps per walk."),
    walks_per_node: int = typer.Option(None, "--walks-per-node", help="gnn: walks per node."),
    p: float = typer.Option(None, "--p", help="gnn: return parameter."),
    q: float = typer.Option(None, "--q", help="gnn: in-out parameter."),
    epochs: int = typer.Option(None, "--epochs", help="gnn: skip-gram epochs."),
    learning_rate: float = typer.Option(
        None, "--learning-rate", help="gnn: skip-gram's initial learning rate."
    ),
    json_output: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Train every model on a training split in memory and rank the held-out books.

    Stored vectors and training runs are never touched."""
    settings = load_settings(
        ctx, "cf", factors=factors, iterations=iterations, regularization=regularization,
        alpha=alpha, min_interactions=min_interactions,
    )  # fmt: skip
    settings = settings.with_overrides(
        "gnn", dim=dim, walk_length=walk_length, walks_per_node=walks_per_node, p=p, q=q,
        epochs=epochs, learning_rate=learning_rate,
    )  # fmt: skip
    chosen = [s.strip() for s in strategies.split(",") if s.strip()]
    with session(ctx, settings, json_output=json_output) as db:
        report = db.evaluate(
            split=split, test_fraction=test_fraction, k=k, strategies=chosen, seed=seed
        )
    if json_output:
        output(report, True, "")
    else:
        render.evaluation(report)
