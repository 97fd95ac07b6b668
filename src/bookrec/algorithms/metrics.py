"""Ranking metrics at k with binary relevance, as recommender research reports them.

`recommended` is (n_users, k) item indices, best first, -1 for empty places (as top_k pads);
a row must not repeat an item. `relevant` gives each row's relevant items: a users × items
csr_matrix (nonzero entries are relevant) or a sequence of index arrays. With R the relevant
items of a user and hit_i = 1 if the item at rank i (1-based) is in R:

- precision@k = hits / k (empty places count as misses)
- recall@k    = hits / |R|
- nDCG@k      = Σ hit_i / log2(i + 1), divided by the same sum for an ideal list of
                min(|R|, k) hits
- AP@k        = Σ hit_i · precision@i / min(|R|, k); MAP@k is its mean
- hit rate@k  = 1 if any hit, else 0
- coverage    = distinct recommended items / catalogue size

Per-user functions return float arrays with NaN for users with no relevant items; those
users are left out of every mean (and of coverage in `evaluate_rankings`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

Relevant = sp.csr_matrix | sp.csr_array | Sequence[np.ndarray]


def relevant_pairs(
    user_index: np.ndarray,
    item_index: np.ndarray,
    test_mask: np.ndarray,
    shape: tuple[int, int],
) -> sp.csr_matrix:
    """Binary users × items csr_matrix of the test pairs that have no training interaction.

    A pair seen in training is excluded from the ranking, so it cannot count as relevant.
    """
    n_items = shape[1]
    keys = np.asarray(user_index, dtype=np.int64) * n_items + np.asarray(item_index)
    test_mask = np.asarray(test_mask, dtype=bool)
    test_keys = np.unique(keys[test_mask])
    kept = test_keys[~_contains(np.sort(keys[~test_mask]), test_keys)]
    ones = np.ones(len(kept), dtype=np.int8)
    return sp.csr_matrix((ones, (kept // n_items, kept % n_items)), shape=shape)


def hit_matrix(recommended: np.ndarray, relevant: Relevant) -> tuple[np.ndarray, np.ndarray]:
    """(hits, n_relevant): hits[u, i] is True if recommended[u, i] is relevant to user u."""
    recommended = np.asarray(recommended)
    if recommended.ndim != 2:
        raise ValueError(f"recommended must be 2-d (users × k), got {recommended.shape}")
    n_users = recommended.shape[0]
    relevance = _relevance_matrix(relevant, n_users, int(recommended.max(initial=-1)) + 1)
    n_items = relevance.shape[1]
    n_relevant = np.diff(relevance.indptr)
    # In a canonical csr the (row, column) keys come out sorted, ready for searchsorted.
    rows = np.arange(n_users, dtype=np.int64)
    relevant_keys = np.repeat(rows, n_relevant) * n_items + relevance.indices
    valid = (recommended >= 0) & (recommended < n_items)
    keys = rows[:, None] * n_items + np.where(valid, recommended, 0)
    return valid & _contains(relevant_keys, keys), n_relevant


def precision_at_k(recommended: np.ndarray, relevant: Relevant) -> np.ndarray:
    """Per-user hits / k."""
    return _precision(*hit_matrix(recommended, relevant))


def recall_at_k(recommended: np.ndarray, relevant: Relevant) -> np.ndarray:
    """Per-user hits / |R|."""
    return _recall(*hit_matrix(recommended, relevant))


def ndcg_at_k(recommended: np.ndarray, relevant: Relevant) -> np.ndarray:
    """Per-user DCG / ideal DCG over min(|R|, k) hits, log2 discount."""
    return _ndcg(*hit_matrix(recommended, relevant))


def average_precision_at_k(recommended: np.ndarray, relevant: Relevant) -> np.ndarray:
    """Per-user AP@k, normalised by min(|R|, k); its mean is MAP@k."""
    return _average_precision(*hit_matrix(recommended, relevant))


def hit_rate_at_k(recommended: np.ndarray, relevant: Relevant) -> np.ndarray:
    """Per-user 1.0 if any recommended item is relevant, else 0.0."""
    return _hit_rate(*hit_matrix(recommended, relevant))


def catalog_coverage(recommended: np.ndarray, n_items: int) -> float:
    """Distinct items in all the lists / n_items (padding -1 ignored)."""
    if n_items < 1:
        raise ValueError("n_items must be >= 1")
    items = np.asarray(recommended).ravel()
    return len(np.unique(items[items >= 0])) / n_items


def evaluate_rankings(
    recommended: np.ndarray, relevant: Relevant, n_items: int
) -> dict[str, float]:
    """Means over users with relevant items: precision, recall, ndcg, map, hit_rate; plus
    coverage of those users' lists and `users`, the number of users evaluated.

    With no evaluable user every metric is NaN and users is 0.
    """
    hits, n_relevant = hit_matrix(recommended, relevant)
    evaluated = n_relevant > 0
    means = {
        name: _mean(metric(hits, n_relevant))
        for name, metric in (
            ("precision", _precision),
            ("recall", _recall),
            ("ndcg", _ndcg),
            ("map", _average_precision),
            ("hit_rate", _hit_rate),
        )
    }
    users = int(np.count_nonzero(evaluated))
    coverage = catalog_coverage(np.asarray(recommended)[evaluated], n_items) if users else np.nan
    return means | {"coverage": coverage, "users": users}


def _relevance_matrix(relevant: Relevant, n_users: int, min_items: int) -> sp.csr_matrix:
    """Canonical csr (sorted, no duplicates, no zeros) with n_users rows."""
    if sp.issparse(relevant):
        matrix = sp.csr_matrix(relevant, dtype=np.float64, copy=True)
        matrix.sum_duplicates()
        matrix.eliminate_zeros()
    else:
        arrays = [np.asarray(items, dtype=np.int64) for items in relevant]
        lengths = [len(items) for items in arrays]
        columns = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int64)
        n_items = max(min_items, int(columns.max(initial=-1)) + 1, 1)
        ones = np.ones(len(columns), dtype=np.float64)
        rows = np.repeat(np.arange(len(arrays)), lengths)
        matrix = sp.csr_matrix((ones, (rows, columns)), shape=(len(arrays), n_items))
        matrix.sum_duplicates()
    if matrix.shape[0] != n_users:
        raise ValueError(f"relevant has {matrix.shape[0]} users, recommended has {n_users}")
    return matrix


def _contains(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Elementwise `keys in sorted_keys`, by binary search (np.isin sorts both sides)."""
    if len(sorted_keys) == 0:
        return np.zeros(np.shape(keys), dtype=bool)
    found = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[found] == keys


def _rank_discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2))


def _per_user(values: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    return np.where(n_relevant > 0, values, np.nan)


def _precision(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    return _per_user(hits.sum(axis=1) / hits.shape[1], n_relevant)


def _recall(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    return _per_user(hits.sum(axis=1) / np.maximum(n_relevant, 1), n_relevant)


def _ndcg(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    k = hits.shape[1]
    discounts = _rank_discounts(k)
    ideal = np.cumsum(discounts)[np.clip(n_relevant, 1, k) - 1]
    return _per_user(hits @ discounts / ideal, n_relevant)


def _average_precision(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    k = hits.shape[1]
    precision_at_rank = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    summed = (precision_at_rank * hits).sum(axis=1)
    return _per_user(summed / np.clip(n_relevant, 1, k), n_relevant)


def _hit_rate(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    return _per_user(hits.any(axis=1).astype(np.float64), n_relevant)


def _mean(per_user: np.ndarray) -> float:
    evaluated = per_user[~np.isnan(per_user)]
    return float(evaluated.mean()) if len(evaluated) else float("nan")
