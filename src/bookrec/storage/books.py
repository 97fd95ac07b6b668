"""Books: the catalogue, its upsert by external id, and the text content vectors are made from."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from bookrec.domain import BookRecord, BookText
from bookrec.storage.columns import json_text, vector_column
from bookrec.storage.dialect import Dialect

BOOK_FIELDS = ("title", "authors", "description", "isbn", "year", "language", "tags", "metadata")
TEXT_FIELDS = ("title", "authors", "description", "year", "language", "tags")


@dataclass
class BookUpsertResult:
    inserted: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    unchanged: int = 0


@dataclass(frozen=True)
class BookSummary:
    id: int
    external_id: str
    title: str
    authors: str | None


def book_values(record: BookRecord) -> tuple:
    """(external_id, *BOOK_FIELDS) of a record, tags and metadata as JSON text."""
    return (
        record.external_id,
        record.title,
        record.authors,
        record.description,
        record.isbn,
        record.year,
        record.language,
        json_text(record.tags),
        json_text(record.metadata),
    )


class Books(ABC):
    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect

    @abstractmethod
    def upsert(self, batches: Iterable[Sequence[BookRecord]]) -> BookUpsertResult:
        """Insert new books and update changed ones, all batches in one transaction.

        A change to a book's text clears its content embedding so that it is embedded again.
        """

    def id_map(self) -> dict[str, int]:
        """external id -> database id of every book."""
        return dict(self.dialect.execute("SELECT external_id, id FROM books").fetchall())

    def all_ids(self, known: np.ndarray | None = None) -> np.ndarray:
        """The database id of every book, ascending (int64). `known`: ascending ids known to
        be books' (those of loaded vectors); a backend that counts rows cheaply returns them
        as they are when there are as many books."""
        if known is not None and self.dialect.counts_rows_cheaply:
            (n_books,) = self.dialect.execute("SELECT count(*) FROM books").fetchone()
            if len(known) == n_books:
                return known
        # Unordered, the planner can read the ids from a narrow index instead of the wide rows.
        rows = self.dialect.execute("SELECT id FROM books").fetchall()
        return np.sort(np.array([r[0] for r in rows], dtype=np.int64))

    def find(self, external_id: str) -> int | None:
        sql = f"SELECT id FROM books WHERE external_id = {self.dialect.param}"
        found = self.dialect.execute(sql, (external_id,)).fetchone()
        return found[0] if found else None

    def texts(self, ids: Sequence[int] | None = None) -> list[BookText]:
        rows = self.dialect.select_by_ids(
            "SELECT id, title, authors, description, year, language, tags FROM books", ids
        )
        return [BookText(*r[:6], self.dialect.from_json(r[6])) for r in rows]

    def summaries(self, ids: Sequence[int]) -> list[BookSummary]:
        """The summaries of those of the ids that are books', in the order of ids."""
        rows = self.dialect.select_by_ids("SELECT id, external_id, title, authors FROM books", ids)
        by_id = {r[0]: BookSummary(*r) for r in rows}
        return [by_id[i] for i in ids if i in by_id]

    def without_vector(self, family: str) -> list[int]:
        column = vector_column(family, "books")
        rows = self.dialect.execute(f"SELECT id FROM books WHERE {column} IS NULL ORDER BY id")
        return [r[0] for r in rows.fetchall()]
