"""Implicit-feedback ALS (implicit's CPU conjugate-gradient solver) on a confidence matrix."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

REGULARIZATION_SCALE = 0.06


@dataclass(frozen=True)
class AlsFactors:
    """Latent factors: one float32 row per matrix row (user) and per matrix column (book)."""

    user_factors: np.ndarray
    item_factors: np.ndarray


def scaled_regularization(n_pairs: int, alpha: float, scale: float = REGULARIZATION_SCALE) -> float:
    """ALS regularization for a matrix of `n_pairs` nonzero pairs: scale · alpha · √n_pairs.

    implicit adds λ·I to sums over every interaction and, as the unseen pairs' term, over every
    user or book, so a fixed λ regularizes a large data set less than a small one; growing
    with √pairs held nDCG@10 within 5% of the best grid value from 9k to 480k pairs (see
    benchmarks/tune_defaults.py), where every fixed λ of the grid lost 13% or more on one of them.
    """
    return scale * alpha * math.sqrt(max(n_pairs, 1))


def regularization_for(given: float | None, n_pairs: int, alpha: float) -> float:
    """The regularization a fit uses: the given one, else scaled with the data."""
    return given if given is not None else scaled_regularization(n_pairs, alpha)


def fit_als(
    matrix: sp.csr_matrix,
    *,
    factors: int = 128,
    iterations: int = 15,
    regularization: float = 0.01,
    alpha: float = 1.0,
    seed: int = 42,
    threads: int = 0,
    on_iteration: Callable[[int, int], None] | None = None,
) -> AlsFactors:
    """Factorize a users × books confidence matrix.

    implicit 0.7 takes `alpha * value` as the confidence of a stored pair (no "1 +"), with
    preference 1; absent pairs have confidence 1 and preference 0. `threads=0` uses every
    core; the result does not depend on it. `on_iteration(done, total)` is called after each
    iteration, `done` counting from 1.
    """
    if matrix.shape[0] == 0 or matrix.shape[1] == 0 or matrix.nnz == 0:
        raise ValueError("cannot fit ALS on an empty matrix")
    if factors < 1 or iterations < 1:
        raise ValueError("factors and iterations must be >= 1")
    # Imported before limiting threads: threadpoolctl only limits BLAS libraries already loaded.
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    user_items = sp.csr_matrix(matrix, dtype=np.float32)

    def callback(iteration: int, _elapsed: float, _loss: float | None) -> None:
        if on_iteration is not None:
            on_iteration(iteration + 1, iterations)

    with threadpool_limits(limits=1, user_api="blas"):
        model = AlternatingLeastSquares(
            factors=factors,
            regularization=regularization,
            alpha=alpha,
            dtype=np.float32,
            use_cg=True,
            iterations=iterations,
            num_threads=threads,
            random_state=seed,
        )
        model.fit(user_items, show_progress=False, callback=callback)
    return AlsFactors(user_factors=model.user_factors, item_factors=model.item_factors)


def solve_users(
    item_factors: np.ndarray,
    user_items: sp.csr_matrix,
    *,
    regularization: float,
    alpha: float,
    threads: int = 0,
) -> np.ndarray:
    """The exact least-squares user vectors of the rows of `user_items` for fixed book vectors
    (ALS's user step, as implicit's recalculate_user solves it): one float32 row per row."""
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    item_factors = np.ascontiguousarray(item_factors, dtype=np.float32)
    user_items = sp.csr_matrix(user_items, dtype=np.float32)
    if user_items.shape[0] == 0:
        return np.zeros((0, item_factors.shape[1]), dtype=np.float32)
    with threadpool_limits(limits=1, user_api="blas"):
        model = AlternatingLeastSquares(
            factors=item_factors.shape[1], regularization=regularization, alpha=alpha,
            dtype=np.float32, num_threads=threads,
        )  # fmt: skip
        model.item_factors = item_factors
        return model.recalculate_user(np.arange(user_items.shape[0]), user_items)
