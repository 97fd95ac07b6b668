"""bookrec tune: hyper-parameter search on the stored interactions; --apply stores the result."""

from __future__ import annotations

import typer

from bookrec.commands import render
from bookrec.commands.common import load_settings, output, session

STRATEGIES = "cf,gnn,content,hybrid"


def tune(
    ctx: typer.Context,
    strategies: str = typer.Option(STRATEGIES, "--strategies", help="Comma-separated."),
    trials: int = typer.Option(
        40, "--trials", min=1, help="Trials in all, split across the strategies."
    ),
    timeout: float = typer.Option(
        None, "--timeout", min=1, help="Wall-clock budget in seconds [default: none]."
    ),
    k: int = typer.Option(10, "--k", min=1, help="Length of the ranked lists."),
    split: str = typer.Option("random", "--split", help="random, temporal or leave-last."),
    test_fraction: float = typer.Option(
        0.2, "--test-fraction", min=0.01, max=0.9, help="Share held out for the test figures."
    ),
    seed: int = typer.Option(42, "--seed", help="Seed of the splits, the sampler, every model."),
    apply: bool = typer.Option(False, "--apply", help="Store the chosen settings."),
    reset: bool = typer.Option(False, "--reset", help="Remove the stored tuned settings."),
    json_output: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Search the settings of cf, gnn, content and the hybrid weights on a validation split;
    report them against the current settings on a test holdout no trial sees."""
    from bookrec.errors import InputError

    settings = load_settings(ctx)
    if reset and apply:
        raise InputError("--reset and --apply exclude each other")
    with session(ctx, settings, json_output=json_output) as db:
        if reset:
            removed = db.reset_tuned()
            runs = ", ".join(str(r) for r in removed.runs)
            output(removed, json_output, f"removed {removed.removed} tuned settings"
                   + (f" (of run {runs})" if runs else ""))  # fmt: skip
            return
        chosen = [s.strip() for s in strategies.split(",") if s.strip()]
        report = db.tune(
            strategies=chosen, trials=trials, timeout=timeout, k=k, split=split,
            test_fraction=test_fraction, seed=seed, apply=apply,
        )  # fmt: skip
    if json_output:
        output(report, True, "")
    else:
        render.tuning(report)
