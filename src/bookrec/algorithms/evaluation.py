"""Offline evaluation's splitting and measuring: split the interactions into a Holdout, rank for
each test user every book they did not interact with in training, and score the lists against
their test books. The models are fitted on the training part by the model layer
(`bookrec.models.evaluate`), exactly as `train cf`, `train gnn` and `embed` fit them.

Protocol, as printed with the results:
- relevant: a test (user, book) pair whose weight under the WeightScheme is > 0, that the user
  did not rate at or below `rate_zero_at` (a disliked book is no hit), and that has no training
  interaction;
- ranked users: users with interactions on both sides of the split; users with all interactions
  in test (cold start, temporal split only) are left out and counted;
- candidates: every catalogue book without a training interaction of the user;
- a strategy that cannot serve a user (cf for a user the k-core dropped) recommends nothing
  to them: the user counts with zero hits, never drops out of the mean;
- content vectors are fitted on every book's text: they use no interactions, so no leakage.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from bookrec.algorithms import scoring
from bookrec.algorithms.matrix import InteractionMatrix, WeightScheme, build_matrix, positions
from bookrec.algorithms.split import SplitSummary
from bookrec.domain import EVENT_CODES, BookText, InteractionArrays
from bookrec.errors import EmptySplitError

_RATE = EVENT_CODES["rate"]
SCORE_BATCH = 512


@dataclass(frozen=True, eq=False)
class Holdout:
    """A split ready for ranking, in one index space: rows = test users, columns = catalogue.

    `full` is the training confidence matrix of every user over the catalogue (what the models
    learn from), `user_weights` its rows of the test users (what gnn and content score from);
    `relevant` and `exclude` are binary test users × catalogue matrices.
    """

    summary: SplitSummary
    catalogue: np.ndarray
    users: np.ndarray
    full: InteractionMatrix
    user_weights: sp.csr_matrix
    relevant: sp.csr_matrix
    exclude: sp.csr_matrix

    @property
    def popularity(self) -> np.ndarray:
        return scoring.popularity(self.full.matrix)

    def measure(
        self,
        score_fn: Callable[[np.ndarray], np.ndarray],
        k: int = 10,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> tuple[dict[str, float], int]:
        """(evaluate_rankings of the top-k lists, evaluated users the strategy could serve) of
        a strategy given as score_fn(test user rows) -> (len(rows), n_books) scores."""
        from bookrec.algorithms.metrics import evaluate_rankings
        from bookrec.algorithms.ranking import top_k_batched

        served = np.zeros(len(self.users), dtype=bool)

        def score(rows: np.ndarray) -> np.ndarray:
            block = score_fn(rows)
            served[rows] = scoring.available(block)
            return block

        recommended = top_k_batched(
            score, np.arange(len(self.users)), k, self.exclude, n_items=len(self.catalogue),
            batch_size=SCORE_BATCH, on_progress=on_progress,
        )  # fmt: skip
        metrics = evaluate_rankings(recommended, self.relevant, len(self.catalogue))
        evaluated = np.diff(self.relevant.indptr) > 0
        return metrics, int(np.count_nonzero(served & evaluated))


def make_holdout(
    interactions: InteractionArrays,
    books: Sequence[BookText] = (),
    *,
    split: str = "random",
    test_fraction: float = 0.2,
    seed: int | None = 42,
    weights: WeightScheme = WeightScheme(),
) -> Holdout:
    """Split the interactions and build the matrices every strategy is ranked with.

    The catalogue is every book of `books` and of the interactions. EmptySplitError if no user
    has interactions on both sides of the split.
    """
    from bookrec.algorithms.split import split_interactions

    test_mask, summary = split_interactions(interactions, split, test_fraction, seed)
    return holdout_of_mask(interactions, test_mask, summary, books, weights=weights)


def holdout_of_mask(
    interactions: InteractionArrays,
    test_mask: np.ndarray,
    summary: SplitSummary,
    books: Sequence[BookText] = (),
    *,
    weights: WeightScheme = WeightScheme(),
) -> Holdout:
    """The Holdout of a given split (`test_mask` over the rows, True = test; `summary` its
    description): what `make_holdout` builds once it has split."""
    from bookrec.algorithms.ranking import seen_matrix

    catalogue = np.union1d(
        np.array([b.book_id for b in books], dtype=np.int64),
        np.asarray(interactions.book_ids, dtype=np.int64),
    )
    train, test = subset(interactions, ~test_mask), subset(interactions, test_mask)
    if len(train) == 0 or len(summary.test_users) == 0:
        raise EmptySplitError()
    users = summary.test_users
    now = float(train.timestamps.max())
    shape = (len(users), len(catalogue))

    def pairs(user_ids: np.ndarray, book_ids: np.ndarray) -> sp.csr_matrix:
        rows, cols = positions(users, user_ids), positions(catalogue, book_ids)
        inside = (rows >= 0) & (cols >= 0)
        return seen_matrix(rows[inside], cols[inside], shape)

    seen = pairs(train.user_ids, train.book_ids)
    relevant = build_matrix(test, weights, now, user_ids=users, book_ids=catalogue).matrix
    relevant.data[:] = 1
    relevant = relevant - relevant.multiply(seen + pairs(*_disliked(test, weights)) > 0)
    relevant = sp.csr_matrix(relevant, dtype=np.int8)
    relevant.eliminate_zeros()
    return Holdout(
        summary=summary,
        catalogue=catalogue,
        users=users,
        full=build_matrix(train, weights, now, book_ids=catalogue),
        user_weights=build_matrix(train, weights, now, user_ids=users, book_ids=catalogue).matrix,
        relevant=relevant,
        exclude=seen,
    )


# --------------------------------------------------------------------------- data


def _disliked(data: InteractionArrays, weights: WeightScheme) -> tuple[np.ndarray, np.ndarray]:
    """(user ids, book ids) of pairs whose latest rating is at or below rate_zero_at."""
    rates = np.flatnonzero((data.events == _RATE) & ~np.isnan(data.ratings))
    order = rates[np.lexsort((rates, data.timestamps[rates], data.book_ids[rates],
                              data.user_ids[rates]))]  # fmt: skip
    users, books = data.user_ids[order], data.book_ids[order]
    last = np.ones(len(order), dtype=bool)
    last[:-1] = (users[1:] != users[:-1]) | (books[1:] != books[:-1])
    latest = order[last]
    low = data.ratings[latest] <= weights.rate_zero_at
    return data.user_ids[latest][low], data.book_ids[latest][low]


def subset(data: InteractionArrays, mask: np.ndarray) -> InteractionArrays:
    return InteractionArrays(
        user_ids=np.asarray(data.user_ids)[mask],
        book_ids=np.asarray(data.book_ids)[mask],
        events=np.asarray(data.events)[mask],
        ratings=np.asarray(data.ratings)[mask],
        timestamps=np.asarray(data.timestamps)[mask],
        max_interaction_id=data.max_interaction_id,
    )
