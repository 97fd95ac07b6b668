"""bookrec evaluate: offline ranking quality of every strategy; reads the database only."""

from __future__ import annotations

from collections.abc import Sequence

from bookrec.errors import NoInteractionsError
from bookrec.progress import Phases
from bookrec.results import EvaluationReport
from bookrec.settings import Settings
from bookrec.storage.base import Repository


def evaluate_strategies(
    repo: Repository,
    settings: Settings,
    phases: Phases,
    *,
    split: str,
    test_fraction: float,
    k: int,
    strategies: Sequence[str],
    seed: int,
) -> EvaluationReport:
    """Fit every model on a split of the stored interactions in memory and measure it."""
    from bookrec.models.evaluate import check_protocol, evaluate

    check_protocol(strategies, split, test_fraction, k)
    with phases.phase("load"):
        interactions = repo.load_interactions()
        books = repo.book_texts()
    if len(interactions) == 0:
        raise NoInteractionsError()
    # One skip-gram worker: with more, gensim's threads race and a seed does not repeat.
    settings = settings.with_overrides("gnn", workers=1)
    return evaluate(
        interactions, books, settings, split=split, test_fraction=test_fraction, k=k,
        strategies=strategies, seed=seed, phases=phases,
    )  # fmt: skip
