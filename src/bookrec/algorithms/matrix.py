"""The user × book confidence matrix: event weighting, time decay, k-core filtering."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from bookrec.domain import EVENT_CODES, EVENTS, RATING_MAX, RATING_MIN, InteractionArrays

if TYPE_CHECKING:
    import scipy.sparse as sp

SECONDS_PER_DAY = 86_400.0
_RATE = EVENT_CODES["rate"]


@dataclass(frozen=True)
class WeightScheme:
    """How much confidence one interaction adds to its (user, book) pair.

    Defaults, in increasing strength of intent: view 1 (passing interest), click 2 (chose to
    look closer), like 4 (explicit approval), purchase 6 (paid for it). A rating is worth
    `rate_per_star` per star above `rate_zero_at`: 1-2★ give 0 (the matrix has no negatives,
    so a bad rating must not count as approval), 3★ 2 (lukewarm, like a click), 4★ 4 (like a
    like), 5★ 6 (like a purchase). A rating is a state: only the latest rating of a pair
    counts, so re-loading or re-rating never inflates it; the other events accumulate. The
    sum for one pair is capped at `cap` (10), so fifty views of one book do not drown out
    every other signal of that user. implicit uses the value as the confidence itself
    (times alpha); unseen pairs have confidence 1 and preference 0.
    `half_life_days` (off by default) multiplies each interaction by 0.5 ** (age / half-life).
    """

    view: float = 1.0
    click: float = 2.0
    like: float = 4.0
    purchase: float = 6.0
    rate_per_star: float = 2.0
    rate_zero_at: float = 2.0
    cap: float = 10.0
    half_life_days: float | None = None

    def __post_init__(self) -> None:
        for name in ("view", "click", "like", "purchase", "rate_per_star"):
            if getattr(self, name) < 0:
                raise ValueError(f"WeightScheme.{name} must be >= 0")
        if not self.cap > 0:
            raise ValueError("WeightScheme.cap must be > 0")
        if self.half_life_days is not None and not self.half_life_days > 0:
            raise ValueError("WeightScheme.half_life_days must be > 0 or None")

    def event_table(self) -> np.ndarray:
        """Weight per event code (float64); the `rate` slot is 0, ratings are scored apart."""
        by_name = {"view": self.view, "click": self.click, "like": self.like}
        by_name |= {"rate": 0.0, "purchase": self.purchase}
        return np.array([by_name[name] for name in EVENTS], dtype=np.float64)

    def rating_weight(self, ratings: np.ndarray) -> np.ndarray:
        """Weight of `rate` events by their rating; NaN (no rating) weighs 0."""
        stars = np.clip(ratings.astype(np.float64), RATING_MIN, RATING_MAX)
        weight = self.rate_per_star * np.maximum(stars - self.rate_zero_at, 0.0)
        return np.nan_to_num(weight, nan=0.0)


@dataclass(frozen=True, eq=False)  # arrays have no truth value: compare by identity
class InteractionMatrix:
    """A users × books csr_matrix (float32) with the database ids of its rows and columns."""

    matrix: sp.csr_matrix
    user_ids: np.ndarray
    book_ids: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.matrix.shape

    @property
    def nnz(self) -> int:
        return int(self.matrix.nnz)

    def user_index(self, user_id: int) -> int:
        """Row of a user's database id; KeyError if the matrix has no such user."""
        return _position(self.user_ids, user_id, "user")

    def book_index(self, book_id: int) -> int:
        """Column of a book's database id; KeyError if the matrix has no such book."""
        return _position(self.book_ids, book_id, "book")

    def user_rows(self, user_ids: np.ndarray) -> np.ndarray:
        """Rows of many user ids at once; -1 where the matrix has no such user."""
        return positions(self.user_ids, user_ids)

    def book_columns(self, book_ids: np.ndarray) -> np.ndarray:
        """Columns of many book ids at once; -1 where the matrix has no such book."""
        return positions(self.book_ids, book_ids)


def event_weights(
    events: np.ndarray,
    ratings: np.ndarray,
    timestamps: np.ndarray,
    scheme: WeightScheme,
    now: float | None = None,
) -> np.ndarray:
    """Weight of each interaction (float32), time decay included.

    `now` (epoch seconds) is needed only when the scheme decays; interactions newer than `now`
    are not decayed.
    """
    codes = np.asarray(events).astype(np.intp)
    if codes.size and (codes.min() < 0 or codes.max() >= len(EVENTS)):
        raise ValueError(f"event codes must be in 0..{len(EVENTS) - 1}")
    weights = scheme.event_table()[codes]
    is_rate = codes == _RATE
    weights[is_rate] = scheme.rating_weight(np.asarray(ratings)[is_rate])
    if scheme.half_life_days is not None:
        if now is None:
            raise ValueError("a decaying WeightScheme needs `now`")
        age_days = np.maximum(now - np.asarray(timestamps, dtype=np.float64), 0.0) / SECONDS_PER_DAY
        weights *= 0.5 ** (age_days / scheme.half_life_days)
    return weights.astype(np.float32)


def build_matrix(
    interactions: InteractionArrays,
    scheme: WeightScheme | None = None,
    now: float | None = None,
    *,
    user_ids: np.ndarray | None = None,
    book_ids: np.ndarray | None = None,
) -> InteractionMatrix:
    """The confidence matrix of `interactions`.

    Per (user, book): the latest `rate` event (by timestamp, then input order) plus every other
    event, summed, capped at `scheme.cap`; pairs that weigh 0 are dropped, and so are users and
    books left without any pair. `now` defaults to the newest timestamp in the data, so the
    same data always gives the same matrix. Passing `user_ids` / `book_ids` fixes the rows /
    columns instead (e.g. to align a test split with a training matrix): interactions of other
    ids are ignored and empty rows / columns are kept.
    """
    import scipy.sparse as sp  # here, not at the top: recommend starts faster without scipy

    scheme = scheme or WeightScheme()
    timestamps, weights = _weights(interactions, scheme, now)

    users, rows = _index(np.asarray(interactions.user_ids, dtype=np.int64), user_ids)
    books, cols = _index(np.asarray(interactions.book_ids, dtype=np.int64), book_ids)
    known = (rows >= 0) & (cols >= 0)
    pair = rows.astype(np.int64) * len(books) + cols
    weights[_superseded_ratings(interactions.events, timestamps, pair, known)] = 0.0
    keep = known & (weights > 0)

    coo = sp.coo_matrix((weights[keep], (rows[keep], cols[keep])), shape=(len(users), len(books)))
    matrix = coo.tocsr()
    matrix.sum_duplicates()
    np.minimum(matrix.data, scheme.cap, out=matrix.data)
    result = InteractionMatrix(matrix.astype(np.float32), users, books)
    return _drop_empty(result, rows=user_ids is None, columns=book_ids is None)


def weight_row(
    interactions: InteractionArrays,
    book_ids: np.ndarray,
    scheme: WeightScheme | None = None,
    now: float | None = None,
) -> np.ndarray:
    """One user's row of `build_matrix(..., book_ids=book_ids)` as a dense float32 array over
    the sorted `book_ids`, computed without scipy (for the single-user path of recommend)."""
    users = np.asarray(interactions.user_ids)
    if len(users) and users.min() != users.max():
        raise ValueError("weight_row takes the interactions of one user")
    scheme = scheme or WeightScheme()
    timestamps, weights = _weights(interactions, scheme, now)
    columns = positions(np.asarray(book_ids, dtype=np.int64), interactions.book_ids)
    known = columns >= 0
    weights[_superseded_ratings(interactions.events, timestamps, columns, known)] = 0.0
    keep = known & (weights > 0)
    row = np.bincount(columns[keep], weights[keep], minlength=len(book_ids))
    return np.minimum(row, scheme.cap).astype(np.float32)


def _weights(
    interactions: InteractionArrays, scheme: WeightScheme, now: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """(int64 timestamps, float64 weight of each interaction); `now` defaults to the newest."""
    timestamps = np.asarray(interactions.timestamps, dtype=np.int64)
    if now is None:
        now = float(timestamps.max()) if len(timestamps) else 0.0
    weights = event_weights(interactions.events, interactions.ratings, timestamps, scheme, now)
    return timestamps, weights.astype(np.float64)


def k_core(
    m: InteractionMatrix, min_user_interactions: int, min_book_interactions: int
) -> InteractionMatrix:
    """The largest sub-matrix where every user has >= min_user_interactions nonzero books and
    every book >= min_book_interactions nonzero users (may be empty)."""
    coo = m.matrix.tocoo()
    rows, cols = coo.row, coo.col
    entry = coo.data != 0
    user_alive = np.ones(m.shape[0], dtype=bool)
    book_alive = np.ones(m.shape[1], dtype=bool)
    while True:
        entry &= user_alive[rows] & book_alive[cols]
        user_counts = np.bincount(rows[entry], minlength=m.shape[0])
        book_counts = np.bincount(cols[entry], minlength=m.shape[1])
        users_ok = user_alive & (user_counts >= min_user_interactions)
        books_ok = book_alive & (book_counts >= min_book_interactions)
        if (users_ok == user_alive).all() and (books_ok == book_alive).all():
            break
        user_alive, book_alive = users_ok, books_ok
    return _subset(m, user_alive, book_alive)


def _index(ids: np.ndarray, fixed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct ids, position of each id in them; -1 for ids not in `fixed`)."""
    if fixed is not None:
        distinct = np.unique(np.asarray(fixed, dtype=np.int64))
        return distinct, positions(distinct, ids)
    if ids.size == 0:
        return ids.copy(), ids.copy()
    low = int(ids.min())
    span = int(ids.max()) - low + 1
    if span > max(8 * ids.size, 1 << 20):
        distinct = np.unique(ids)
        return distinct, np.searchsorted(distinct, ids).astype(np.int64)
    # Database ids are nearly dense: a lookup table is ~25x faster than sorting.
    present = np.zeros(span, dtype=bool)
    present[ids - low] = True
    rank = np.cumsum(present, dtype=np.int64) - 1
    return np.flatnonzero(present) + low, rank[ids - low]


def positions(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Index of each id in the ascending `sorted_ids`, -1 where absent (int64)."""
    ids = np.asarray(ids, dtype=np.int64)
    at = np.searchsorted(sorted_ids, ids)
    found = at < len(sorted_ids)
    found[found] = sorted_ids[at[found]] == ids[found]
    return np.where(found, at, -1).astype(np.int64)


def _position(sorted_ids: np.ndarray, db_id: int, kind: str) -> int:
    at = int(positions(sorted_ids, np.array([db_id]))[0])
    if at < 0:
        raise KeyError(f"no {kind} with id {db_id} in the matrix")
    return at


def _superseded_ratings(
    events: np.ndarray, timestamps: np.ndarray, pair: np.ndarray, known: np.ndarray
) -> np.ndarray:
    """Indices of `rate` events that a later rating of the same pair replaces."""
    rates = np.flatnonzero((np.asarray(events) == _RATE) & known)
    # Sorted by pair, then time, then input order: the last of each pair is the one that counts.
    order = rates[np.lexsort((rates, timestamps[rates], pair[rates]))]
    sorted_pairs = pair[order]
    superseded = sorted_pairs[:-1] == sorted_pairs[1:]
    return order[:-1][superseded]


def _drop_empty(m: InteractionMatrix, *, rows: bool, columns: bool) -> InteractionMatrix:
    user_has = (np.diff(m.matrix.indptr) > 0) | (not rows)
    book_has = (np.bincount(m.matrix.indices, minlength=m.shape[1]) > 0) | (not columns)
    if user_has.all() and book_has.all():
        return m
    return _subset(m, user_has, book_has)


def _subset(m: InteractionMatrix, users: np.ndarray, books: np.ndarray) -> InteractionMatrix:
    matrix = m.matrix[np.flatnonzero(users)][:, np.flatnonzero(books)].tocsr()
    matrix.eliminate_zeros()
    matrix.sort_indices()
    return InteractionMatrix(matrix, m.user_ids[users], m.book_ids[books])
