"""The generated rows (SyntheticInteractions), the demo's planted tastes and the time window."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import numpy as np

from bookrec.domain import EVENTS

DEFAULT_START = datetime(2025, 1, 1, tzinfo=UTC)
DEFAULT_END = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class UserTaste:
    """The planted taste of one demo user; ``book_ids`` are the books it makes favourites."""

    user_id: str
    authors: tuple[str, ...]
    series: tuple[str, ...]
    era: str
    era_years: tuple[int | None, int | None]
    language: str
    book_ids: frozenset[str]


@dataclass(frozen=True)
class SyntheticInteractions:
    """Generated rows as parallel arrays plus the ground truth they were planted from.

    Row i is user ``users[user_index[i]]``, book ``books[book_index[i]]``, event code
    ``events[i]`` (see ``domain.EVENTS``), rating ``ratings[i]`` (NaN unless rate) and
    ``timestamps[i]`` (epoch seconds, UTC). Rows are sorted by time.
    """

    users: tuple[str, ...]
    books: tuple[str, ...]
    user_index: np.ndarray
    book_index: np.ndarray
    events: np.ndarray
    ratings: np.ndarray
    timestamps: np.ndarray
    description: str = ""
    tastes: tuple[UserTaste, ...] = ()  # demo: one per user, in the order of ``users``
    user_groups: np.ndarray | None = None  # benchmark with clusters: group of each user
    book_groups: np.ndarray | None = None  # ... and of each book

    def __len__(self) -> int:
        return len(self.events)

    def describe(self) -> str:
        """Plain-language account of what was generated and how."""
        return self.description

    def rows(self) -> Iterator[tuple[str, str, str, float | None, int]]:
        """(user_id, book_id, event, rating or None, epoch seconds) per row."""
        for u, b, e, r, t in zip(
            self.user_index.tolist(),
            self.book_index.tolist(),
            self.events.tolist(),
            self.ratings.tolist(),
            self.timestamps.tolist(),
            strict=True,
        ):
            yield self.users[u], self.books[b], EVENTS[e], None if math.isnan(r) else r, t


def with_description(result: SyntheticInteractions, description: str) -> SyntheticInteractions:
    return replace(result, description=description)


def user_ids(n_users: int) -> tuple[str, ...]:
    """ "u00001", "u00002", ...: zero-padded to at least five digits."""
    width = max(5, len(str(n_users)))
    return tuple(f"u{i:0{width}d}" for i in range(1, n_users + 1))


def time_window(start: datetime | int, end: datetime | int) -> tuple[int, int]:
    """(start, end) as epoch seconds; naive datetimes are taken as UTC."""
    start_s, end_s = _epoch(start), _epoch(end)
    if end_s <= start_s:
        raise ValueError("end must be after start")
    return start_s, end_s


def _epoch(moment: datetime | int) -> int:
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return int(moment.timestamp())
    return int(moment)
