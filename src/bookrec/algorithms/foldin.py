"""Fold-in: vectors of new or changed rows solved against fixed factors of a finished run.

cf: the exact implicit-ALS half-step. For one user u with confidences c_ui = alpha · w_ui over
the books i they read, against fixed book factors Y (all books with a vector of the run),

    (YᵀY + Yᵀ(C_u − I)Y + λI) x_u = Yᵀ C_u p_u

the equation implicit's `recalculate_user` solves (and, transposed, `recalculate_item` for a
book against fixed user factors). YᵀY is over every row of the fixed side, so it is passed in
(`gram`) when that side is too large to hold: it is a `factors × factors` matrix.

gnn: a book's vector as the confidence-weighted mean of the vectors of the books its readers
read (a two-step walk book → reader → book on the training graph), the cheapest of the
options compared in benchmarks/bench_fold_in.py.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

SOLVE_BATCH = 256  # equations solved at once: 256 × 128² float64 = 32 MB


def gram(factors: np.ndarray) -> np.ndarray:
    """FᵀF in float64."""
    f = np.asarray(factors, dtype=np.float64)
    return f.T @ f


def updated_gram(current: np.ndarray, removed: np.ndarray, added: np.ndarray) -> np.ndarray:
    """FᵀF after the rows `removed` of F were replaced by (or dropped for) the rows `added`."""
    old = np.asarray(removed, dtype=np.float64).reshape(-1, current.shape[0])
    new = np.asarray(added, dtype=np.float64).reshape(-1, current.shape[0])
    return current - old.T @ old + new.T @ new


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


def neighbour_mean(
    book_readers: sp.csr_matrix, reader_books: sp.csr_matrix, vectors: np.ndarray
) -> np.ndarray:
    """Each new book's vector as the mean of `vectors` (one per column of `reader_books`)
    over a two-step walk: book → reader, weighted by the book's confidences
    (`book_readers`: new books × readers), then reader → book, weighted by that reader's
    confidences (`reader_books`: readers × books with a vector), each step normalized.
    float32; a book whose readers read no book with a vector gets zeros."""
    step1 = _row_normalized(book_readers)
    step2 = _row_normalized(reader_books)
    walk = step1 @ step2  # new books × books with a vector: the walk's landing probabilities
    mean = np.asarray(walk @ np.asarray(vectors, dtype=np.float64))
    return mean.astype(np.float32)


def _row_normalized(matrix: sp.csr_matrix) -> sp.csr_matrix:
    matrix = sp.csr_matrix(matrix, dtype=np.float64)
    sums = np.asarray(matrix.sum(axis=1)).ravel()
    scale = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)
    return sp.diags(scale) @ matrix
