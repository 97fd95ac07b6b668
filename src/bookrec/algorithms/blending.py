"""Fusion weights learnt on validation scores: the hybrid never ranks below its best part.

Given, for a set of validation users, every strategy's scores over the catalogue, the books
they must not be shown (their training books) and their held-out books, `candidate_scores`
keeps each user's top books of every strategy (the only books a fused top-k can be made of,
up to ties far down the lists) with their per-user normalised scores, as `fuse` normalises
them. `fit_weights` then searches weights by coordinate ascent over a small grid, starting
from the best single strategy (weight 1, the others 0), and accepts a change only when its
gain in mean nDCG@k is significant: more than `min_gain_se` standard errors of the paired
per-user differences. So on validation the fusion is never below its best single strategy,
and a strategy that adds nothing keeps weight 0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

# Weights of the other strategies relative to the best one's 1.
WEIGHT_GRID: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
CANDIDATES_PER_STRATEGY = 100
# Scores of one batch of users held at once, per strategy (float32 cells: 128 MB).
BATCH_CELLS = 1 << 25
MIN_GAIN_SE = 2.0
FALLBACK = "popular"


@dataclass(frozen=True, eq=False)
class CandidateScores:
    """Validation users' candidate books: `z` (strategies, users, candidates) normalised
    scores (-inf for padding), `served` (strategies, users), `hits` (users, candidates) and
    each user's number of held-out books."""

    names: tuple[str, ...]
    z: np.ndarray
    served: np.ndarray
    hits: np.ndarray
    n_relevant: np.ndarray

    @property
    def n_users(self) -> int:
        return int(self.hits.shape[0])


@dataclass(frozen=True)
class WeightFit:
    """The weights found, mean nDCG@k on validation of each strategy alone and of the fusion,
    and how many users they were measured on."""

    weights: dict[str, float]
    single: dict[str, float]
    fused: float
    users: int


def candidate_scores(
    score_fn: Callable[[np.ndarray], Mapping[str, np.ndarray]],
    relevant: sp.csr_matrix,
    exclude: sp.csr_matrix,
    per_strategy: int = CANDIDATES_PER_STRATEGY,
    batch_size: int | None = None,
) -> CandidateScores:
    """The candidates of the users (rows of `relevant`) with relevant books; score_fn(rows)
    gives each strategy's (len(rows), n_books) scores of those rows (an array it makes for
    the call and keeps no reference to is overwritten; a view is copied). Users are scored in
    batches of `batch_size` (default: as many as keep a batch's scores near BATCH_CELLS)."""
    from bookrec.algorithms.ranking import top_k_rows
    from bookrec.algorithms.scoring import is_one_row, row_moments

    relevant = sp.csr_matrix(relevant)
    exclude = sp.csr_matrix(exclude)
    users = np.flatnonzero(np.diff(relevant.indptr) > 0)
    if batch_size is None:
        batch_size = int(np.clip(BATCH_CELLS // max(relevant.shape[1], 1), 16, 512))
    blocks: list[tuple] = []
    names: tuple[str, ...] = ()
    for start in range(0, len(users), batch_size):
        rows = users[start : start + batch_size]
        parts = {
            name: np.asarray(scores, dtype=np.float32) for name, scores in score_fn(rows).items()
        }
        names = tuple(parts)
        excluded = exclude[rows]
        seen_at = _positive_entries(excluded)
        seen = np.zeros(excluded.shape, dtype=bool)
        seen[seen_at] = True
        most_seen = int(np.diff(excluded.indptr).max(initial=0))
        picks, moments = [], []
        for name in names:
            scores = parts[name]
            moments.append(row_moments(scores))
            width = min(per_strategy, scores.shape[1])
            if is_one_row(scores):
                picks.append(_top_k_unseen(scores[0], seen, width, width + most_seen))
                continue
            # An array of the batch's own is masked where it is: a candidate is never a seen
            # book, so the z-scores taken from it below read only scores left as they were.
            masked = scores if _owned(scores) else scores.copy()
            masked[seen_at] = -np.inf
            if not moments[-1].all_finite:
                masked[~np.isfinite(masked)] = -np.inf
            picks.append(top_k_rows(masked, width))
        candidates = np.sort(np.concatenate(picks, axis=1), axis=1)
        repeated = np.zeros(candidates.shape, dtype=bool)
        repeated[:, 1:] = candidates[:, 1:] == candidates[:, :-1]
        valid = (candidates >= 0) & ~repeated
        safe = np.where(valid, candidates, 0)
        z = np.stack([m.z_at(parts[name], safe) for name, m in zip(names, moments, strict=True)])
        z[:, ~valid] = -np.inf
        hit = np.take_along_axis(_positive(relevant[rows]), safe, 1) & valid
        blocks.append((z, np.stack([m.served for m in moments]), hit))
    if not blocks:
        empty = np.zeros((0, 0), dtype=bool)
        return CandidateScores((), np.zeros((0, 0, 0), np.float32), empty, empty, np.zeros(0))
    width = max(b[2].shape[1] for b in blocks)

    def padded(array: np.ndarray, fill: float | bool) -> np.ndarray:
        pad = [(0, 0)] * (array.ndim - 1) + [(0, width - array.shape[-1])]
        return np.pad(array, pad, constant_values=fill)

    return CandidateScores(
        names=names,
        z=np.concatenate([padded(b[0], -np.inf) for b in blocks], axis=1),
        served=np.concatenate([b[1] for b in blocks], axis=1),
        hits=np.concatenate([padded(b[2], False) for b in blocks]),
        n_relevant=np.diff(relevant.indptr)[users],
    )


def _owned(scores: np.ndarray) -> bool:
    """Whether an array score_fn gave is its own (not a view of an array kept elsewhere)."""
    return scores.base is None and scores.flags.writeable


def _positive(matrix: sp.csr_matrix) -> np.ndarray:
    """matrix.toarray() > 0 without the float matrix in between."""
    out = np.zeros(matrix.shape, dtype=bool)
    out[_positive_entries(matrix)] = True
    return out


def _positive_entries(matrix: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """(rows, columns) of the entries of a csr matrix that are > 0 (duplicates summed)."""
    matrix = sp.csr_matrix(matrix, copy=True)
    matrix.sum_duplicates()
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    positive = matrix.data > 0
    return rows[positive], matrix.indices[positive]


def _top_k_unseen(row: np.ndarray, seen: np.ndarray, k: int, depth: int) -> np.ndarray:
    """top_k_rows of `row` for every user with that user's `seen` books at -inf, the same
    columns in the same order: the row is ranked once, and each user takes the first k of its
    `depth` best that they have not seen (depth: k plus the most books a user has seen)."""
    from bookrec.algorithms.ranking import nonzero_2d

    values = np.where(np.isnan(row), -np.inf, row)
    order = np.argsort(-values, kind="stable")
    order = order[np.isfinite(values[order])][:depth]
    unseen = ~seen[:, order]
    place = np.cumsum(unseen, axis=1, dtype=np.int32)
    users, at = nonzero_2d(unseen & (place <= k))
    result = np.full((len(seen), k), -1, dtype=np.int64)
    result[users, place[users, at] - 1] = order[at]
    return result


def fused_ndcg(candidates: CandidateScores, weights: Mapping[str, float], k: int) -> np.ndarray:
    """Per-user nDCG@k of the fusion with `weights`, as `scoring.fuse` ranks: the weighted
    strategies that serve a user, else the popular part alone."""
    n_users, width = candidates.hits.shape
    total = np.zeros((n_users, width), dtype=np.float32)
    used = np.zeros(n_users, dtype=bool)
    valid = np.isfinite(candidates.z[0]) if len(candidates.names) else np.zeros_like(total, bool)
    for index, name in enumerate(candidates.names):
        weight = float(weights.get(name, 0.0))
        if weight <= 0:
            continue
        serves = candidates.served[index]
        total[serves] += weight * np.where(valid[serves], candidates.z[index][serves], 0.0)
        used |= serves
    if FALLBACK in candidates.names and not used.all():
        lonely = ~used
        total[lonely] = candidates.z[candidates.names.index(FALLBACK)][lonely]
    total[~valid] = -np.inf
    return ndcg_of_scores(total, candidates.hits, candidates.n_relevant, k)


def ndcg_of_scores(
    scores: np.ndarray, hits: np.ndarray, n_relevant: np.ndarray, k: int
) -> np.ndarray:
    """Per-row nDCG@k of ranking the candidates by score (ties by position)."""
    take = min(k, scores.shape[1])
    if take == 0:
        return np.zeros(len(scores))
    top = np.argpartition(-scores, take - 1, axis=1)[:, :take]
    order = np.argsort(-np.take_along_axis(scores, top, 1), axis=1, kind="stable")
    top = np.take_along_axis(top, order, 1)
    ranked_hits = np.take_along_axis(hits, top, 1) & np.isfinite(np.take_along_axis(scores, top, 1))
    discounts = 1.0 / np.log2(np.arange(2, take + 2))
    ideal = np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))[np.clip(n_relevant, 1, k) - 1]
    return ranked_hits @ discounts / ideal


def significant_gain(new: np.ndarray, old: np.ndarray, min_gain_se: float) -> bool:
    """Whether new's mean beats old's by more than min_gain_se standard errors of the paired
    per-user differences."""
    diff = np.asarray(new, dtype=np.float64) - np.asarray(old, dtype=np.float64)
    if len(diff) < 2:
        return False
    gain = diff.mean()
    error = diff.std(ddof=1) / np.sqrt(len(diff))
    return bool(gain > 0 and gain > min_gain_se * error)


def fit_weights(
    candidates: CandidateScores,
    k: int = 10,
    *,
    grid: Sequence[float] = WEIGHT_GRID,
    min_gain_se: float = MIN_GAIN_SE,
    max_passes: int = 3,
) -> WeightFit:
    """Coordinate ascent from the best single strategy; see the module's docstring."""
    names = candidates.names
    if not names or candidates.n_users == 0:
        return WeightFit({FALLBACK: 1.0}, {}, float("nan"), 0)
    single = {name: fused_ndcg(candidates, {name: 1.0}, k) for name in names}
    best = max(names, key=lambda name: (single[name].mean(), name == FALLBACK))
    weights = {name: (1.0 if name == best else 0.0) for name in names}
    current = single[best]
    for _ in range(max_passes):
        changed = False
        for name in names:
            if name == best:
                continue
            trials = [
                (value, fused_ndcg(candidates, {**weights, name: value}, k))
                for value in grid
                if value != weights[name]
            ]
            value, per_user = max(trials, key=lambda trial: trial[1].mean())
            if significant_gain(per_user, current, min_gain_se):
                weights[name], current, changed = value, per_user, True
        if not changed:
            break
    return WeightFit(
        weights={name: float(w) for name, w in weights.items()},
        single={name: float(values.mean()) for name, values in single.items()},
        fused=float(current.mean()),
        users=candidates.n_users,
    )
