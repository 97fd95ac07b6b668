"""The benchmark set: many unique rows with Zipf-like skew and optional planted clusters."""

from __future__ import annotations

from datetime import datetime

import numpy as np

from bookrec.domain import EVENT_CODES, EVENTS
from bookrec.synthetic.interactions import (
    DEFAULT_END,
    DEFAULT_START,
    SyntheticInteractions,
    time_window,
    user_ids,
    with_description,
)
from bookrec.synthetic.sampling import cdf, sample_cdf

_RATE = EVENT_CODES["rate"]

BENCHMARK_EVENT_P = (0.55, 0.25, 0.08, 0.08, 0.04)
BENCHMARK_RATING_P = (0.06, 0.10, 0.24, 0.34, 0.26)
BENCHMARK_OUT_OF_CLUSTER_RATING_P = (0.15, 0.25, 0.30, 0.20, 0.10)
BOOK_ZIPF_EXPONENT = 1.0
BOOK_ZIPF_OFFSET = 5.0
USER_ZIPF_EXPONENT = 0.8
USER_ZIPF_OFFSET = 10.0
MAX_REFILL_ROUNDS = 100  # redraws of rows lost to duplicate (user, book, event, time)


def generate_benchmark_interactions(
    *,
    n_users: int = 20_000,
    n_books: int = 10_000,
    n_interactions: int = 1_000_000,
    seed: int = 42,
    clusters: int = 0,
    in_cluster_share: float = 0.8,
    start: datetime | int = DEFAULT_START,
    end: datetime | int = DEFAULT_END,
) -> SyntheticInteractions:
    """Exactly ``n_interactions`` unique (user, book, event, timestamp) rows.

    Book popularity is Zipf-like by id (book "1" the most popular, as in goodbooks), user
    activity Zipf-like over a random order of users. With ``clusters`` > 0, users and books
    are dealt round-robin into that many groups and ``in_cluster_share`` of the rows pick a
    book of the user's own group (rated higher than books outside it).
    """
    if n_users < 1 or n_books < 1 or n_interactions < 0:
        raise ValueError("n_users and n_books must be at least 1, n_interactions at least 0")
    if clusters < 0 or clusters > min(n_users, n_books):
        raise ValueError("clusters must be between 0 and min(n_users, n_books)")
    if not 0.0 <= in_cluster_share <= 1.0:
        raise ValueError("in_cluster_share must be between 0 and 1")
    start_s, end_s = time_window(start, end)
    if n_interactions > n_users * n_books * len(EVENTS) * (end_s - start_s) // 2:
        raise ValueError("n_interactions is too large for unique rows in that window")

    rng = np.random.default_rng(seed)
    user_weights = _zipf_weights(n_users, USER_ZIPF_EXPONENT, USER_ZIPF_OFFSET)
    user_weights = user_weights[rng.permutation(n_users)]
    book_weights = _zipf_weights(n_books, BOOK_ZIPF_EXPONENT, BOOK_ZIPF_OFFSET)
    user_groups = np.arange(n_users) % clusters if clusters else None
    book_groups = np.arange(n_books) % clusters if clusters else None
    sampler = _BenchmarkSampler(
        user_weights, book_weights, clusters, in_cluster_share, start_s, end_s
    )

    columns = _sorted_unique(sampler.draw(rng, n_interactions))
    for _ in range(MAX_REFILL_ROUNDS):
        missing = n_interactions - len(columns[0])
        if missing == 0:
            break
        extra = sampler.draw(rng, missing)
        merged = tuple(np.concatenate(pair) for pair in zip(columns, extra, strict=True))
        columns = _sorted_unique(merged)
    else:
        raise ValueError("too many repeated rows: widen the time window or ask for fewer rows")
    user_index, book_index, events, ratings, timestamps = columns

    users = user_ids(n_users)
    result = SyntheticInteractions(
        users=users,
        books=tuple(str(i) for i in range(1, n_books + 1)),
        user_index=user_index,
        book_index=book_index,
        events=events,
        ratings=ratings,
        timestamps=timestamps,
        user_groups=user_groups,
        book_groups=book_groups,
    )
    grouping = (
        f"planted clusters: {clusters} groups, {in_cluster_share:.0%} of rows inside the "
        "user's group"
        if clusters
        else "no planted clusters"
    )
    description = (
        f"These {n_interactions:,} interactions are SYNTHETIC benchmark data (seed {seed}): "
        f"{n_users:,} users with Zipf-like activity, {n_books:,} books with Zipf-like "
        f"popularity by id, events drawn independently, {grouping}."
    )
    return with_description(result, description)


class _BenchmarkSampler:
    def __init__(
        self,
        user_weights: np.ndarray,
        book_weights: np.ndarray,
        clusters: int,
        in_cluster_share: float,
        start_s: int,
        end_s: int,
    ) -> None:
        self.n_users = len(user_weights)
        self.user_cdf = cdf(user_weights)
        self.book_cdf = cdf(book_weights)
        self.clusters = clusters
        self.in_cluster_share = in_cluster_share
        self.group_books = [np.arange(g, len(book_weights), clusters) for g in range(clusters)]
        self.group_cdfs = [cdf(book_weights[books]) for books in self.group_books]
        self.start_s, self.end_s = start_s, end_s

    def draw(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
        users = sample_cdf(rng, self.user_cdf, n).astype(np.int32)
        books = sample_cdf(rng, self.book_cdf, n).astype(np.int32)
        inside = np.zeros(n, dtype=bool)
        if self.clusters:
            inside = rng.random(n) < self.in_cluster_share
            groups = users % self.clusters
            for group, (members, group_cdf) in enumerate(
                zip(self.group_books, self.group_cdfs, strict=True)
            ):
                rows = np.flatnonzero(inside & (groups == group))
                books[rows] = members[sample_cdf(rng, group_cdf, len(rows))]
        events = sample_cdf(rng, cdf(np.asarray(BENCHMARK_EVENT_P)), n).astype(np.int8)
        ratings = np.full(n, np.nan, dtype=np.float32)
        rated = np.flatnonzero(events == _RATE)
        liked_p = BENCHMARK_RATING_P
        other_p = BENCHMARK_OUT_OF_CLUSTER_RATING_P if self.clusters else BENCHMARK_RATING_P
        for rows, probabilities in (
            (rated[inside[rated]], liked_p),
            (rated[~inside[rated]], other_p),
        ):
            ratings[rows] = 1 + sample_cdf(rng, cdf(np.asarray(probabilities)), len(rows))
        timestamps = rng.integers(self.start_s, self.end_s, n, dtype=np.int64)
        return users, books, events, ratings, timestamps


def _sorted_unique(columns: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """Rows sorted by time, keeping the first of each (user, book, event, timestamp)."""
    users, books, events, _, timestamps = columns
    order = np.lexsort((events, books, users, timestamps))
    key_columns = [c[order] for c in (timestamps, users, books, events)]
    repeated = np.zeros(len(order), dtype=bool)
    if len(order) > 1:
        repeated[1:] = np.logical_and.reduce([c[1:] == c[:-1] for c in key_columns])
    keep = order[~repeated]
    return tuple(c[keep] for c in columns)


def _zipf_weights(n: int, exponent: float, offset: float) -> np.ndarray:
    return 1.0 / (np.arange(1, n + 1) + offset) ** exponent
