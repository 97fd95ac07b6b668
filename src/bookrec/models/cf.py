"""cf: implicit-feedback ALS user and book vectors; a user's score of a book is x_u · y_i."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from bookrec.algorithms.matrix import InteractionMatrix, positions
from bookrec.algorithms.scoring import cf_scores, finite_bound, pieces, row_blocks
from bookrec.models.base import UserBatch, training_core
from bookrec.settings import CfSettings, SparkSettings

# Batches of at least this many users check their scores for NaN by the factors' bound, worth
# one pass over the book vectors (made once per model); a single user's scores are looked at.
BOUND_FROM_USERS = 32


@dataclass(frozen=True, eq=False)
class CfVectors:
    """User and book vectors of one cf run, each keyed by ascending database ids."""

    user_ids: np.ndarray
    user_vectors: np.ndarray
    book_ids: np.ndarray
    book_vectors: np.ndarray

    def model(self, catalogue: np.ndarray) -> CfModel:
        return CfModel(self, catalogue)


@dataclass(frozen=True, eq=False)
class CfFit:
    """What `fit_cf` learnt, the regularization it used, and the engine's own figures (Spark:
    its master, MLlib parameters and seconds per step)."""

    vectors: CfVectors
    regularization: float
    pairs: int
    engine_stats: dict = field(default_factory=dict)


def cf_core(matrix: InteractionMatrix, settings: CfSettings) -> InteractionMatrix:
    """The k-core cf trains on: every user and every book keeps `min_interactions` pairs."""
    return training_core(matrix, settings.min_interactions, settings.min_interactions)


def cf_regularization(core: InteractionMatrix, settings: CfSettings) -> float:
    from bookrec.algorithms.cf import regularization_for

    return regularization_for(
        settings.regularization, core.nnz, settings.alpha, settings.regularization_scale
    )


def fit_cf(
    core: InteractionMatrix,
    settings: CfSettings,
    on_iteration: Callable[[int, int], None] | None = None,
    spark: SparkSettings | None = None,
) -> CfFit:
    """ALS on the cf core (see `cf_core`) with the settings' factors, iterations, alpha, seed:
    implicit's, or Spark MLlib's with engine "spark" (on the `spark` settings)."""
    regularization = cf_regularization(core, settings)
    parameters = {
        "factors": settings.factors,
        "iterations": settings.iterations,
        "regularization": regularization,
        "alpha": settings.alpha,
        "seed": settings.seed,
    }
    stats: dict = {}
    if settings.engine == "spark":
        from bookrec.engines.spark import SparkOptions, fit_als_spark, mllib_parameters

        spark = spark or SparkSettings()
        mapped = mllib_parameters(
            core.shape[0], core.shape[1], core.nnz, regularization=regularization,
            alpha=settings.alpha,
        )  # fmt: skip
        seconds: dict[str, float] = {}
        mllib = {k: round(v, 8) for k, v in mapped.items()}
        stats = {"spark": {"master": spark.master, "mllib": mllib, "seconds": seconds}}
        factors = fit_als_spark(
            core.matrix, **parameters, options=SparkOptions(**spark.model_dump()),
            on_progress=lambda _stage, done, total: on_iteration and on_iteration(done, total),
            timings=seconds,
        )  # fmt: skip
    else:
        from bookrec.algorithms.cf import fit_als

        factors = fit_als(
            core.matrix, **parameters, threads=settings.threads, on_iteration=on_iteration
        )
    vectors = CfVectors(core.user_ids, factors.user_factors, core.book_ids, factors.item_factors)
    return CfFit(vectors, regularization, core.nnz, stats)


class CfModel:
    """Scores x_u · y_i over a catalogue; users without a vector get a row of -inf, books
    without one -inf. The book vectors (whole or as row blocks) are scored where they are,
    never copied into the catalogue's order."""

    name = "cf"

    def __init__(self, vectors: CfVectors, catalogue: np.ndarray) -> None:
        self.catalogue = catalogue
        self.vectors = vectors
        self._blocks = row_blocks(vectors.book_vectors)
        self._columns = positions(catalogue, vectors.book_ids)
        self.present = np.zeros(len(catalogue), dtype=bool)
        self.present[self._columns[self._columns >= 0]] = True
        # The catalogue is the vectors' own books in their order (a freshly fitted model, the
        # gate's): one product gives the scores, no copy into the catalogue's columns.
        self._in_order = len(self._blocks) == 1 and np.array_equal(
            self._columns, np.arange(len(catalogue))
        )

    def serves(self, user_ids: np.ndarray) -> np.ndarray:
        return positions(self.vectors.user_ids, user_ids) >= 0

    @functools.cached_property
    def _item_bound(self) -> float | None:
        return finite_bound(self._blocks[0])

    def scores(self, users: UserBatch) -> np.ndarray:
        rows = positions(self.vectors.user_ids, users.user_ids)
        dim = self._blocks[0].shape[1] if self._blocks else 0
        user_vectors = np.full((len(rows), dim), np.nan, dtype=np.float32)
        user_vectors[rows >= 0] = self.vectors.user_vectors[rows[rows >= 0]]
        if self._in_order:
            bound = self._item_bound if len(rows) >= BOUND_FROM_USERS else None
            return cf_scores(user_vectors, self._blocks[0], item_bound=bound)
        scores = np.full((len(rows), len(self.catalogue)), -np.inf, dtype=np.float32)
        for start, piece in pieces(self._blocks):
            columns = self._columns[start : start + len(piece)]
            kept = columns >= 0
            scores[:, columns[kept]] = cf_scores(user_vectors, piece)[:, kept]
        return scores
