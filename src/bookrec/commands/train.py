"""bookrec train cf / train gnn."""

from __future__ import annotations

import typer

from bookrec.commands import render
from bookrec.commands.common import load_settings, output, session

app = typer.Typer(help="Train vectors from the interactions.", no_args_is_help=True)

JSON = typer.Option(False, "--json", help="Machine-readable summary.")
WAIT = typer.Option(False, "--wait", help="Wait for a running training of the same model.")
SEED = typer.Option(None, "--seed", help="Random seed (same data + seed = same vectors).")
FOLD_IN = typer.Option(
    False,
    "--fold-in",
    help="Only the users and books that changed since the last full run, solved in its space"
    " with its parameters (exit 3 without one).",
)


def _fold_in(ctx: typer.Context, model: str, options: dict, wait: bool, json_output: bool) -> None:
    """The --fold-in branch: the model's options belong to the full run, not to a fold-in."""
    from bookrec.errors import InputError

    given = sorted(f"--{k.replace('_', '-')}" for k, v in options.items() if v is not None)
    if given:
        raise InputError(
            f"--fold-in uses the parameters of the full run it folds into; drop {', '.join(given)}"
        )
    settings = load_settings(ctx, model)
    with session(ctx, settings, json_output=json_output) as db:
        result = db.fold_in_cf(wait=wait) if model == "cf" else db.fold_in_gnn(wait=wait)
    output(result, json_output, render.fold_in(result))


GATE = typer.Option(
    True, "--gate/--no-gate", help="Measure the candidate on held-out pairs before publishing."
)
FORCE = typer.Option(False, "--force", help="Publish even if the quality gate rejects.")


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
    fold_in: bool = FOLD_IN,
    wait: bool = WAIT,
    gate: bool = GATE,
    force: bool = FORCE,
    json_output: bool = JSON,
) -> None:
    """Implicit-feedback ALS → users.cf_vector and books.cf_embedding (exit 4: rejected by
    the quality gate, nothing replaced)."""
    if fold_in:
        options = dict(
            factors=factors, iterations=iterations, min_interactions=min_interactions,
            regularization=regularization, alpha=alpha, seed=seed, threads=threads, engine=engine,
        )  # fmt: skip
        return _fold_in(ctx, "cf", options, wait, json_output)
    settings = load_settings(
        ctx, "cf", factors=factors, iterations=iterations, min_interactions=min_interactions,
        regularization=regularization, alpha=alpha, seed=seed, threads=threads, engine=engine,
    )  # fmt: skip
    with session(ctx, settings, json_output=json_output) as db:
        result = db.train_cf(wait=wait, gate=None if gate else False, force=force)
    output(result, json_output, render.training(result))


@app.command("gnn")
def gnn(
    ctx: typer.Context,
    dim: int = typer.Option(None, "--dim", help="Vector dimension [default: 128]."),
    min_interactions: int = typer.Option(
        None, "--min-interactions", help="Minimum interactions per book [default: 1]."
    ),
    walk_length: int = typer.Option(None, "--walk-length", help="Steps per walk [default: 10]."),
    walks_per_node: int = typer.Option(
        None, "--walks-per-node", help="Walks from each node [default: 6]."
    ),
    p: float = typer.Option(None, "--p", help="node2vec return parameter [default: 1]."),
    q: float = typer.Option(None, "--q", help="node2vec in-out parameter [default: 0.5]."),
    window: int = typer.Option(None, "--window", help="Skip-gram window [default: 5]."),
    epochs: int = typer.Option(None, "--epochs", help="Skip-gram epochs [default: 1]."),
    negative: int = typer.Option(None, "--negative", help="Negative samples [default: 5]."),
    learning_rate: float = typer.Option(
        None, "--learning-rate", help="Skip-gram's initial learning rate [default: 0.15]."
    ),
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
    fold_in: bool = FOLD_IN,
    wait: bool = WAIT,
    gate: bool = GATE,
    force: bool = FORCE,
    json_output: bool = JSON,
) -> None:
    """node2vec on the user↔book graph → books.gnn_vector (exit 4: rejected by the quality
    gate, nothing replaced)."""
    if fold_in:
        options = dict(
            dim=dim, min_interactions=min_interactions, walk_length=walk_length,
            walks_per_node=walks_per_node, p=p, q=q, window=window, epochs=epochs,
            negative=negative, sample=sample, learning_rate=learning_rate, seed=seed,
            workers=workers, engine=engine,
        )  # fmt: skip
        return _fold_in(ctx, "gnn", options, wait, json_output)
    settings = load_settings(
        ctx, "gnn", dim=dim, min_interactions=min_interactions, walk_length=walk_length,
        walks_per_node=walks_per_node, p=p, q=q, window=window, epochs=epochs,
        negative=negative, sample=sample, learning_rate=learning_rate, seed=seed,
        workers=workers, engine=engine,
    )  # fmt: skip
    with session(ctx, settings, json_output=json_output) as db:
        result = db.train_gnn(wait=wait, gate=None if gate else False, force=force)
    output(result, json_output, render.training(result))
