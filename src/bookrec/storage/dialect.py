"""What differs between the SQL backends in the small: one connection and how to speak to it.

The parts of the repository (books, interactions, vectors, runs, snapshots, schema) write their
SQL once, with the dialect's placeholder and its few expressions; each backend's bulk paths
(COPY, JSON batches) live in its own module.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

from bookrec.dburl import DatabaseUrl


class Dialect(ABC):
    """One open connection of a backend, with its SQL spelling, transactions and locks."""

    backend: str  # "sqlite" or "postgresql"
    migrations_dir: str  # the folder of its migrations under storage/migrations
    param: str  # the driver's placeholder: "?" or "%s"
    json_length_function: str  # SQL function giving a JSON array's length
    now: str  # SQL expression of the current time, as the schema stores times
    migrations_table: str  # CREATE TABLE IF NOT EXISTS schema_migrations (...)
    counts_rows_cheaply: bool = False  # count(*) costs less than reading a narrow column
    conn: Any  # a DB-API connection with .execute(sql, params) returning a cursor

    def __init__(self, url: DatabaseUrl) -> None:
        self.url = url

    # -- SQL spelling ----------------------------------------------------------------------
    def epoch(self, expression: str) -> str:
        """SQL turning a stored time into epoch seconds (float)."""
        return expression

    def json_text(self, column: str) -> str:
        """SQL reading a JSON column as text."""
        return column

    @abstractmethod
    def json_param(self, value: Any) -> Any:
        """A Python value as the parameter of a JSON column."""

    def from_json(self, value: Any) -> Any:
        """A JSON column's value as the driver returns it, decoded."""
        return value

    def marks(self, n: int) -> str:
        """n placeholders, comma-separated."""
        return ", ".join([self.param] * n)

    # -- running SQL -----------------------------------------------------------------------
    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.conn.execute(sql, params)

    def stream_blob_rows(self, sql: str, params: Sequence[Any]) -> Iterator[tuple]:
        """The rows of a query that returns binary columns, one at a time (not all of them
        in memory at once)."""
        return iter(self.conn.execute(sql, params))

    @abstractmethod
    def select_by_ids(self, sql: str, ids: Sequence[int] | None) -> list[tuple]:
        """The rows of `sql` (a SELECT whose first column is `id`, without WHERE) for the ids,
        or for every row when ids is None, ordered by id."""

    @abstractmethod
    def transaction(self) -> AbstractContextManager[Any]:
        """A write transaction: committed on a clean exit, rolled back on any exception."""

    @abstractmethod
    def read_snapshot(self) -> AbstractContextManager[Any]:
        """A transaction in which every read sees the same state of the database."""

    @abstractmethod
    def table_exists(self, name: str) -> bool: ...

    @abstractmethod
    def run_script(self, script: str) -> None:
        """Run the statements of a migration, inside the caller's transaction."""

    # -- locks -----------------------------------------------------------------------------
    @abstractmethod
    def lock(
        self, name: str, wait: bool, on_wait: Callable[[], None] | None = None
    ) -> AbstractContextManager[None]:
        """Hold the named lock (of this database, across processes) for the block; it dies
        with the process. When another holds it: LockBusyError, or with wait, on_wait() (if
        given) and then wait for it."""

    @abstractmethod
    def lock_is_held(self, name: str) -> bool:
        """Whether some process (this one included) holds the named lock now."""

    def close(self) -> None:
        self.conn.close()
