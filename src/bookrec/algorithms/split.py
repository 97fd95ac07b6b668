"""Train/test splits of interaction rows for offline evaluation.

Every split returns a boolean mask over the interaction rows: True = test, train = ~mask.
The random and leave-last splits hold out whole (user, book) pairs, so no pair has events on
both sides. The temporal split cuts by time only, so a pair may have events on both sides;
such a pair is not a relevant test item (see `metrics.relevant_pairs`), since evaluation
ranks only books a user did not interact with in training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from bookrec.domain import InteractionArrays

SPLIT_METHODS: tuple[str, ...] = ("random", "temporal", "leave-last")


@dataclass(frozen=True)
class SplitSummary:
    """What a split produced, for the printed evaluation protocol.

    test_users: ids of users with both training and test interactions, the users ranked.
    cold_start_users: ids of users whose interactions are all in test; no model knows them, so
    they are left out of the ranking metrics (only the temporal split produces them).
    """

    method: str
    n_train: int
    n_test: int
    test_users: np.ndarray
    cold_start_users: np.ndarray
    n_cold_start_books: int
    test_fraction: float | None = None
    cut_timestamp: int | None = None

    def to_dict(self) -> dict[str, object]:
        """Counts only, JSON-ready."""
        return {
            "method": self.method,
            "test_fraction": self.test_fraction,
            "cut_timestamp": self.cut_timestamp,
            "train_interactions": self.n_train,
            "test_interactions": self.n_test,
            "test_users": len(self.test_users),
            "cold_start_users": len(self.cold_start_users),
            "cold_start_books": self.n_cold_start_books,
        }


def split_random(
    user_ids: np.ndarray, book_ids: np.ndarray, test_fraction: float, seed: int | None
) -> np.ndarray:
    """Per-user holdout of about `test_fraction` of each user's distinct books.

    All interactions of a held-out (user, book) pair go to test. A user with n distinct books
    holds out floor(f·n) or floor(f·n) + 1 books at random, so the expected share is exactly
    f, capped at n - 1: at least one book stays in train, and single-book users stay whole.
    The result depends on the seed and the set of rows, not on their order.
    """
    _check_fraction(test_fraction)
    pair_user, row_to_pair = _pair_index(user_ids, book_ids)
    n_pairs = len(pair_user)
    books_per_user = np.bincount(pair_user)
    rng = np.random.default_rng(seed)
    n_held = np.floor(test_fraction * books_per_user + rng.random(len(books_per_user)))
    n_held = np.minimum(n_held.astype(np.int64), books_per_user - 1)
    # Shuffle the pairs, regroup them by user (stable sort), hold out the first n_held of each.
    shuffled = rng.permutation(n_pairs)
    order = shuffled[np.argsort(pair_user[shuffled], kind="stable")]
    first_of_user = np.cumsum(books_per_user) - books_per_user
    rank = np.empty(n_pairs, dtype=np.int64)
    rank[order] = np.arange(n_pairs) - first_of_user[pair_user[order]]
    held = rank < n_held[pair_user]
    return held[row_to_pair]


def temporal_cut(timestamps: np.ndarray, test_fraction: float) -> int:
    """The (1 - test_fraction) quantile of the timestamps, as one of the timestamps."""
    _check_fraction(test_fraction)
    if len(timestamps) == 0:
        raise ValueError("no timestamps to cut")
    return int(np.quantile(np.asarray(timestamps), 1.0 - test_fraction, method="lower"))


def split_temporal(timestamps: np.ndarray, test_fraction: float) -> np.ndarray:
    """Global time cut: interactions strictly after `temporal_cut` are test.

    Interactions at the cut second stay in train, so heavy ties can make the test share
    smaller than `test_fraction` (all timestamps equal gives an empty test set).
    """
    timestamps = np.asarray(timestamps)
    if len(timestamps) == 0:
        return np.zeros(0, dtype=bool)
    return timestamps > temporal_cut(timestamps, test_fraction)


def split_leave_last(
    user_ids: np.ndarray, book_ids: np.ndarray, timestamps: np.ndarray
) -> np.ndarray:
    """Hold out each user's newest book: all interactions of that (user, book) pair.

    A pair's time is its first interaction (when the user came to the book), so the held-out
    book is the last new book the user engaged with. Ties go to the larger book id. Users
    with fewer than 2 distinct books stay whole in train.
    """
    pair_user, row_to_pair = _pair_index(user_ids, book_ids)
    n_pairs = len(pair_user)
    if n_pairs == 0:
        return np.zeros(0, dtype=bool)
    first_seen = np.full(n_pairs, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first_seen, row_to_pair, np.asarray(timestamps, dtype=np.int64))
    # Pairs come sorted by (user, book): each user's group is contiguous and in book order.
    starts = np.flatnonzero(np.diff(pair_user, prepend=-1))
    newest = np.maximum.reduceat(first_seen, starts)[pair_user]
    position = np.where(first_seen == newest, np.arange(n_pairs), -1)
    last_pairs = np.maximum.reduceat(position, starts)  # the largest book among the newest
    eligible = np.diff(starts, append=n_pairs) >= 2
    held = np.zeros(n_pairs, dtype=bool)
    held[last_pairs[eligible]] = True
    return held[row_to_pair]


def describe_split(
    user_ids: np.ndarray,
    book_ids: np.ndarray,
    test_mask: np.ndarray,
    method: str,
    test_fraction: float | None = None,
    cut_timestamp: int | None = None,
) -> SplitSummary:
    """Sizes, test users and cold-start users/books of a test mask."""
    user_ids, book_ids = np.asarray(user_ids), np.asarray(book_ids)
    test_mask = np.asarray(test_mask, dtype=bool)
    train_users = np.unique(user_ids[~test_mask])
    users_with_test = np.unique(user_ids[test_mask])
    cold_books = np.setdiff1d(
        np.unique(book_ids[test_mask]), np.unique(book_ids[~test_mask]), assume_unique=True
    )
    return SplitSummary(
        method=method,
        n_train=int(np.count_nonzero(~test_mask)),
        n_test=int(np.count_nonzero(test_mask)),
        test_users=np.intersect1d(users_with_test, train_users, assume_unique=True),
        cold_start_users=np.setdiff1d(users_with_test, train_users, assume_unique=True),
        n_cold_start_books=len(cold_books),
        test_fraction=test_fraction,
        cut_timestamp=cut_timestamp,
    )


def split_interactions(
    interactions: InteractionArrays,
    method: str,
    test_fraction: float = 0.2,
    seed: int | None = None,
) -> tuple[np.ndarray, SplitSummary]:
    """Split by method name (one of SPLIT_METHODS): the test mask and its summary."""
    users, books, times = interactions.user_ids, interactions.book_ids, interactions.timestamps
    cut = None
    if method == "random":
        test_mask = split_random(users, books, test_fraction, seed)
    elif method == "temporal":
        test_mask = split_temporal(times, test_fraction)
        cut = temporal_cut(times, test_fraction) if len(times) else None
    elif method == "leave-last":
        test_mask = split_leave_last(users, books, times)
    else:
        raise ValueError(f"unknown split {method!r}; expected one of {', '.join(SPLIT_METHODS)}")
    fraction = None if method == "leave-last" else test_fraction
    summary = describe_split(users, books, test_mask, method, fraction, cut)
    return test_mask, summary


def _pair_index(user_ids: np.ndarray, book_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (user, book) pairs, numbered in (user id, book id) order.

    Returns pair_user, the dense rank of each pair's user id (0..n_users-1, non-decreasing),
    and row_to_pair, the pair number of each row.
    """
    user_ids = np.asarray(user_ids, dtype=np.int64)
    book_ids = np.asarray(book_ids, dtype=np.int64)
    if user_ids.shape != book_ids.shape:
        raise ValueError("user_ids and book_ids must have the same length")
    if len(user_ids) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    user_code, book_code = user_ids - user_ids.min(), book_ids - book_ids.min()
    width = int(book_code.max()) + 1
    if (int(user_code.max()) + 1) * width > np.iinfo(np.int64).max:
        user_code = np.unique(user_ids, return_inverse=True)[1]
        book_code = np.unique(book_ids, return_inverse=True)[1]
        width = int(book_code.max()) + 1
    pair_keys, row_to_pair = np.unique(user_code * width + book_code, return_inverse=True)
    key_user = pair_keys // width
    pair_user = np.cumsum(np.diff(key_user, prepend=key_user[0]) != 0)
    return pair_user, row_to_pair


def _check_fraction(test_fraction: float) -> None:
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be between 0 and 1 (exclusive), got {test_fraction}")


@dataclass(frozen=True, eq=False)
class MatrixHoldout:
    """A users × books confidence matrix split for validation: `train` without the held
    entries, `held` (same shape) the held entries of the sampled `rows`."""

    train: sp.csr_matrix
    held: sp.csr_matrix
    rows: np.ndarray


def sample_users(
    user_ids: np.ndarray, eligible: np.ndarray, n_users: int, max_share: float, seed: int
) -> np.ndarray:
    """Positions of at most min(n_users, max_share · eligible) eligible users, chosen by a
    seeded hash of their id: the same users for the same seed while they stay eligible."""
    candidates = np.flatnonzero(eligible)
    limit = min(n_users, int(max_share * len(candidates)))
    if limit <= 0:
        return np.zeros(0, dtype=np.int64)
    keys = _hash(np.asarray(user_ids)[candidates], seed)
    return np.sort(candidates[np.argsort(keys, kind="stable")[:limit]])


def _hash(values: np.ndarray, seed: int) -> np.ndarray:
    """A seeded 64-bit mix of integers (splitmix64's finaliser)."""
    keys = np.asarray(values).astype(np.uint64) ^ np.uint64(seed & (2**63 - 1))
    with np.errstate(over="ignore"):
        keys = (keys ^ (keys >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        keys = (keys ^ (keys >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return keys ^ (keys >> np.uint64(31))


def hold_out_entries(
    matrix: sp.csr_matrix,
    user_ids: np.ndarray,
    book_ids: np.ndarray,
    *,
    n_users: int,
    max_share: float = 1.0,
    per_user: int | None = 1,
    fraction: float | None = None,
    min_books: int = 3,
    seed: int = 42,
) -> MatrixHoldout:
    """Hold out entries of a hashed sample of the users with at least `min_books` books: a
    random `fraction` of each one's books (at least 1, always leaving 2) or `per_user` of
    them. The held entries are removed from `train` (same shape: no row or column is lost)."""
    matrix = sp.csr_matrix(matrix, copy=True)
    matrix.sort_indices()
    counts = np.diff(matrix.indptr)
    rows = sample_users(user_ids, counts >= min_books, n_users, max_share, seed)
    rng = np.random.default_rng(seed)
    book_ids = np.asarray(book_ids, dtype=np.int64)
    held_rows, held_cols, held_values = [], [], []
    keep = np.ones(matrix.nnz, dtype=bool)
    for row in rows.tolist():
        start, end = matrix.indptr[row], matrix.indptr[row + 1]
        n = end - start
        take = per_user if fraction is None else int(np.floor(fraction * n + rng.random()))
        take = int(min(max(take or 1, 1), n - 2))
        # The pairs with the smallest hash of (user, book): the same pair of a user in every
        # matrix it is in (cf's k-core and gnn's graph), whatever other books it holds.
        keys = _hash(book_ids[matrix.indices[start:end]] * 1_000_003 + int(user_ids[row]), seed)
        chosen = start + np.argsort(keys, kind="stable")[:take]
        keep[chosen] = False
        held_rows.append(np.full(take, row))
        held_cols.append(matrix.indices[chosen])
        held_values.append(matrix.data[chosen])
    shape = matrix.shape
    if rows.size:
        held = sp.csr_matrix(
            (np.concatenate(held_values), (np.concatenate(held_rows), np.concatenate(held_cols))),
            shape=shape, dtype=np.float32,
        )  # fmt: skip
    else:
        held = sp.csr_matrix(shape, dtype=np.float32)
    row_of_entry = np.repeat(np.arange(shape[0]), counts)
    train = sp.csr_matrix(
        (matrix.data[keep], (row_of_entry[keep], matrix.indices[keep])), shape=shape
    )
    return MatrixHoldout(train=train, held=held, rows=rows)
