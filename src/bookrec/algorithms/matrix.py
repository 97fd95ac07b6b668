"""The user × book confidence matrix: event weighting, time decay, k-core filtering; built at
once (build_matrix) or from chunks as they stream in (MatrixBuilder), with the per-book event
counts of the same chunks (BookEventCounter)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from bookrec.domain import (
    EVENT_CODES,
    EVENTS,
    RATING_MAX,
    RATING_MIN,
    BookEventCounts,
    InteractionArrays,
)

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
    timestamps = np.asarray(interactions.timestamps, dtype=np.int64)
    if now is None:
        now = float(timestamps.max()) if len(timestamps) else 0.0
    users, rows = _index(np.asarray(interactions.user_ids, dtype=np.int64), user_ids)
    books, cols = _index(np.asarray(interactions.book_ids, dtype=np.int64), book_ids)
    known = (rows >= 0) & (cols >= 0)
    builder = MatrixBuilder(scheme, now, shape=(len(users), len(books)))
    if known.all():
        builder.add(rows, cols, interactions.events, interactions.ratings, timestamps)
    else:
        builder.add(
            rows[known], cols[known], np.asarray(interactions.events)[known],
            np.asarray(interactions.ratings)[known], timestamps[known],
        )  # fmt: skip
    result = InteractionMatrix(builder.matrix(), users, books)
    return _drop_empty(result, rows=user_ids is None, columns=book_ids is None)


class MatrixBuilder:
    """build_matrix's confidence matrix of interactions that arrive in chunks, aggregated as
    they come: the other events' weights summed per (user, book) into a sparse matrix, the
    `rate` events kept (8% of them, 24 bytes each) until matrix() keeps each pair's latest.
    Rows and columns are positions: non-negative integers (database ids, which are dense; the
    matrix grows to the largest). Chunks must come in input order (for ratings of one pair
    and one second, the later row wins), and a decaying scheme needs `now` up front.

    Same data, same matrix as one build_matrix: the weights are the same numbers, summed in
    float64 and capped after all chunks, then float32. (With decay, sums of many weights can
    round in the last float64 bit depending on the order of addition, which is no more fixed
    in scipy's own sum of duplicates; the float32 result is the same in every case tested.)"""

    def __init__(
        self,
        scheme: WeightScheme | None = None,
        now: float | None = None,
        *,
        shape: tuple[int, int] = (0, 0),
    ) -> None:

        self.scheme = scheme or WeightScheme()
        if self.scheme.half_life_days is not None and now is None:
            raise ValueError("a decaying WeightScheme needs `now`")
        self.now = now
        self.shape = shape
        self._sums: list[sp.csr_matrix] = []  # per chunk, merged as a binary counter merges
        self._rates: list[tuple[np.ndarray, ...]] = []  # (rows, cols, times, weights) per chunk

    def add(
        self,
        rows: np.ndarray,
        cols: np.ndarray,
        events: np.ndarray,
        ratings: np.ndarray,
        timestamps: np.ndarray,
    ) -> None:
        """One chunk of interactions, by position (rows: users, cols: books)."""
        import scipy.sparse as sp

        rows, cols = np.asarray(rows), np.asarray(cols)
        if len(rows) == 0:
            return
        if min(int(rows.min()), int(cols.min())) < 0:
            raise ValueError("MatrixBuilder positions must be >= 0")
        self._grow(int(rows.max()) + 1, int(cols.max()) + 1)
        timestamps = np.asarray(timestamps, dtype=np.int64)
        weights = event_weights(events, ratings, timestamps, self.scheme, self.now)
        is_rate = np.asarray(events) == _RATE
        other = ~is_rate & (weights > 0)
        chunk = sp.coo_matrix(
            (weights[other].astype(np.float64), (rows[other], cols[other])), shape=self.shape
        ).tocsr()  # sums the chunk's duplicates
        self._sums.append(chunk)
        # Merged when the newest is as large as the one before: each pair is added up about
        # log2(chunks) times, not once per chunk after it.
        while len(self._sums) > 1 and 2 * self._sums[-1].nnz >= self._sums[-2].nnz:
            last = self._sums.pop()
            self._sums[-1] = self._sized(self._sums[-1]) + self._sized(last)
        self._rates.append(
            (rows[is_rate], cols[is_rate], timestamps[is_rate], weights[is_rate].astype(np.float64))
        )

    def matrix(self) -> sp.csr_matrix:
        """The capped float32 matrix of everything added, of the grown shape (empty rows and
        columns included)."""
        import scipy.sparse as sp

        rows, cols, times, weights = (
            np.concatenate([part[i] for part in self._rates]) if self._rates else np.empty(0)
            for i in range(4)
        )
        pair = rows.astype(np.int64) * self.shape[1] + cols
        latest = np.ones(len(rows), dtype=bool)
        latest[_superseded_ratings(np.full(len(rows), _RATE), times, pair, latest)] = False
        keep = latest & (weights > 0)
        rated = sp.coo_matrix(
            (weights[keep], (rows[keep].astype(np.int64), cols[keep].astype(np.int64))),
            shape=self.shape,
        ).tocsr()
        matrix = rated
        for part in self._sums:
            matrix = matrix + self._sized(part)
        np.minimum(matrix.data, self.scheme.cap, out=matrix.data)
        return matrix.astype(np.float32)

    def _grow(self, n_rows: int, n_cols: int) -> None:
        self.shape = (max(self.shape[0], n_rows), max(self.shape[1], n_cols))

    def _sized(self, part: sp.csr_matrix) -> sp.csr_matrix:
        if part.shape != self.shape:
            part.resize(self.shape)  # in place: a larger shape only adds empty rows
        return part


def matrix_of_chunks(
    chunks: Iterable[InteractionArrays],
    scheme: WeightScheme | None = None,
    now: float | None = None,
) -> InteractionMatrix:
    """build_matrix of the interactions of all the chunks (in input order), aggregated chunk
    by chunk; their user and book ids are used as positions (database ids: dense, >= 0)."""
    builder = MatrixBuilder(scheme, now)
    for chunk in chunks:
        builder.add(chunk.user_ids, chunk.book_ids, chunk.events, chunk.ratings, chunk.timestamps)
    n_users, n_books = builder.shape
    result = InteractionMatrix(
        builder.matrix(), np.arange(n_users, dtype=np.int64), np.arange(n_books, dtype=np.int64)
    )
    return _drop_empty(result, rows=True, columns=True)


class BookEventCounter:
    """scoring.count_book_events of interactions that arrive in chunks: how many of each
    (book, event, rating), the chunks' counts merged as they come. Rows without a rating (most
    of them) are counted by an integer key of (book, event), the rest by a sort."""

    MERGE_ROWS = 1 << 22  # counted rows held before they are merged

    def __init__(self) -> None:
        self._unrated: list[tuple[np.ndarray, np.ndarray]] = []  # (book * 8 + event, count)
        self._rated: list[tuple[np.ndarray, ...]] = []  # _count_keys of the rows with a rating
        self._held = 0

    def add(self, chunk: InteractionArrays) -> None:
        books = np.asarray(chunk.book_ids, dtype=np.int64)
        events = np.asarray(chunk.events, dtype=np.int8)
        ratings = np.asarray(chunk.ratings, dtype=np.float32)
        rated = ~np.isnan(ratings)
        self._unrated.append(_key_counts(books[~rated] * 8 + events[~rated]))
        rows = np.flatnonzero(rated)
        self._rated.append(
            _count_keys(books[rows], events[rows], ratings[rows], np.ones(len(rows), np.int64))
        )
        self._held += len(self._unrated[-1][0]) + len(self._rated[-1][0])
        if self._held > self.MERGE_ROWS:
            self._merge()

    def counts(
        self,
        max_interaction_id: int = 0,
        first_at: float | None = None,
        last_at: float | None = None,
    ) -> BookEventCounts:
        """The counts, sorted by (book, event, rating; no rating first)."""
        self._merge()
        (keys, counts), (books, events, ratings, rated_counts) = self._unrated[0], self._rated[0]
        merged = _count_keys(
            np.concatenate([keys >> 3, books]),
            np.concatenate([(keys & 7).astype(np.int8), events]),
            np.concatenate([np.full(len(keys), np.nan, np.float32), ratings]),
            np.concatenate([counts, rated_counts]),
        )
        return BookEventCounts(*merged, max_interaction_id, first_at, last_at)

    def _merge(self) -> None:
        unrated = self._unrated or [(np.empty(0, np.int64), np.empty(0, np.int64))]
        keys, counts = (np.concatenate(part) for part in zip(*unrated, strict=True))
        self._unrated = [_key_counts(keys, counts)]
        rated = self._rated or [_count_keys(*_no_counted_rows())]
        self._rated = [_count_keys(*(np.concatenate(p) for p in zip(*rated, strict=True)))]
        self._held = len(self._unrated[0][0]) + len(self._rated[0][0])


def _no_counted_rows() -> tuple[np.ndarray, ...]:
    """(book ids, events, ratings, counts) of no rows."""
    return (np.empty(0, np.int64), np.empty(0, np.int8), np.empty(0, np.float32),
            np.empty(0, np.int64))  # fmt: skip


def _key_counts(keys: np.ndarray, counts: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """(the distinct keys ascending, how many of each): each key counts 1, or its `counts`.
    Non-negative keys within a few times their number are counted in place, others sorted."""
    if len(keys) == 0:
        return keys.astype(np.int64), np.empty(0, np.int64)
    if keys.min() >= 0 and keys.max() < 4 * len(keys) + (1 << 16):
        weights = None if counts is None else counts.astype(np.float64)  # exact below 2**53
        by_key = np.bincount(keys, weights=weights)
        present = np.flatnonzero(by_key)
        return present.astype(np.int64), by_key[present].astype(np.int64)
    distinct, inverse = np.unique(keys, return_inverse=True)
    if counts is None:
        return distinct, np.bincount(inverse, minlength=len(distinct)).astype(np.int64)
    summed = np.bincount(inverse, weights=counts.astype(np.float64), minlength=len(distinct))
    return distinct, summed.astype(np.int64)


def _count_keys(
    books: np.ndarray, events: np.ndarray, ratings: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, ...]:
    """(book ids int64, events int8, ratings float32 (NaN: none), counts int64) with the
    counts of equal (book, event, rating) summed, sorted by them."""
    books = np.asarray(books, dtype=np.int64)
    events = np.asarray(events, dtype=np.int8)
    keyed = np.nan_to_num(np.asarray(ratings, dtype=np.float32), nan=-1.0)
    order = np.lexsort((keyed, events, books))
    books, events, keyed = books[order], events[order], keyed[order]
    starts = np.flatnonzero(
        np.concatenate(
            [[len(order) > 0],
             (books[1:] != books[:-1]) | (events[1:] != events[:-1]) | (keyed[1:] != keyed[:-1])]
        )
    )  # fmt: skip
    summed = np.add.reduceat(counts[order], starts) if len(order) else counts[:0]
    ratings = keyed[starts]
    ratings[ratings < 0] = np.nan
    return books[starts], events[starts], ratings, summed.astype(np.int64)


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
    """The rows of `users` and columns of `books` (boolean masks), zeros dropped."""
    import scipy.sparse as sp

    matrix = m.matrix
    if not users.all():
        matrix = matrix[np.flatnonzero(users)]
    if not books.all():
        # Columns by a lookup, in one pass over the entries (rows keep their order).
        keep = books[matrix.indices]
        kept_before = np.zeros(len(keep) + 1, dtype=matrix.indptr.dtype)
        np.cumsum(keep, dtype=matrix.indptr.dtype, out=kept_before[1:])
        rank = np.cumsum(books, dtype=matrix.indices.dtype) - 1
        matrix = sp.csr_matrix(
            (
                matrix.data[keep],
                rank[matrix.indices[keep]],
                kept_before[matrix.indptr],
            ),
            shape=(matrix.shape[0], int(books.sum())),
        )
    matrix = matrix.tocsr(copy=matrix is m.matrix)
    matrix.eliminate_zeros()
    matrix.sort_indices()
    return InteractionMatrix(matrix, m.user_ids[users], m.book_ids[books])
