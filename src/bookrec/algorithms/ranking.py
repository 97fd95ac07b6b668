"""Top-k ranking of item scores, in row batches, with already-seen items excluded.

Contract: an item whose score is -inf or NaN is never recommended, and neither is an item
with a stored entry in the `exclude` row of its user. A row with fewer than k recommendable
items is padded with -1. Equal scores are ordered by item index, lowest first, so the
same scores always give the same lists.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import scipy.sparse as sp

ScoreFn = Callable[[np.ndarray], np.ndarray]
ProgressFn = Callable[[int, int], None]


def seen_matrix(
    user_index: np.ndarray, item_index: np.ndarray, shape: tuple[int, int]
) -> sp.csr_matrix:
    """Binary users × items csr_matrix of the given (user, item) pairs: `exclude` for top_k."""
    import scipy.sparse as sp

    user_index, item_index = np.asarray(user_index), np.asarray(item_index)
    ones = np.ones(len(user_index), dtype=np.int8)
    matrix = sp.csr_matrix((ones, (user_index, item_index)), shape=shape)
    matrix.sum_duplicates()
    matrix.data[:] = 1
    return matrix


def top_k(
    scores: np.ndarray,
    k: int,
    exclude: sp.csr_matrix | None = None,
    *,
    batch_size: int = 1024,
) -> np.ndarray:
    """Indices (n_users, k) of the k best items of each row of a users × items score matrix.

    Row i of `exclude` (same shape as `scores`) lists the items never to recommend to row i.
    """
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-d (users × items), got shape {scores.shape}")
    rows = np.arange(scores.shape[0])
    return top_k_batched(
        lambda batch: scores[batch[0] : batch[-1] + 1],
        rows,
        k,
        exclude,
        n_items=scores.shape[1],
        batch_size=batch_size,
    )


def top_k_batched(
    score_fn: ScoreFn,
    user_rows: np.ndarray,
    k: int,
    exclude: sp.csr_matrix | None = None,
    *,
    n_items: int | None = None,
    batch_size: int = 1024,
    on_progress: ProgressFn | None = None,
) -> np.ndarray:
    """top_k over `user_rows`, scoring `batch_size` rows at a time with `score_fn`.

    score_fn(rows) returns the (len(rows), n_items) scores of those user rows; it is never
    asked for more than batch_size rows, and its result is copied, not modified. `exclude`
    rows are indexed by the user rows. on_progress(done, total) is called after each batch.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    user_rows = np.asarray(user_rows, dtype=np.int64)
    if exclude is not None:
        import scipy.sparse as sp

        exclude = sp.csr_matrix(exclude)
        n_items = exclude.shape[1] if n_items is None else n_items
        if exclude.shape[1] != n_items:
            raise ValueError(f"exclude has {exclude.shape[1]} items, scores have {n_items}")
    total = len(user_rows)
    result = np.full((total, k), -1, dtype=np.int64)
    for start in range(0, total, batch_size):
        rows = user_rows[start : start + batch_size]
        batch = _float_copy(score_fn(rows))
        if batch.shape[0] != len(rows) or (n_items is not None and batch.shape[1] != n_items):
            raise ValueError(f"score_fn returned shape {batch.shape} for {len(rows)} rows")
        n_items = batch.shape[1]
        if exclude is not None:
            _mask_excluded(batch, exclude[rows])
        result[start : start + len(rows)] = top_k_rows(batch, k)
        if on_progress is not None:
            on_progress(start + len(rows), total)
    return result


def _float_copy(scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-d (users × items), got shape {scores.shape}")
    if np.issubdtype(scores.dtype, np.floating):
        return scores.copy()
    return scores.astype(np.float64)


def _mask_excluded(batch: np.ndarray, exclude_rows: sp.csr_matrix) -> None:
    row_of_entry = np.repeat(np.arange(batch.shape[0]), np.diff(exclude_rows.indptr))
    batch[row_of_entry, exclude_rows.indices] = -np.inf


def top_k_rows(batch: np.ndarray, k: int) -> np.ndarray:
    """Top k of each row of a writable float batch (its NaN become -inf); ties by lowest
    index; -1 pads. One partition of the values, not of their indices: ~4x faster than
    argpartition over 200k columns. Over a large catalogue, a threshold from a sample of
    columns first leaves only each row's few best values to rank (the same result)."""
    n_rows, n_items = batch.shape
    kk = min(k, n_items)
    if n_rows == 0 or kk == 0:
        return np.full((n_rows, k), -1, dtype=np.int64)
    if np.isnan(batch.sum()):  # one read, no mask written, where there is no NaN
        batch[np.isnan(batch)] = -np.inf
    if n_items < PREFILTER_ITEMS or kk * PREFILTER_SAMPLE > n_items:
        return _top_k_rows(batch, k)
    return _top_k_above_sampled_threshold(batch, k)


PREFILTER_ITEMS = 20_000  # columns from which a sampled threshold pays
PREFILTER_SAMPLE = 64  # columns sampled per kept value


def _top_k_above_sampled_threshold(batch: np.ndarray, k: int) -> np.ndarray:
    """_top_k_rows of the values at or above each row's threshold: the value a strided sample
    of the columns ranks where a few times k of the row's values are expected above it (the
    k best are among them whenever k are). A row with fewer than k there is ranked whole."""
    n_rows, n_items = batch.shape
    kk = min(k, n_items)
    step = max(1, n_items // (kk * PREFILTER_SAMPLE))
    sample = batch[:, ::step]
    rank = min(sample.shape[1] - 1, 4 * kk * sample.shape[1] // n_items + 8)
    threshold = -np.partition(-sample, rank, axis=1)[:, rank, None]
    above = batch >= threshold
    counts = above.sum(axis=1)
    result = np.full((n_rows, k), -1, dtype=np.int64)
    short = counts < kk
    if short.any():
        result[short] = _top_k_rows(batch[short], k)
    rows = np.flatnonzero(~short)
    if len(rows):
        kept_rows, columns = nonzero_2d(above if len(rows) == n_rows else above[rows])
        width = int(counts[rows].max())
        starts = np.concatenate([[0], np.cumsum(counts[rows])[:-1]])
        place = np.arange(len(columns)) - np.repeat(starts, counts[rows])
        values = np.full((len(rows), width), -np.inf, dtype=batch.dtype)
        at = np.zeros((len(rows), width), dtype=np.int64)
        values[kept_rows, place] = batch[rows[kept_rows], columns]
        at[kept_rows, place] = columns
        best = _top_k_rows(values, k)
        result[rows] = np.where(best >= 0, np.take_along_axis(at, np.maximum(best, 0), 1), -1)
    return result


def _top_k_rows(batch: np.ndarray, k: int) -> np.ndarray:
    n_rows, n_items = batch.shape
    result = np.full((n_rows, k), -1, dtype=np.int64)
    kk = min(k, n_items)
    threshold = np.partition(batch, n_items - kk, axis=1)[:, n_items - kk, None]
    chosen = batch > threshold
    tied = batch == threshold
    n_wanted_ties = kk - chosen.sum(axis=1)
    # argpartition would pick arbitrary items among scores tied at the k-th place; take the
    # lowest indices among them instead, and only where there are more ties than places.
    over = np.flatnonzero(tied.sum(axis=1) > n_wanted_ties)
    if len(over):
        first_ties = np.cumsum(tied[over], axis=1, dtype=np.int32) <= n_wanted_ties[over, None]
        tied[over] &= first_ties
    chosen |= tied
    columns = nonzero_2d(chosen)[1].reshape(n_rows, kk)
    values = np.take_along_axis(batch, columns, axis=1)
    order = np.argsort(-values, axis=1, kind="stable")
    columns = np.take_along_axis(columns, order, axis=1)
    columns[np.take_along_axis(values, order, axis=1) == -np.inf] = -1
    result[:, :kk] = columns
    return result


def nonzero_2d(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.nonzero of a 2-d bool array, the same (rows, columns) in the same order: numpy's
    1-d nonzero is ~8x faster than its 2-d one (16 vs 136 ms at 167 x 200k)."""
    return np.divmod(np.flatnonzero(mask), mask.shape[1])
