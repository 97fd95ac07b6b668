"""Offline evaluation of every strategy: split (algorithms.evaluation), fit the models on the
training part (fit_models), rank the held-out books and measure (algorithms.evaluation)."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from bookrec.algorithms.evaluation import Holdout, make_holdout
from bookrec.algorithms.matrix import InteractionMatrix
from bookrec.domain import BookText, InteractionArrays
from bookrec.errors import InputError
from bookrec.models.base import Model, UserBatch
from bookrec.models.blend import FALLBACK_BLEND, Blend
from bookrec.models.fitting import FittedModels, TrainingSet, fit_models, needed_strategies
from bookrec.progress import Phases
from bookrec.results import METRICS, EvaluationReport, StrategyResult
from bookrec.settings import Settings


def check_protocol(strategies: Sequence[str], split: str, test_fraction: float, k: int) -> None:
    """InputError naming the first argument of an evaluation that cannot be right."""
    from bookrec.algorithms.split import SPLIT_METHODS
    from bookrec.models import STRATEGIES

    unknown = sorted(set(strategies) - set(STRATEGIES))
    if unknown or not strategies:
        raise InputError(f"unknown strategies {unknown}; choose from {', '.join(STRATEGIES)}")
    if split not in SPLIT_METHODS:
        raise InputError(f"unknown split {split!r}; expected one of {', '.join(SPLIT_METHODS)}")
    if not 0.0 < test_fraction < 1.0:
        raise InputError(f"test_fraction must be between 0 and 1 (exclusive), got {test_fraction}")
    if k < 1:
        raise InputError(f"k must be >= 1, got {k}")


def evaluate(
    interactions: InteractionArrays,
    books: Sequence[BookText],
    settings: Settings,
    *,
    split: str = "random",
    test_fraction: float = 0.2,
    k: int = 10,
    strategies: Sequence[str] | None = None,
    seed: int | None = 42,
    phases: Phases | None = None,
) -> EvaluationReport:
    """Ranking quality of each strategy at k on a held-out split (algorithms.evaluation's
    protocol), the models fitted with `settings`. Deterministic for a seed when
    settings.gnn.workers is 1 (with more, gensim's skip-gram threads race)."""
    from bookrec.models import STRATEGIES

    started = time.perf_counter()
    strategies = tuple(STRATEGIES if strategies is None else strategies)
    check_protocol(strategies, split, test_fraction, k)
    phases = phases or Phases()
    scheme = settings.weights.scheme()
    held = make_holdout(
        interactions, books, split=split, test_fraction=test_fraction, seed=seed, weights=scheme
    )
    needed = needed_strategies(strategies, settings.hybrid)
    blend = None
    if "hybrid" in strategies and not settings.hybrid.all_explicit():
        blend = learn_blend(held.full, books, settings, needed, k, test_fraction, seed, phases)
    fitted = fit_models(TrainingSet(held.full, books), settings, strategies, phases, blend)
    results = [_measure(strategy, fitted, held, k, needed, phases) for strategy in strategies]
    protocol = {
        **held.summary.to_dict(),
        "ranked_users": len(held.users),
        "evaluated_users": int(np.count_nonzero(np.diff(held.relevant.indptr))),
        "relevant_pairs": int(held.relevant.nnz),
        "catalogue_books": len(held.catalogue),
        "k": k,
        "relevance": "test pairs with weight > 0, not rated at or below "
        f"{scheme.rate_zero_at:g} stars, not interacted with in training",
        "candidates": "every catalogue book without a training interaction of the user",
        "unserved_users": "count as misses (zero hits)",
        "train_seconds": {name: round(s, 3) for name, s in fitted.train_seconds.items()},
        "skipped_models": fitted.skipped,
        "hybrid_weights": (fitted.models["hybrid"].weights if "hybrid" in fitted.models else None),
        "hybrid_blend": blend.to_dict() if blend is not None else None,
    }
    return EvaluationReport(
        k=k, protocol=protocol, results=tuple(results), seconds=time.perf_counter() - started
    )


def learn_blend(
    training: InteractionMatrix,
    books: Sequence[BookText],
    settings: Settings,
    needed: set[str],
    k: int,
    fraction: float,
    seed: int | None,
    phases: Phases,
) -> Blend:
    """Hybrid weights learnt on a validation split carved from the training part: a hashed
    sample of its users (settings.gate.users) holds out `fraction` of their books; the parts
    are fitted on the rest and scored on those books."""
    from bookrec.algorithms.split import hold_out_entries
    from bookrec.models.blend import fit_blend

    split = hold_out_entries(
        training.matrix, training.user_ids, training.book_ids, n_users=settings.gate.users,
        fraction=fraction, seed=42 if seed is None else seed,
    )  # fmt: skip
    if len(split.rows) == 0:
        return FALLBACK_BLEND
    matrix = InteractionMatrix(split.train, training.user_ids, training.book_ids)
    parts = needed - {"hybrid"}
    fitted = fit_models(TrainingSet(matrix, books), settings, parts, phases.within("validation"))
    rows = split.rows
    users = UserBatch(training.user_ids[rows], split.train[rows])
    relevant = sp.csr_matrix(split.held[rows] > 0, dtype=np.int8)
    with phases.phase("blend"):
        return fit_blend(fitted.models, users, relevant, split.train[rows], k)


def score_function(model: Model | None, held: Holdout):
    """score_fn(test user rows) of a model for Holdout.measure; nothing scored without one."""
    n_books = len(held.catalogue)

    def scores(rows: np.ndarray) -> np.ndarray:
        if model is None:
            return np.full((len(rows), n_books), -np.inf, dtype=np.float32)
        return model.scores(UserBatch(held.users[rows], held.user_weights[rows]))

    return scores


def _measure(
    strategy: str, fitted: FittedModels, held: Holdout, k: int, needed: set[str], phases: Phases
) -> StrategyResult:
    started = time.perf_counter()
    with phases.phase(f"rank {strategy}") as update:
        metrics, served = held.measure(
            score_function(fitted.models.get(strategy), held), k, on_progress=update
        )
    parts = needed - {"hybrid"} if strategy == "hybrid" else {strategy}
    return StrategyResult(
        strategy=strategy,
        metrics={name: float(metrics[name]) for name in METRICS},
        users=int(metrics["users"]),
        users_served=served,
        train_seconds=sum(fitted.train_seconds.get(name, 0.0) for name in parts),
        score_seconds=time.perf_counter() - started,
    )
