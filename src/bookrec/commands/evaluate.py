"""bookrec evaluate: offline ranking metrics of every strategy on a held-out split."""

from __future__ import annotations

from typing import Any

import typer

from bookrec.commands.common import load_settings, phases, repository

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
    json_output: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Train every model on a training split in memory and rank the held-out books.

    Stored vectors and training runs are never touched."""
    from bookrec import console
    from bookrec.services.evaluate import evaluate_strategies

    settings = load_settings(
        ctx, "cf", factors=factors, iterations=iterations, regularization=regularization,
        alpha=alpha, min_interactions=min_interactions,
    )  # fmt: skip
    settings = settings.with_overrides(
        "gnn", dim=dim, walk_length=walk_length, walks_per_node=walks_per_node, p=p, q=q,
        epochs=epochs,
    )  # fmt: skip
    chosen = [s.strip() for s in strategies.split(",") if s.strip()]
    with repository(settings) as repo, phases(ctx, json_output) as progress:
        result = evaluate_strategies(
            repo, settings, progress, split=split, test_fraction=test_fraction, k=k,
            strategies=chosen, seed=seed,
        )  # fmt: skip
    if json_output:
        console.print_json(result)
        return
    _render(result)


def _render(result: dict[str, Any]) -> None:
    from rich.table import Table

    from bookrec import console

    k = result["k"]
    protocol = result["protocol"]
    out = console.stdout
    lines = [f"{key}: {value}" for key, value in protocol.items() if key != "train_seconds"]
    out.print("protocol\n  " + "\n  ".join(lines), markup=False, highlight=False)
    table = Table(box=None, pad_edge=False, header_style="bold")
    columns = ["strategy", f"P@{k}", f"R@{k}", f"nDCG@{k}", f"MAP@{k}", f"HR@{k}", "coverage"]
    for column in [*columns, "served", "train s", "score s"]:
        table.add_column(column, justify="left" if column == "strategy" else "right")
    for row in result["results"]:
        metrics = [row[m] for m in ("precision", "recall", "ndcg", "map", "hit_rate", "coverage")]
        table.add_row(
            row["strategy"],
            *(f"{m:.4f}" if m is not None else "-" for m in metrics),
            f"{row['users_served']}/{row['users']}",
            f"{row['train_seconds']:.1f}",
            f"{row['score_seconds']:.1f}",
        )
    out.print(table)
    out.print(f"evaluated in {result['seconds']:.1f}s", highlight=False)
