"""Offline evaluation: split the interactions, train every model on the training part in memory
(the algorithms and parameters of `train cf`, `train gnn` and `embed`), rank for each test user
every book they did not interact with in training, and score the lists against their test books.

Protocol, as printed with the results:
- relevant: a test (user, book) pair whose weight under the WeightScheme is > 0, that the user
  did not rate at or below `rate_zero_at` (a disliked book is no hit), and that has no training
  interaction;
- ranked users: users with interactions on both sides of the split; users with all interactions
  in test (cold start, temporal split only) are left out and counted;
- candidates: every catalogue book without a training interaction of the user;
- a strategy that cannot serve a user (cf for a user the k-core dropped) recommends nothing
  to them: the user counts with zero hits, never drops out of the mean;
- content vectors are fitted on every book's text: they use no interactions, so no leakage.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from bookrec.algorithms import scoring
from bookrec.algorithms.cf import regularization_for
from bookrec.algorithms.matrix import InteractionMatrix, WeightScheme, build_matrix, k_core
from bookrec.algorithms.split import SplitSummary
from bookrec.domain import EVENT_CODES, BookText, InteractionArrays

STRATEGIES: tuple[str, ...] = ("popular", "cf", "gnn", "content", "hybrid")
METRICS: tuple[str, ...] = ("precision", "recall", "ndcg", "map", "hit_rate", "coverage")
ProgressFn = Callable[[str, int, int], None]
_RATE = EVENT_CODES["rate"]
SCORE_BATCH = 512


@dataclass(frozen=True)
class CfParams:
    """The fields of settings.CfSettings (same names, same defaults).

    regularization None scales it with the data: see `scaled_regularization`.
    """

    factors: int = 128
    iterations: int = 15
    min_interactions: int = 2
    regularization: float | None = None
    alpha: float = 4.0
    seed: int = 42
    threads: int = 0


@dataclass(frozen=True)
class GnnParams:
    """The fields of settings.GnnSettings (same names, same defaults)."""

    dim: int = 256
    min_interactions: int = 1
    walk_length: int = 20
    walks_per_node: int = 10
    p: float = 1.0
    q: float = 0.5
    window: int = 10
    epochs: int = 1
    negative: int = 5
    sample: float | None = None
    seed: int = 42
    workers: int = 0
    engine: str = "builtin"


@dataclass(frozen=True)
class ContentParams:
    """The fields of settings.ContentSettings (same names, same defaults)."""

    model: str = "lsa"
    dim: int = 128
    batch_size: int = 64
    seed: int = 42


@dataclass(frozen=True)
class HybridWeights:
    """The fields of settings.HybridSettings (same names, same defaults)."""

    cf: float = 1.0
    gnn: float = 0.5
    content: float = 1.0
    popular: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {"cf": self.cf, "gnn": self.gnn, "content": self.content, "popular": self.popular}


@dataclass(frozen=True)
class ScoringOptions:
    """How gnn, content and hybrid turn vectors into scores (see scoring.py)."""

    gnn_prior: float = scoring.DEFAULT_PRIOR["gnn"]
    content_prior: float = scoring.DEFAULT_PRIOR["content"]
    fusion: scoring.FusionMethod = "zscore"


@dataclass(frozen=True)
class StrategyResult:
    """Metrics of one strategy; users_served of `users` got a list (the rest count as misses)."""

    strategy: str
    metrics: dict[str, float]
    users: int
    users_served: int
    train_seconds: float
    score_seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            **{name: _rounded(self.metrics[name]) for name in METRICS},
            "users": self.users,
            "users_served": self.users_served,
            "train_seconds": round(self.train_seconds, 3),
            "score_seconds": round(self.score_seconds, 3),
        }


@dataclass(frozen=True)
class EvaluationReport:
    k: int
    protocol: dict[str, Any]
    results: tuple[StrategyResult, ...]
    seconds: float = 0.0

    TABLE_COLUMNS: tuple[str, ...] = field(
        default=(
            "strategy",
            *METRICS,
            "users",
            "users_served",
            "train_seconds",
            "score_seconds",
        ),
        init=False,
        repr=False,
    )

    def result(self, strategy: str) -> StrategyResult:
        return next(r for r in self.results if r.strategy == strategy)

    def rows(self) -> list[dict[str, Any]]:
        """One dict per strategy with the TABLE_COLUMNS keys (metrics rounded to 4 places)."""
        return [r.to_dict() for r in self.results]

    def to_dict(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "protocol": self.protocol,
            "results": self.rows(),
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True, eq=False)
class Holdout:
    """A split ready for ranking, in one index space: rows = test users, columns = catalogue.

    `full` is the training confidence matrix of every user over the catalogue (what the models
    learn from), `user_weights` its rows of the test users (what gnn and content score from);
    `relevant` and `exclude` are binary test users × catalogue matrices.
    """

    summary: SplitSummary
    catalogue: np.ndarray
    users: np.ndarray
    full: InteractionMatrix
    user_weights: sp.csr_matrix
    relevant: sp.csr_matrix
    exclude: sp.csr_matrix

    @property
    def popularity(self) -> np.ndarray:
        return scoring.popularity(self.full.matrix)

    def measure(
        self,
        score_fn: Callable[[np.ndarray], np.ndarray],
        k: int = 10,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> tuple[dict[str, float], int]:
        """(evaluate_rankings of the top-k lists, evaluated users the strategy could serve) of
        a strategy given as score_fn(test user rows) -> (len(rows), n_books) scores."""
        from bookrec.algorithms.metrics import evaluate_rankings
        from bookrec.algorithms.ranking import top_k_batched

        served = np.zeros(len(self.users), dtype=bool)

        def score(rows: np.ndarray) -> np.ndarray:
            block = score_fn(rows)
            served[rows] = scoring.available(block)
            return block

        recommended = top_k_batched(
            score, np.arange(len(self.users)), k, self.exclude, n_items=len(self.catalogue),
            batch_size=SCORE_BATCH, on_progress=on_progress,
        )  # fmt: skip
        metrics = evaluate_rankings(recommended, self.relevant, len(self.catalogue))
        evaluated = np.diff(self.relevant.indptr) > 0
        return metrics, int(np.count_nonzero(served & evaluated))


def make_holdout(
    interactions: InteractionArrays,
    books: Sequence[BookText] = (),
    *,
    split: str = "random",
    test_fraction: float = 0.2,
    seed: int | None = 42,
    weights: WeightScheme = WeightScheme(),
) -> Holdout:
    """Split the interactions and build the matrices every strategy is ranked with.

    The catalogue is every book of `books` and of the interactions. ValueError if no user has
    interactions on both sides of the split.
    """
    from bookrec.algorithms.ranking import seen_matrix
    from bookrec.algorithms.split import split_interactions

    catalogue = np.union1d(
        np.array([b.book_id for b in books], dtype=np.int64),
        np.asarray(interactions.book_ids, dtype=np.int64),
    )
    test_mask, summary = split_interactions(interactions, split, test_fraction, seed)
    train, test = _subset(interactions, ~test_mask), _subset(interactions, test_mask)
    if len(train) == 0 or len(summary.test_users) == 0:
        raise ValueError("the split left no user with both training and test interactions")
    users = summary.test_users
    now = float(train.timestamps.max())
    shape = (len(users), len(catalogue))

    def pairs(user_ids: np.ndarray, book_ids: np.ndarray) -> sp.csr_matrix:
        rows, cols = _positions(users, user_ids), _positions(catalogue, book_ids)
        inside = (rows >= 0) & (cols >= 0)
        return seen_matrix(rows[inside], cols[inside], shape)

    seen = pairs(train.user_ids, train.book_ids)
    relevant = build_matrix(test, weights, now, user_ids=users, book_ids=catalogue).matrix
    relevant.data[:] = 1
    relevant = relevant - relevant.multiply(seen + pairs(*_disliked(test, weights)) > 0)
    relevant = sp.csr_matrix(relevant, dtype=np.int8)
    relevant.eliminate_zeros()
    return Holdout(
        summary=summary,
        catalogue=catalogue,
        users=users,
        full=build_matrix(train, weights, now, book_ids=catalogue),
        user_weights=build_matrix(train, weights, now, user_ids=users, book_ids=catalogue).matrix,
        relevant=relevant,
        exclude=seen,
    )


@dataclass
class TrainedModels:
    """What the strategies score with, aligned with a Holdout's rows and columns."""

    popularity: np.ndarray
    train_seconds: dict[str, float] = field(default_factory=dict)
    cf_users: np.ndarray | None = None  # (n_test_users, factors), NaN rows for unknown users
    cf_items: np.ndarray | None = None  # (n_books, factors), zero rows for unknown books
    embeddings: dict[str, scoring.EmbeddingScorer] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # model -> why it was not trained


def evaluate(
    interactions: InteractionArrays,
    books: Sequence[BookText],
    *,
    split: str = "random",
    test_fraction: float = 0.2,
    k: int = 10,
    strategies: Sequence[str] = STRATEGIES,
    seed: int | None = 42,
    cf: CfParams = CfParams(),
    gnn: GnnParams = GnnParams(),
    content: ContentParams = ContentParams(),
    weights: WeightScheme = WeightScheme(),
    hybrid: HybridWeights = HybridWeights(),
    options: ScoringOptions = ScoringOptions(),
    on_progress: ProgressFn | None = None,
) -> EvaluationReport:
    """Ranking quality of each strategy at k on a held-out split (see the module docstring).

    `on_progress(stage, done, total)` reports stages "cf", "gnn walks", "gnn skipgram",
    "content" and "rank <strategy>". Deterministic for a seed when gnn.workers == 1.
    """
    started = time.perf_counter()
    unknown = sorted(set(strategies) - set(STRATEGIES))
    if unknown or not strategies:
        raise ValueError(f"unknown strategies {unknown}; choose from {', '.join(STRATEGIES)}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    report = _progress(on_progress)
    held = make_holdout(
        interactions, books, split=split, test_fraction=test_fraction, seed=seed, weights=weights
    )
    needed = _needed(strategies, hybrid)
    models = train_models(held, books, needed, cf, gnn, content, options, report)
    score_fns = score_functions(models, held, hybrid, options)
    results = []
    for strategy in strategies:
        score_started = time.perf_counter()
        metrics, served = held.measure(
            score_fns[strategy], k, lambda d, t, s=strategy: report(f"rank {s}", d, t)
        )
        parts = needed - {"hybrid"} if strategy == "hybrid" else {strategy}
        results.append(
            StrategyResult(
                strategy=strategy,
                metrics={name: float(metrics[name]) for name in METRICS},
                users=int(metrics["users"]),
                users_served=served,
                train_seconds=sum(models.train_seconds.get(name, 0.0) for name in parts),
                score_seconds=time.perf_counter() - score_started,
            )
        )
    protocol = {
        **held.summary.to_dict(),
        "ranked_users": len(held.users),
        "evaluated_users": int(np.count_nonzero(np.diff(held.relevant.indptr))),
        "relevant_pairs": int(held.relevant.nnz),
        "catalogue_books": len(held.catalogue),
        "k": k,
        "relevance": "test pairs with weight > 0, not rated at or below "
        f"{weights.rate_zero_at:g} stars, not interacted with in training",
        "candidates": "every catalogue book without a training interaction of the user",
        "unserved_users": "count as misses (zero hits)",
        "train_seconds": {name: round(s, 3) for name, s in models.train_seconds.items()},
        "skipped_models": models.skipped,
    }
    return EvaluationReport(
        k=k, protocol=protocol, results=tuple(results), seconds=time.perf_counter() - started
    )


# --------------------------------------------------------------------------- training


def _needed(strategies: Sequence[str], hybrid: HybridWeights) -> set[str]:
    needed = set(strategies)
    if "hybrid" in needed:
        needed |= {name for name, w in hybrid.as_dict().items() if w > 0} | {"popular"}
    return needed


def train_models(
    held: Holdout,
    books: Sequence[BookText],
    needed: set[str],
    cf: CfParams = CfParams(),
    gnn: GnnParams = GnnParams(),
    content: ContentParams = ContentParams(),
    options: ScoringOptions = ScoringOptions(),
    on_progress: ProgressFn | None = None,
) -> TrainedModels:
    """Train the models of the `needed` strategies on the holdout's training part.

    A model the data cannot support (e.g. too few users for the cf k-core) is left out, with
    the reason in `skipped`: its strategy then serves nobody.
    """
    report = _progress(on_progress)
    models = TrainedModels(popularity=held.popularity)

    def fit_cf() -> None:
        user_factors, models.cf_items = train_cf(held.full, cf, lambda d, t: report("cf", d, t))
        rows = _positions(held.full.user_ids, held.users)
        models.cf_users = np.full((len(held.users), cf.factors), np.nan, dtype=np.float32)
        models.cf_users[rows >= 0] = user_factors[rows[rows >= 0]]

    def fit_gnn() -> None:
        vectors = train_gnn(held.full, gnn, report)
        models.embeddings["gnn"] = scoring.EmbeddingScorer(
            vectors, models.popularity, prior=options.gnn_prior
        )

    def fit_content() -> None:
        vectors = content_vectors(
            books, held.catalogue, content, lambda d, t: report("content", d, t)
        )
        models.embeddings["content"] = scoring.EmbeddingScorer(
            vectors, models.popularity, prior=options.content_prior
        )

    for name, fit in (("cf", fit_cf), ("gnn", fit_gnn), ("content", fit_content)):
        if name in needed:
            started = time.perf_counter()
            try:
                fit()
            except ValueError as error:
                models.skipped[name] = str(error)
            models.train_seconds[name] = time.perf_counter() - started
    return models


def train_cf(
    full: InteractionMatrix,
    params: CfParams,
    on_iteration: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """`train cf` on an InteractionMatrix: k-core, then ALS. Returns (user factors of full's
    rows, NaN for users the k-core dropped; item factors of full's columns, zeros likewise)."""
    from bookrec.algorithms.cf import fit_als

    core = k_core(full, params.min_interactions, params.min_interactions)
    if core.shape[0] < 2 or core.shape[1] < 2:
        raise ValueError(f"too few users/books for cf after the k-core: {core.shape}")
    regularization = regularization_for(params.regularization, core.nnz, params.alpha)
    factors = fit_als(
        core.matrix,
        factors=params.factors,
        iterations=params.iterations,
        regularization=regularization,
        alpha=params.alpha,
        seed=params.seed,
        threads=params.threads,
        on_iteration=on_iteration,
    )
    users = np.full((full.shape[0], params.factors), np.nan, dtype=np.float32)
    users[_positions(full.user_ids, core.user_ids)] = factors.user_factors
    items = np.zeros((full.shape[1], params.factors), dtype=np.float32)
    items[_positions(full.book_ids, core.book_ids)] = factors.item_factors
    return users, items


def train_gnn(
    full: InteractionMatrix, params: GnnParams, report: ProgressFn | None = None
) -> np.ndarray:
    """`train gnn` on an InteractionMatrix: book vectors aligned with full's columns (zero rows
    for books without a vector)."""
    report = _progress(report)
    core = k_core(full, 1, params.min_interactions)
    if core.nnz == 0:
        raise ValueError("no interactions left for gnn after the minimum per book")
    if params.engine == "node2vec":
        from bookrec.algorithms.node2vec_engine import node2vec_package_embeddings

        vectors = node2vec_package_embeddings(
            core.matrix, dim=params.dim, walk_length=params.walk_length,
            walks_per_node=params.walks_per_node, p=params.p, q=params.q, window=params.window,
            epochs=params.epochs, negative=params.negative, sample=params.sample,
            seed=params.seed, workers=params.workers or 1,
        )  # fmt: skip
    else:
        from bookrec.algorithms.skipgram import train_skipgram
        from bookrec.algorithms.walks import build_graph, random_walks

        graph = build_graph(core.matrix)
        walks = random_walks(
            graph, walk_length=params.walk_length, walks_per_node=params.walks_per_node,
            p=params.p, q=params.q, seed=params.seed,
            on_progress=lambda d, t: report("gnn walks", d, t),
        )  # fmt: skip
        vectors = train_skipgram(
            walks, graph.n_nodes, dim=params.dim, window=params.window, epochs=params.epochs,
            negative=params.negative, sample=params.sample, seed=params.seed,
            workers=params.workers or None, on_epoch=lambda d, t: report("gnn skipgram", d, t),
        )  # fmt: skip
    books = np.zeros((full.shape[1], params.dim), dtype=np.float32)
    books[_positions(full.book_ids, core.book_ids)] = vectors[core.shape[0] :]
    return books


def content_vectors(
    books: Sequence[BookText],
    catalogue: np.ndarray,
    params: ContentParams,
    on_batch: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """`embed` of every book: vectors aligned with `catalogue` (zero rows without text)."""
    from bookrec.algorithms.content import MINILM_DIM, book_texts, encode_minilm, fit_lsa

    texts = book_texts(books, model=params.model)  # type: ignore[arg-type]
    dim = MINILM_DIM if params.model == "minilm" else params.dim
    out = np.zeros((len(catalogue), dim), dtype=np.float32)
    if not texts.texts:
        return out
    if params.model == "minilm":
        vectors = encode_minilm(texts.texts, batch_size=params.batch_size, on_batch=on_batch)
    else:
        _, vectors = fit_lsa(texts.texts, dim=params.dim, seed=params.seed, on_batch=on_batch)
    rows = _positions(catalogue, np.array(texts.book_ids, dtype=np.int64))
    out[rows[rows >= 0]] = vectors[rows >= 0]
    return out


# --------------------------------------------------------------------------- scoring


def score_functions(
    models: TrainedModels,
    held: Holdout,
    hybrid: HybridWeights = HybridWeights(),
    options: ScoringOptions = ScoringOptions(),
) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """score_fn(test user rows) of every strategy; one without a model scores nothing."""
    n_books = len(held.catalogue)

    def nothing(rows: np.ndarray) -> np.ndarray:
        return np.full((len(rows), n_books), -np.inf, dtype=np.float32)

    functions: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "popular": lambda rows: scoring.popular_scores(models.popularity, len(rows)),
        "cf": nothing,
        "gnn": nothing,
        "content": nothing,
    }
    if models.cf_users is not None and models.cf_items is not None:
        present = np.any(models.cf_items != 0, axis=1)
        functions["cf"] = lambda rows: scoring.cf_scores(
            models.cf_users[rows], models.cf_items, present
        )
    for family, scorer in models.embeddings.items():
        functions[family] = lambda rows, s=scorer: s.scores(held.user_weights[rows])

    def hybrid_scores(rows: np.ndarray) -> np.ndarray:
        parts = {
            name: functions[name](rows)
            for name, weight in hybrid.as_dict().items()
            if weight > 0 or name == "popular"
        }
        return scoring.fuse(parts, hybrid.as_dict(), method=options.fusion)

    functions["hybrid"] = hybrid_scores
    return functions


# --------------------------------------------------------------------------- data


def _disliked(data: InteractionArrays, weights: WeightScheme) -> tuple[np.ndarray, np.ndarray]:
    """(user ids, book ids) of pairs whose latest rating is at or below rate_zero_at."""
    rates = np.flatnonzero((data.events == _RATE) & ~np.isnan(data.ratings))
    order = rates[np.lexsort((rates, data.timestamps[rates], data.book_ids[rates],
                              data.user_ids[rates]))]  # fmt: skip
    users, books = data.user_ids[order], data.book_ids[order]
    last = np.ones(len(order), dtype=bool)
    last[:-1] = (users[1:] != users[:-1]) | (books[1:] != books[:-1])
    latest = order[last]
    low = data.ratings[latest] <= weights.rate_zero_at
    return data.user_ids[latest][low], data.book_ids[latest][low]


def _subset(data: InteractionArrays, mask: np.ndarray) -> InteractionArrays:
    return InteractionArrays(
        user_ids=np.asarray(data.user_ids)[mask],
        book_ids=np.asarray(data.book_ids)[mask],
        events=np.asarray(data.events)[mask],
        ratings=np.asarray(data.ratings)[mask],
        timestamps=np.asarray(data.timestamps)[mask],
        max_interaction_id=data.max_interaction_id,
    )


def _positions(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Index of each id in sorted_ids, -1 where absent."""
    ids = np.asarray(ids, dtype=np.int64)
    if len(sorted_ids) == 0:
        return np.full(len(ids), -1, dtype=np.int64)
    at = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
    return np.where(sorted_ids[at] == ids, at, -1).astype(np.int64)


def _progress(fn: ProgressFn | None) -> ProgressFn:
    return fn if fn is not None else (lambda _stage, _done, _total: None)


def _rounded(value: float) -> float | None:
    return None if np.isnan(value) else round(float(value), 4)
