"""Implicit-feedback ALS (implicit's CPU conjugate-gradient solver) on a confidence matrix, and
its half-step on its own: the rows of one side solved exactly against the other side's fixed
factors. For one user u with confidences c_ui = alpha · w_ui over the books i they read,
against fixed book factors Y,

    (YᵀY + Yᵀ(C_u − I)Y + λI) x_u = Yᵀ C_u p_u

the equation implicit's `recalculate_user` solves (and, transposed, `recalculate_item` for a
book against fixed user factors). The gate re-solves held-out users with it, train cf gives
them back their held pairs, and fold-in solves new users and books; YᵀY is over every row of
the fixed side, so fold-in passes it in (`fixed_gram`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

REGULARIZATION_SCALE = 0.06
SOLVE_BATCH = 256  # equations solved at once: 256 × 128² float64 = 32 MB


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


def regularization_for(
    given: float | None, n_pairs: int, alpha: float, scale: float = REGULARIZATION_SCALE
) -> float:
    """The regularization a fit uses: the given one, else scaled with the data."""
    return given if given is not None else scaled_regularization(n_pairs, alpha, scale)


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


def solve_rows(
    confidence: sp.csr_matrix,
    fixed: np.ndarray,
    *,
    regularization: float,
    alpha: float,
    fixed_gram: np.ndarray | None = None,
) -> np.ndarray:
    """The least-squares vector of each row of `confidence` (weights w as in the training
    matrix, one column per row of `fixed`) against the fixed factors: float32, one row per
    row; a row without any pair gets zeros.

    `fixed_gram` is YᵀY over every row of the fixed side (default: over `fixed`)."""
    from threadpoolctl import threadpool_limits

    # One BLAS thread: OpenBLAS's threads on 128 x 128 systems wait on each other, and on a
    # busy core: 5,000 rows took 8-15 s with two threads and 1.5 s with one.
    with threadpool_limits(limits=1, user_api="blas"):
        return _solve_rows(confidence, fixed, regularization, alpha, fixed_gram)


def _solve_rows(
    confidence: sp.csr_matrix,
    fixed: np.ndarray,
    regularization: float,
    alpha: float,
    fixed_gram: np.ndarray | None,
) -> np.ndarray:
    confidence = sp.csr_matrix(confidence)
    y = np.asarray(fixed, dtype=np.float64)
    n_factors = y.shape[1]
    if confidence.shape[1] != y.shape[0]:
        raise ValueError(f"{confidence.shape[1]} columns but {y.shape[0]} fixed factors")
    base = (gram(y) if fixed_gram is None else np.asarray(fixed_gram, np.float64)) + (
        regularization * np.eye(n_factors)
    )
    out = np.zeros((confidence.shape[0], n_factors), dtype=np.float32)
    indptr, indices = confidence.indptr, confidence.indices
    data = confidence.data.astype(np.float64) * alpha
    for start in range(0, confidence.shape[0], SOLVE_BATCH):
        rows = [
            r for r in range(start, min(start + SOLVE_BATCH, confidence.shape[0]))
            if indptr[r + 1] > indptr[r]
        ]  # fmt: skip
        if not rows:
            continue
        a = np.empty((len(rows), n_factors, n_factors))
        b = np.empty((len(rows), n_factors))
        for k, r in enumerate(rows):
            span = slice(indptr[r], indptr[r + 1])
            yu, c = y[indices[span]], data[span]
            a[k] = base + yu.T @ (yu * (c - 1.0)[:, None])
            b[k] = yu.T @ c
        out[rows] = np.linalg.solve(a, b[:, :, None])[:, :, 0]
    return out


def gram(factors: np.ndarray) -> np.ndarray:
    """FᵀF in float64."""
    f = np.asarray(factors, dtype=np.float64)
    return f.T @ f
