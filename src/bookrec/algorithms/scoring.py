"""How each strategy scores every book for a block of users.

Every scorer returns a dense float32 array (n_users, n_books) in one book index space; -inf
marks a book the strategy cannot score for that user (no vector), and a whole row of -inf a
user the strategy cannot serve. Users are given by their rows of the interaction-weight matrix
W (csr, users × books, the capped confidences of `matrix.build_matrix`). With z(x) the
standardisation (x - mean) / std over the finite entries of a row:

- cf:       x_u · y_i, the ALS user vector dotted with each book vector.
- gnn, content: the guide's user embedding p_u = Σ_j W_uj v_j / ‖v_j‖ (the weighted average
            of the unit vectors of the user's books), then
            s(u, i) = z_u(cos(p_u, v_i)) + prior · z(log(1 + popularity_i)).
            Skip-gram and text cosines carry no popularity, so alone they rank a book nobody
            reads as high as a bestseller of the same taste; the prior puts popularity back.
- popular:  popularity_i = Σ_u W_ui, the column sums of the weight matrix (optionally of recent
            interactions only, see `recent_interactions`).
- hybrid:   Σ_s weight_s · z_u(score_s) over the strategies with weight > 0 that can serve the
            user; a book one of them cannot score gets that strategy's lowest z of the row. A
            user without a cf vector is thus served by gnn/content (from their interactions),
            and a user no weighted strategy serves gets popular, whatever its weight.
            Per-user z-scores fused best: min-max and reciprocal-rank fusion lost up to 13% and
            43% of their nDCG@10 where one source was noise (benchmarks/tune_defaults.py hybrid).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from bookrec.algorithms.matrix import WeightScheme
from bookrec.domain import EVENT_CODES, BookEventCounts, InteractionArrays

if TYPE_CHECKING:
    import scipy.sparse as sp

SECONDS_PER_DAY = 86_400.0
FusionMethod = Literal["zscore", "minmax", "rrf"]

# Measured by tune_defaults.py prior/gnn; without it gnn fell far below popular (nDCG@10 0.003
# against 0.069 on 100k benchmark interactions).
DEFAULT_PRIOR = {"gnn": 1.5, "content": 0.5}
RRF_OFFSET = 60.0


# --------------------------------------------------------------------------- single strategies


def cf_scores(
    user_factors: np.ndarray,
    item_factors: np.ndarray,
    item_present: np.ndarray | None = None,
    *,
    item_bound: float | None = None,
) -> np.ndarray:
    """x_u · y_i (n_users, n_books); -inf where that is NaN (users whose row is NaN) and for
    books not present. `item_bound`: the largest |value| of item_factors, given when all of
    them are finite (`finite_bound`), so that only the users' rows need to be looked at."""
    users = np.asarray(user_factors, dtype=np.float32)
    scores = users @ np.asarray(item_factors, dtype=np.float32).T
    finite_users = np.isfinite(users).all(axis=1) if item_bound is not None else None
    if finite_users is not None and _no_overflow(users[finite_users], item_bound):
        # Finite factors whose products and sums stay below float32's largest: NaN only in the
        # rows of users with a NaN or an infinity.
        for row in np.flatnonzero(~finite_users):
            scores[row, np.isnan(scores[row])] = -np.inf
    else:
        nan = np.isnan(scores)
        if nan.any():
            scores[nan] = -np.inf
    if item_present is not None:
        scores[:, ~np.asarray(item_present, dtype=bool)] = -np.inf
    return scores


def finite_bound(factors: np.ndarray) -> float | None:
    """The largest |value| of the factors if every one is finite, else None (see cf_scores)."""
    if factors.size == 0:
        return 0.0
    largest = float(np.abs(factors).max())
    return largest if np.isfinite(largest) else None


def _no_overflow(users: np.ndarray, item_bound: float) -> bool:
    user_bound = float(np.abs(users).max()) if users.size else 0.0
    return user_bound * item_bound * max(users.shape[1], 1) < float(np.finfo(np.float32).max) / 2


def popularity(weights: sp.csr_matrix) -> np.ndarray:
    """Weighted interaction count of each book: the column sums of a users × books matrix."""
    return np.asarray(weights.sum(axis=0), dtype=np.float64).ravel()


def count_book_events(interactions: InteractionArrays) -> BookEventCounts:
    """The interactions grouped by (book, event, rating), counted."""
    books = np.asarray(interactions.book_ids, dtype=np.int64)
    events = np.asarray(interactions.events, dtype=np.int8)
    ratings = np.nan_to_num(np.asarray(interactions.ratings, dtype=np.float32), nan=-1.0)
    order = np.lexsort((ratings, events, books))  # ~40x faster than np.unique of records
    books, events, ratings = books[order], events[order], ratings[order]
    starts = np.flatnonzero(
        np.concatenate(
            [
                [len(order) > 0],
                (books[1:] != books[:-1]) | (events[1:] != events[:-1])
                | (ratings[1:] != ratings[:-1]),
            ]
        )
    )  # fmt: skip
    counts = np.diff(np.append(starts, len(order)))
    distinct_ratings = ratings[starts]
    distinct_ratings[distinct_ratings < 0] = np.nan
    return BookEventCounts(
        books[starts],
        events[starts],
        distinct_ratings,
        counts.astype(np.int64),
        interactions.max_interaction_id,
    )


def popularity_from_counts(
    counts: BookEventCounts, scheme: WeightScheme, book_ids: np.ndarray
) -> np.ndarray:
    """Σ of event weights per book of the sorted `book_ids` (float64), ratings weighed by their
    stars like the matrix does, without its per-pair cap. Books not in `book_ids` are ignored."""
    codes = np.asarray(counts.events, dtype=np.intp)
    weight = scheme.event_table()[codes]
    is_rate = codes == EVENT_CODES["rate"]
    weight[is_rate] = scheme.rating_weight(np.asarray(counts.ratings)[is_rate])
    weight *= np.asarray(counts.counts, dtype=np.float64)
    book_ids = np.asarray(book_ids, dtype=np.int64)
    at = np.minimum(np.searchsorted(book_ids, counts.book_ids), max(len(book_ids) - 1, 0))
    known = (book_ids[at] == counts.book_ids) if len(book_ids) else np.zeros(len(at), bool)
    return np.bincount(at[known], weight[known], minlength=len(book_ids))


def popular_scores(book_popularity: np.ndarray, n_users: int) -> np.ndarray:
    """The same popularity row for every user (n_users, n_books) float32."""
    row = np.asarray(book_popularity, dtype=np.float32)
    return np.broadcast_to(row, (n_users, len(row))).copy()


def recent_interactions(
    interactions: InteractionArrays, days: float, now: float | None = None
) -> InteractionArrays:
    """The interactions of the last `days` days before `now` (default: the newest timestamp)."""
    timestamps = np.asarray(interactions.timestamps, dtype=np.int64)
    if now is None:
        now = float(timestamps.max()) if len(timestamps) else 0.0
    keep = (timestamps >= now - days * SECONDS_PER_DAY) & (timestamps <= now)
    return InteractionArrays(
        user_ids=interactions.user_ids[keep],
        book_ids=interactions.book_ids[keep],
        events=interactions.events[keep],
        ratings=interactions.ratings[keep],
        timestamps=timestamps[keep],
        max_interaction_id=interactions.max_interaction_id,
    )


# Rows transformed together: their float64 temporaries stay in the CPU's cache. Over a whole
# (512 users x 200k books) block, memory traffic made the z-scores 8-10x slower.
ROW_BLOCK_CELLS = 1 << 20


def by_row_blocks(transform: Callable[[np.ndarray], np.ndarray], scores: np.ndarray) -> np.ndarray:
    """transform (a row-wise float32 function of a 2-d array) applied a few rows at a time:
    the same numbers as on the whole array."""
    scores = np.asarray(scores, dtype=np.float32)
    rows = max(1, ROW_BLOCK_CELLS // max(scores.shape[-1], 1))
    if scores.ndim != 2 or len(scores) <= rows:
        return transform(scores)
    out = np.empty(scores.shape, dtype=np.float32)
    for start in range(0, len(scores), rows):
        out[start : start + rows] = transform(scores[start : start + rows])
    return out


def standardised(scores: np.ndarray) -> np.ndarray:
    """z per row over its finite entries (float32); -inf stays -inf, a constant row gives 0."""
    return by_row_blocks(_standardised_rows, scores)


def _standardised_rows(scores: np.ndarray) -> np.ndarray:
    finite = np.isfinite(scores)
    count = finite.sum(axis=1, keepdims=True)
    values = np.where(finite, scores, 0.0)
    mean = values.sum(axis=1, keepdims=True) / np.maximum(count, 1)
    centred = np.where(finite, values - mean, 0.0)
    std = np.sqrt((centred**2).sum(axis=1, keepdims=True) / np.maximum(count, 1))
    z = np.divide(centred, std, out=np.zeros_like(centred), where=std > 0)
    return np.where(finite, z, -np.inf).astype(np.float32)


# --------------------------------------------------------------------------- embeddings


class EmbeddingScorer:
    """Scores of the gnn or content strategy from book vectors; zero rows = none.

    `vectors` are rows (n, d), whole or as consecutive row blocks (a snapshot's chunks, read
    without joining them); `columns` (n) the catalogue column of each row (-1: not in the
    catalogue), default: row i is column i of a catalogue of `n_books` (default n) books.
    `book_popularity` (n_books) feeds the prior; with prior 0 or no popularity there is none.
    Each call passes over the vectors once, a cache-sized piece at a time (norm, unit vector
    and cosine together), and touches no book the users have not read to build their profile.
    """

    def __init__(
        self,
        vectors: np.ndarray | Sequence[np.ndarray],
        book_popularity: np.ndarray | None = None,
        prior: float = 1.0,
        *,
        columns: np.ndarray | None = None,
        n_books: int | None = None,
    ) -> None:
        self._blocks = row_blocks(vectors)
        n_rows = sum(len(b) for b in self._blocks)
        self._columns = np.arange(n_rows) if columns is None else np.asarray(columns, np.int64)
        self.n_books = n_rows if n_books is None else n_books
        self._pieces: list[_UnitPiece] | None = None  # made at the first call, kept for the next
        self._prior_row: np.ndarray | None = None
        if book_popularity is not None and prior:
            log_pop = np.log1p(np.asarray(book_popularity, dtype=np.float64))[None, :]
            self._prior_row = (prior * standardised(log_pop))[0]

    def scores(self, weights: sp.csr_matrix | np.ndarray) -> np.ndarray:
        """(n_users, n_books) for users given by their weight rows (n_users, n_books), sparse
        or dense; -inf rows for users none of whose books has a vector."""
        read = _weighted_columns(weights)
        rows = positions_in(self._columns, read)
        rows, read = rows[rows >= 0], read[rows >= 0]
        unit, _ = unit_rows(take_rows(self._blocks, rows))
        profile = np.asarray(weights[:, read] @ unit, dtype=np.float32).reshape(-1, unit.shape[1])
        norms = np.linalg.norm(profile, axis=1, keepdims=True)
        profile = np.divide(profile, norms, out=np.zeros_like(profile), where=norms > 0)
        cosine = np.full((profile.shape[0], self.n_books), -np.inf, dtype=np.float32)
        for piece in self._unit_pieces():
            part = profile @ piece.unit.T
            part[:, piece.zero] = -np.inf
            if piece.span is not None:
                cosine[:, piece.span] = part
            else:
                cosine[:, piece.columns] = part[:, piece.kept]
        cosine[norms[:, 0] == 0] = -np.inf
        scores = standardised(cosine)
        if self._prior_row is not None:
            scores += self._prior_row
        return scores

    def _unit_pieces(self) -> list[_UnitPiece]:
        """The vectors as unit rows, a piece at a time, with where each piece's scores go:
        made once, since a caller scoring users in batches (the gate, evaluate) calls again."""
        if self._pieces is None:
            self._pieces = []
            for start, piece in pieces(self._blocks):
                unit, piece_norms = unit_rows(piece)
                columns = self._columns[start : start + len(piece)]
                kept = columns >= 0
                first = int(columns[0]) if len(columns) else 0
                consecutive = first >= 0 and np.array_equal(
                    columns, np.arange(first, first + len(columns))
                )
                span = slice(first, first + len(columns)) if consecutive else None
                self._pieces.append(
                    _UnitPiece(unit, np.flatnonzero(piece_norms == 0), columns[kept], kept, span)
                )
        return self._pieces


@dataclass(frozen=True)
class _UnitPiece:
    unit: np.ndarray  # the piece's rows as unit vectors (zero rows stay zero)
    zero: np.ndarray  # its rows without a vector
    columns: np.ndarray  # the catalogue column of each of its rows in the catalogue
    kept: np.ndarray  # which of its rows are in the catalogue
    span: slice | None  # when those are every row, in consecutive columns: that slice


ROWS_PER_PIECE = 4096  # 4 MB of 256-d float32: stays in cache between a norm and a product


def row_blocks(vectors: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    """Row blocks of float32 (one block: a whole matrix)."""
    if isinstance(vectors, np.ndarray):
        return [np.asarray(vectors, dtype=np.float32)]
    return [np.asarray(block, dtype=np.float32) for block in vectors]


def pieces(blocks: Sequence[np.ndarray]) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, rows) of at most ROWS_PER_PIECE consecutive rows of the blocks, in order."""
    start = 0
    for block in blocks:
        for at in range(0, len(block), ROWS_PER_PIECE):
            piece = block[at : at + ROWS_PER_PIECE]
            yield start + at, piece
        start += len(block)


def take_rows(blocks: Sequence[np.ndarray], rows: np.ndarray) -> np.ndarray:
    """The rows of those (ascending or not) indices over the blocks, as one array."""
    width = blocks[0].shape[1] if blocks and blocks[0].ndim == 2 else 0
    taken = np.empty((len(rows), width), dtype=np.float32)
    ends = np.cumsum([len(b) for b in blocks])
    which = np.searchsorted(ends, rows, side="right")
    for b in np.unique(which).tolist():
        mine = which == b
        taken[mine] = blocks[b][rows[mine] - (ends[b] - len(blocks[b]))]
    return taken


def unit_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows / their norms, norms); zero rows stay zero."""
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 0), norms[:, 0]


def positions_in(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Index of each id in the ascending `sorted_ids`, -1 where absent."""
    at = np.minimum(np.searchsorted(sorted_ids, ids), max(len(sorted_ids) - 1, 0))
    if not len(sorted_ids):
        return np.full(len(ids), -1, dtype=np.int64)
    return np.where(sorted_ids[at] == ids, at, -1).astype(np.int64)


def _weighted_columns(weights: sp.csr_matrix | np.ndarray) -> np.ndarray:
    """The columns where any user has a non-zero weight, ascending."""
    if isinstance(weights, np.ndarray):
        return np.flatnonzero((weights != 0).any(axis=0))
    return np.unique(weights.indices[weights.data != 0])


# --------------------------------------------------------------------------- hybrid


def available(scores: np.ndarray) -> np.ndarray:
    """Users (rows) the strategy can serve: any finite score."""
    return np.isfinite(scores).any(axis=1)


def is_one_row(scores: np.ndarray) -> bool:
    """Whether a strategy's scores are one row broadcast to every user (stride 0)."""
    return scores.ndim == 2 and len(scores) > 1 and scores.strides[0] == 0


def standardised_at(scores: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """normalised(scores) ("zscore") at the given columns of each row (rows × m), the same
    float32 numbers, without the whole matrix of them (see RowMoments)."""
    scores = np.asarray(scores, dtype=np.float32)
    return row_moments(scores).z_at(scores, columns)


@dataclass(frozen=True, eq=False)
class RowMoments:
    """What normalised ("zscore") computes of each row of a batch of scores before it scales
    them: whether it has a finite score (`served`), the mean and standard deviation of its
    finite scores (float64, rows × 1) and the z every non-finite entry gets (`lowest`:
    the z of the row's lowest finite score, 0 for a row without one). `all_finite`: the
    batch has no -inf, inf or NaN."""

    served: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    lowest: np.ndarray
    all_finite: bool

    def z_at(self, scores: np.ndarray, columns: np.ndarray) -> np.ndarray:
        """The z-scores of `scores` (the batch measured) at the columns (rows × m)."""
        picked = np.take_along_axis(scores, columns, 1)
        finite = np.isfinite(picked)
        z = _z_of(np.where(finite, picked, 0.0).astype(np.float64), self.mean, self.std)
        return np.where(finite, z, self.lowest)


def row_moments(scores: np.ndarray) -> RowMoments:
    """RowMoments of float32 scores: the statistics are computed over every column, a few
    rows at a time (one row for a batch that is one row broadcast)."""
    if is_one_row(scores):
        one = row_moments(scores[:1])
        return RowMoments(
            np.repeat(one.served, len(scores)), one.mean, one.std, one.lowest, one.all_finite
        )
    n_rows, n_columns = scores.shape
    served = np.empty(n_rows, dtype=bool)
    mean, std = np.empty((n_rows, 1)), np.empty((n_rows, 1))
    lowest = np.empty((n_rows, 1), dtype=np.float32)
    all_finite = True
    rows = max(1, ROW_BLOCK_CELLS // max(n_columns, 1))
    for start in range(0, n_rows, rows):
        block = slice(start, start + rows)
        part = np.ascontiguousarray(scores[block])  # the sums in the order of _row_moments'
        sums = part.sum(axis=1, keepdims=True)
        # A NaN or an infinity makes its row's sum NaN or infinite: a finite sum, finite scores.
        if n_columns and np.isfinite(sums).all():
            moments = _finite_row_moments(part, sums)
        else:
            all_finite = False
            moments = _row_moments(part, np.isfinite(part))
        served[block], mean[block], std[block], lowest[block] = moments
    return RowMoments(served, mean, std, lowest, all_finite)


def _row_moments(scores: np.ndarray, finite: np.ndarray) -> tuple[np.ndarray, ...]:
    # The operations of _standardised_rows and _normalised_rows, in the same types.
    count = finite.sum(axis=1, keepdims=True)
    values = np.where(finite, scores, 0.0)
    mean = values.sum(axis=1, keepdims=True) / np.maximum(count, 1)
    centred = np.where(finite, values - mean, 0.0)
    std = np.sqrt((centred**2).sum(axis=1, keepdims=True) / np.maximum(count, 1))
    # z rises with the score: the z of the lowest finite score is the row's lowest z.
    least = np.where(finite, scores, np.inf).min(axis=1, keepdims=True).astype(np.float64)
    lowest = np.where(count > 0, _z_of(least, mean, std), np.float32(0.0))
    return count[:, 0] > 0, mean, std, lowest


def _finite_row_moments(scores: np.ndarray, sums: np.ndarray) -> tuple[np.ndarray, ...]:
    # _row_moments where every score is finite (`sums`: of each row): the same numbers in
    # fewer passes.
    count = np.full((len(scores), 1), scores.shape[1], dtype=np.int64)
    mean = sums / count
    centred = np.subtract(scores, mean)
    np.square(centred, out=centred)
    std = np.sqrt(centred.sum(axis=1, keepdims=True) / count)
    least = scores.min(axis=1, keepdims=True).astype(np.float64)
    return np.ones(len(scores), dtype=bool), mean, std, _z_of(least, mean, std)


def _z_of(picked: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    z = np.divide(picked - mean, std, out=np.zeros(picked.shape), where=std > 0)
    return z.astype(np.float32)


def normalised(scores: np.ndarray, method: FusionMethod = "zscore") -> np.ndarray:
    """Per-row normalisation for fusion; -inf entries get the row's lowest normalised value
    (0 for minmax and rrf) and rows without a finite score all zeros."""
    if method not in ("zscore", "minmax", "rrf"):
        raise ValueError(f"unknown fusion method {method!r}")
    return by_row_blocks(lambda rows: _normalised_rows(rows, method), scores)


def _normalised_rows(scores: np.ndarray, method: FusionMethod) -> np.ndarray:
    finite = np.isfinite(scores)
    if method == "zscore":
        values = _standardised_rows(scores)
        low = np.where(finite, values, np.inf).min(axis=1, keepdims=True)
        return np.where(finite, values, np.where(np.isfinite(low), low, 0.0)).astype(np.float32)
    if method == "minmax":
        low = np.where(finite, scores, np.inf).min(axis=1, keepdims=True)
        high = np.where(finite, scores, -np.inf).max(axis=1, keepdims=True)
        span = np.where(np.isfinite(high - low), high - low, 0.0)
        shifted = np.where(finite, scores - np.where(np.isfinite(low), low, 0.0), 0.0)
        return np.divide(shifted, span, out=np.zeros_like(shifted), where=span > 0)
    if method == "rrf":
        # Rank 1 = best; ties broken by book index, as top_k does.
        order = np.argsort(-np.where(finite, scores, -np.inf), axis=1, kind="stable")
        ranks = np.empty_like(order)
        np.put_along_axis(ranks, order, np.arange(1, scores.shape[1] + 1)[None, :], axis=1)
        return np.where(finite, 1.0 / (RRF_OFFSET + ranks), 0.0).astype(np.float32)
    raise ValueError(f"unknown fusion method {method!r}")


def fuse(
    parts: Mapping[str, np.ndarray],
    weights: Mapping[str, float],
    *,
    method: FusionMethod = "zscore",
    fallback: str = "popular",
) -> np.ndarray:
    """The hybrid scores of the strategies in `parts` (name -> (n_users, n_books) scores).

    Each user gets Σ weight_s · normalised_s over the strategies with weight > 0 that can serve
    it; a user no such strategy serves gets the `fallback` part alone (if given). A book is -inf
    only where no strategy used for the user scored it.
    """
    shapes = {np.shape(scores) for scores in parts.values()}
    if len(shapes) != 1:
        raise ValueError(f"all parts need one shape, got {sorted(shapes)}")
    shape = shapes.pop()
    total = np.zeros(shape, dtype=np.float32)
    scored = np.zeros(shape, dtype=bool)
    served = np.zeros(shape[0], dtype=bool)
    for name, scores in parts.items():
        weight = float(weights.get(name, 0.0))
        if weight <= 0:
            continue
        serves = available(scores)
        total[serves] += weight * normalised(scores[serves], method)
        scored[serves] |= np.isfinite(scores[serves])
        served |= serves
    if fallback in parts and not served.all():
        lonely = ~served
        total[lonely] = normalised(parts[fallback][lonely], method)
        scored[lonely] = np.isfinite(parts[fallback][lonely])
    total[~scored] = -np.inf
    return total


def similar_books(
    vectors: np.ndarray | Sequence[np.ndarray], book: int, k: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """The k books nearest to `book` by cosine (row indices, cosines), best first; itself and
    books without a vector excluded. ValueError if `book` has no vector. `vectors` whole or as
    consecutive row blocks."""
    blocks = row_blocks(vectors)
    target = take_rows(blocks, np.array([book]))[0]
    target_norm = np.linalg.norm(target)
    if target_norm == 0:
        raise ValueError(f"book {book} has no vector")
    cosine = np.empty(sum(len(b) for b in blocks), dtype=np.float32)
    for start, piece in pieces(blocks):
        norms = np.linalg.norm(piece, axis=1)
        part = piece @ target / np.where(norms > 0, norms, 1.0) / target_norm
        part[norms == 0] = -np.inf
        cosine[start : start + len(piece)] = part
    cosine[book] = -np.inf
    order = np.lexsort((np.arange(len(cosine)), -cosine))[:k]
    order = order[np.isfinite(cosine[order])]
    return order, cosine[order].astype(np.float32)
