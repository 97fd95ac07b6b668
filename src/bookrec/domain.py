"""Plain data shapes shared by readers, storage, services and algorithms."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

# Event names in the order of their integer codes (the code is the index).
EVENTS: tuple[str, ...] = ("view", "click", "like", "rate", "purchase")
EVENT_CODES: dict[str, int] = {name: code for code, name in enumerate(EVENTS)}
RATING_MIN = 1.0
RATING_MAX = 5.0

VECTOR_FAMILIES: dict[str, tuple[str, str | None]] = {
    # family -> (books column, users column)
    "content": ("content_embedding", None),
    "cf": ("cf_embedding", "cf_vector"),
    "gnn": ("gnn_vector", None),
}


@dataclass(frozen=True)
class InteractionArrays:
    """All interactions as parallel arrays, as the repository hands them to algorithms.

    user_ids / book_ids are database ids (int32 where every id fits, else int64); events are
    codes of EVENTS (int8); ratings are float32 with NaN where the event has none; timestamps
    are int64 epoch seconds (floored). Rows are in the order of their interaction ids.
    """

    user_ids: np.ndarray
    book_ids: np.ndarray
    events: np.ndarray
    ratings: np.ndarray
    timestamps: np.ndarray
    max_interaction_id: int = 0

    def __len__(self) -> int:
        return len(self.user_ids)


# One validated interaction: (user external id, book database id, event name, rating or None,
# epoch seconds)
InteractionRow = tuple[str, int, str, float | None, float]


@dataclass(frozen=True, eq=False)
class InteractionBatch:
    """Validated interaction rows of an input file, in file order, as parallel columns.

    users are external ids; book_ids database ids (int64); events codes of EVENTS (int8);
    ratings float64 with NaN where the event has none; timestamps float64 epoch seconds.
    """

    users: list[str]
    book_ids: np.ndarray
    events: np.ndarray
    ratings: np.ndarray
    timestamps: np.ndarray

    def __len__(self) -> int:
        return len(self.users)

    @classmethod
    def from_rows(cls, rows: list[InteractionRow]) -> InteractionBatch:
        import numpy as np

        users, books, events, ratings, stamps = zip(*rows, strict=True) if rows else ([],) * 5
        return cls(
            users=list(users),
            book_ids=np.array(books, dtype=np.int64),
            events=np.array([EVENT_CODES[e] for e in events], dtype=np.int8),
            ratings=np.array([np.nan if r is None else r for r in ratings], dtype=np.float64),
            timestamps=np.array(stamps, dtype=np.float64),
        )


@dataclass(frozen=True, eq=False)
class BookEventCounts:
    """How many interactions each (book, event code, rating) has: the popularity of every
    book under any event weights. Rows may repeat a key (their counts add up); ratings are NaN
    for events without one. Counted over interactions up to id `max_interaction_id`."""

    book_ids: np.ndarray
    events: np.ndarray
    ratings: np.ndarray
    counts: np.ndarray
    max_interaction_id: int = 0
    first_at: float | None = None  # when known: the interactions counted occurred from
    last_at: float | None = None  # first_at to last_at (epoch seconds, as stored)


@dataclass
class BookRecord:
    """One validated book row, ready for upsert."""

    external_id: str
    title: str
    authors: str | None = None
    description: str | None = None
    isbn: str | None = None
    year: int | None = None
    language: str | None = None
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BookText:
    """The text fields of a stored book that content embeddings are computed from."""

    book_id: int
    title: str
    authors: str | None
    description: str | None
    year: int | None
    language: str | None
    tags: list[str]
