"""Fold-in: vectors of new or changed rows solved against fixed factors of a finished run.

cf: ALS's own half-step against the run's fixed factors (algorithms.cf.solve_rows), with YᵀY
over every row of the fixed side kept up to date here (`updated_gram`).

gnn: a book's vector as the confidence-weighted mean of the vectors of the books its readers
read (a two-step walk book → reader → book on the training graph), the cheapest of the
options compared in benchmarks/bench_fold_in.py.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def updated_gram(current: np.ndarray, removed: np.ndarray, added: np.ndarray) -> np.ndarray:
    """FᵀF after the rows `removed` of F were replaced by (or dropped for) the rows `added`."""
    old = np.asarray(removed, dtype=np.float64).reshape(-1, current.shape[0])
    new = np.asarray(added, dtype=np.float64).reshape(-1, current.shape[0])
    return current - old.T @ old + new.T @ new


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
