"""Item-item EASE (Steck 2019, "Embarrassingly Shallow Autoencoders"), the reference figure of
issue #14: B = I - P · diag(1 / diag P) with P = (XᵀX + λI)⁻¹, scores X·B, λ picked on a grid on
the very split it is measured on (an optimistic reference, as in the issue's table).

Run on a bookrec Holdout (algorithms.evaluation.make_holdout), so the split, the candidates and
the relevant books are exactly those of `bookrec evaluate`.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp

from bookrec.algorithms.evaluation import Holdout

LAMBDA_GRID = (50.0, 100.0, 200.0, 400.0, 800.0, 1600.0)


def ease_weights(train: sp.csr_matrix, lam: float) -> np.ndarray:
    """The item-item matrix B (n_items × n_items, float32) of binary `train` (users × items)."""
    binary = sp.csr_matrix(train, dtype=np.float64, copy=True)
    binary.data[:] = 1.0
    gram = np.asarray((binary.T @ binary).todense(), dtype=np.float64)
    gram[np.diag_indices_from(gram)] += lam
    inverse = np.linalg.inv(gram)
    weights = inverse / (-np.diag(inverse))
    weights[np.diag_indices_from(weights)] = 0.0
    return weights.astype(np.float32)


def ease_on_holdout(held: Holdout, k: int = 10, grid=LAMBDA_GRID) -> dict:
    """nDCG@k (and the other metrics) of EASE at each λ of the grid; the best one first."""
    train = held.full.matrix
    users = sp.csr_matrix(held.user_weights, dtype=np.float32, copy=True)
    users.data[:] = 1.0
    runs = []
    for lam in grid:
        started = time.perf_counter()
        weights = ease_weights(train, lam)
        metrics, _ = held.measure(lambda rows, w=weights: np.asarray(users[rows] @ w), k)
        runs.append({"lambda": lam, "ndcg": float(metrics["ndcg"]),
                     "seconds": time.perf_counter() - started})  # fmt: skip
    best = max(runs, key=lambda r: r["ndcg"])
    return {"best": best, "grid": runs}
