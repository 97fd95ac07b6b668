"""The repository interface: everything bookrec reads from or writes to its database."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np

from bookrec.dburl import DatabaseUrl
from bookrec.domain import (
    EVENTS,
    BookEventCounts,
    BookRecord,
    BookText,
    InteractionArrays,
)
from bookrec.errors import JobFailedError, SchemaMissingError, SchemaOutdatedError
from bookrec.storage.columns import vector_column
from bookrec.storage.loading import InteractionLoader
from bookrec.storage.snapshots import SnapshotStore, snapshot_name

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


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


@dataclass(frozen=True)
class VectorStats:
    family: str
    side: str  # "books" or "users"
    column: str
    rows: int
    with_vector: int
    dimensions: dict[int, int]  # dimension -> rows


@dataclass(frozen=True)
class TrainingRun:
    id: int
    model: str
    status: str
    parameters: dict[str, Any]
    started_at: float
    finished_at: float | None
    n_users: int | None
    n_books: int | None
    n_interactions: int | None
    max_interaction_id: int | None
    phases: dict[str, float]
    metrics: dict[str, Any]
    error: str | None


def load_migrations(backend_dir: str) -> list[Migration]:
    folder = resources.files("bookrec.storage") / "migrations" / backend_dir
    migrations = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".sql"):
            version_text, _, rest = entry.name.partition("_")
            migrations.append(Migration(int(version_text), rest[:-4], entry.read_text("utf-8")))
    return migrations


def vectors_from_json(rows: Sequence[tuple[int, str]]) -> tuple[np.ndarray, np.ndarray]:
    """(ids, float32 matrix) from rows of (id, JSON array text)."""
    import orjson

    ids = np.array([r[0] for r in rows], dtype=np.int64)
    if not rows:
        return ids, np.empty((0, 0), dtype=np.float32)
    first = orjson.loads(rows[0][1])
    vectors = np.empty((len(rows), len(first)), dtype=np.float32)
    for row, (_, text) in enumerate(rows):
        vectors[row] = orjson.loads(text)  # filling row by row beats np.array(list of lists)
    return ids, vectors


# (side: "books" or "users", row ids, vectors)
VectorSide = tuple[str, np.ndarray, np.ndarray]


def _checked(family: str, sides: list[VectorSide]) -> list[VectorSide]:
    for side, ids, vectors in sides:
        what = f"{family} {side} vectors"
        if vectors.ndim != 2 or len(ids) != len(vectors):
            raise JobFailedError(f"{what}: {len(ids)} ids but vectors of shape {vectors.shape}")
        repeated = len(ids) - len(np.unique(ids))
        if repeated:
            raise JobFailedError(f"{what}: {repeated} ids repeat; nothing written")
        if not np.isfinite(vectors).all():
            raise JobFailedError(
                f"{what}: the model produced NaN or infinite values; nothing written"
            )
    return sides


def interaction_arrays(rows: Sequence[tuple], max_interaction_id: int) -> InteractionArrays:
    """Rows of (user_id, book_id, event_code, rating|None, epoch) to InteractionArrays."""
    if not rows:
        empty = np.empty(0, dtype=np.int64)
        return InteractionArrays(
            empty, empty.copy(), np.empty(0, np.int8), np.empty(0, np.float32), empty.copy(), 0
        )
    table = np.array(rows, dtype=np.float64)  # None ratings become NaN
    return InteractionArrays(
        user_ids=table[:, 0].astype(np.int64),
        book_ids=table[:, 1].astype(np.int64),
        events=table[:, 2].astype(np.int8),
        ratings=table[:, 3].astype(np.float32),
        timestamps=np.floor(table[:, 4]).astype(np.int64),
        max_interaction_id=max_interaction_id,
    )


class Repository(SnapshotStore, ABC):
    """One database. Every write method is atomic; vector replacement is one transaction."""

    backend: str
    migrations_dir: str
    conn: Any  # a DB-API connection with .execute(sql, params) returning a cursor
    param: str  # the driver's placeholder: "?" or "%s"
    json_length: str  # the SQL function giving a JSON array's length

    def _epoch(self, expression: str) -> str:
        """SQL turning a stored time into epoch seconds."""
        return expression

    def __init__(self, url: DatabaseUrl) -> None:
        self.url = url

    # -- lifecycle and schema -------------------------------------------------------------
    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Repository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abstractmethod
    def schema_version(self) -> int | None:
        """The applied schema version, or None when there is no bookrec schema."""

    @abstractmethod
    def apply_migration(self, migration: Migration) -> None: ...

    @abstractmethod
    def migration_lock(self) -> AbstractContextManager[None]: ...

    def migrations(self) -> list[Migration]:
        return load_migrations(self.migrations_dir)

    def latest_schema_version(self) -> int:
        return max(m.version for m in self.migrations())

    def migrate(self) -> list[Migration]:
        """Apply every migration not yet applied, each in its own transaction."""
        with self.migration_lock():
            current = self.schema_version() or 0
            pending = [m for m in self.migrations() if m.version > current]
            for migration in pending:
                self.apply_migration(migration)
            return pending

    def require_schema(self) -> None:
        version = self.schema_version()
        if version is None:
            raise SchemaMissingError()
        latest = self.latest_schema_version()
        if version < latest:
            raise SchemaOutdatedError(version, latest)

    # -- books -----------------------------------------------------------------------------
    def book_id_map(self) -> dict[str, int]:
        """external id -> database id of every book."""
        return dict(self.conn.execute("SELECT external_id, id FROM books").fetchall())

    def all_book_ids(self, known: np.ndarray | None = None) -> np.ndarray:
        """The database id of every book, ascending (int64). `known`: ascending ids known to
        be books' (those of loaded vectors); a backend that counts rows cheaply returns them
        as they are when there are as many books."""
        # Unordered, the planner can read the ids from a narrow index instead of the wide rows.
        rows = self.conn.execute("SELECT id FROM books").fetchall()
        return np.sort(np.array([r[0] for r in rows], dtype=np.int64))

    @abstractmethod
    def upsert_books(self, batches: Iterable[Sequence[BookRecord]]) -> BookUpsertResult:
        """Insert new books and update changed ones, all batches in one transaction.

        A change to a book's text clears its content embedding so that it is embedded again.
        """

    @abstractmethod
    def book_texts(self, ids: Sequence[int] | None = None) -> list[BookText]: ...

    @abstractmethod
    def book_summaries(self, ids: Sequence[int]) -> list[BookSummary]: ...

    def books_without_vector(self, family: str) -> list[int]:
        column = vector_column(family, "books")
        rows = self.conn.execute(f"SELECT id FROM books WHERE {column} IS NULL ORDER BY id")
        return [r[0] for r in rows.fetchall()]

    # -- users and interactions ----------------------------------------------------------
    def find_user(self, external_id: str) -> int | None:
        return self._find("users", external_id)

    def find_book(self, external_id: str) -> int | None:
        return self._find("books", external_id)

    def _find(self, table: str, external_id: str) -> int | None:
        sql = f"SELECT id FROM {table} WHERE external_id = {self.param}"
        found = self.conn.execute(sql, (external_id,)).fetchone()
        return found[0] if found else None

    @abstractmethod
    def interaction_loader(self) -> InteractionLoader: ...

    @abstractmethod
    def load_interactions(self, user_id: int | None = None) -> InteractionArrays:
        """All interactions (or one user's) from one snapshot, up to its newest id."""

    def counts(self) -> dict[str, Any]:
        """books, users, interactions, per-event counts, first/last interaction time."""
        c = self.conn
        per_event = dict.fromkeys(EVENTS, 0)
        per_event.update(c.execute("SELECT event, count(*) FROM interactions GROUP BY event"))
        first, last, max_id = c.execute(
            f"SELECT {self._epoch('min(occurred_at)')}, {self._epoch('max(occurred_at)')},"
            " max(id) FROM interactions"
        ).fetchone()
        return {
            "books": c.execute("SELECT count(*) FROM books").fetchone()[0],
            "users": c.execute("SELECT count(*) FROM users").fetchone()[0],
            "interactions": sum(per_event.values()),
            "interactions_by_event": per_event,
            "first_interaction_at": first,
            "last_interaction_at": last,
            "max_interaction_id": max_id or 0,
        }

    def interactions_after(self, interaction_id: int) -> int:
        """How many interactions have an id above the given one (arrived since a run)."""
        sql = f"SELECT count(*) FROM interactions WHERE id > {self.param}"
        return self.conn.execute(sql, (interaction_id,)).fetchone()[0]

    # -- vectors ---------------------------------------------------------------------------
    def vector_stats(self, family: str, side: str) -> VectorStats:
        column = vector_column(family, side)
        rows = self.conn.execute(f"SELECT count(*) FROM {side}").fetchone()[0]
        dims = dict(
            self.conn.execute(
                f"SELECT {self.json_length}({column}), count(*) FROM {side}"
                f" WHERE {column} IS NOT NULL GROUP BY 1"
            ).fetchall()
        )
        return VectorStats(family, side, column, rows, sum(dims.values()), dims)

    def load_vectors(self, family: str, side: str = "books") -> tuple[np.ndarray, np.ndarray]:
        """(ids, float32 matrix) of every row that has a vector of that family (read-only)."""
        return self.load_vector_families([family], side)[family]

    def load_vector_families(
        self, families: Sequence[str], side: str = "books"
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """load_vectors of several families: books from their snapshots where there is one,
        the rest from the JSON columns in one scan of the table (rows are wide). The arrays
        are read-only either way: a snapshot's are views of the bytes the database sent."""
        loaded: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        if side == "books":
            names = {snapshot_name(family): family for family in families}
            for name, (ids, vectors, _) in self._read_snapshots(list(names), np.float32).items():
                loaded[names[name]] = ids, vectors
        missing = [f for f in families if f not in loaded]
        if missing:
            from_json = self._load_json_vectors(missing, side)
            for ids, vectors in from_json.values():
                ids.flags.writeable = vectors.flags.writeable = False
            loaded |= from_json
        return {family: loaded[family] for family in families}

    def _load_json_vectors(
        self, families: Sequence[str], side: str
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        columns = [self._json_text(vector_column(f, side)) for f in families]
        rows = self.conn.execute(
            f"SELECT id, {', '.join(columns)} FROM {side} ORDER BY id"
        ).fetchall()
        return {
            family: vectors_from_json([(r[0], r[i]) for r in rows if r[i] is not None])
            for i, family in enumerate(families, start=1)
        }

    def load_vector(self, family: str, side: str, row_id: int) -> np.ndarray | None:
        """One row's vector of that family, or None."""
        column = self._json_text(vector_column(family, side))
        sql = f"SELECT {column} FROM {side} WHERE id = {self.param}"
        row = self.conn.execute(sql, (row_id,)).fetchone()
        if row is None or row[0] is None:
            return None
        return vectors_from_json([(row_id, row[0])])[1][0]

    def _json_text(self, column: str) -> str:
        """SQL reading a JSON column as text."""
        return column

    def replace_vectors(
        self,
        family: str,
        run_id: int,
        run_result: dict[str, Any],
        book_ids: np.ndarray,
        book_vectors: np.ndarray,
        user_ids: np.ndarray | None = None,
        user_vectors: np.ndarray | None = None,
        artifacts: dict[str, bytes] | None = None,
        on_progress: ProgressCallback | None = None,
        event_counts: BookEventCounts | Callable[[], BookEventCounts] | None = None,
    ) -> None:
        """In one transaction: write the family's vectors, NULL it everywhere else, store the
        snapshots recommend reads (with `event_counts`, if given, for popularity) and mark the
        run succeeded with run_result (finish_run's fields). Nothing changes on error.

        `event_counts` may be a function returning them, called once the vectors are written:
        the caller can compute them meanwhile."""
        sides = [("books", book_ids, book_vectors)]
        if user_ids is not None and user_vectors is not None:
            sides.append(("users", user_ids, user_vectors))
        self._write_vectors(
            family,
            run_id,
            run_result,
            _checked(family, sides),
            artifacts,
            on_progress,
            True,
            event_counts,
        )

    def update_vectors(
        self,
        family: str,
        run_id: int,
        run_result: dict[str, Any],
        book_ids: np.ndarray,
        book_vectors: np.ndarray,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        """Like replace_vectors, but leaves the vectors of other books as they are."""
        sides = _checked(family, [("books", book_ids, book_vectors)])
        self._write_vectors(family, run_id, run_result, sides, None, on_progress, False, None)

    def _write_vectors(
        self,
        family: str,
        run_id: int,
        run_result: dict[str, Any],
        sides: list[VectorSide],
        artifacts: dict[str, bytes] | None,
        on_progress: ProgressCallback | None,
        clear_others: bool,
        event_counts: BookEventCounts | Callable[[], BookEventCounts] | None,
    ) -> None:
        """The one transaction of replace_vectors / update_vectors."""
        total = sum(len(ids) for _, ids, _ in sides)
        done = 0

        def advance(rows: int) -> None:
            nonlocal done
            done += rows
            if on_progress:
                on_progress(done, total)

        with self._vector_transaction():
            for side, ids, vectors in sides:
                column = vector_column(family, side)
                self._write_column(side, column, ids, vectors, clear_others, advance)
            for name, data in (artifacts or {}).items():
                p = self.param
                sql = f"INSERT INTO model_artifacts VALUES ({p}, {p}, {p})"
                self.conn.execute(sql, (run_id, name, data))
            if callable(event_counts):
                event_counts = event_counts()
            self._write_snapshots(family, sides, event_counts, clear_others)
            self._finish_run(run_id, "succeeded", run_result)

    @abstractmethod
    def _vector_transaction(self) -> AbstractContextManager[Any]:
        """The transaction of a vector write, set up for it."""

    @abstractmethod
    def _write_column(
        self,
        side: str,
        column: str,
        ids: np.ndarray,
        vectors: np.ndarray,
        clear_others: bool,
        advance: Callable[[int], None],
    ) -> None:
        """Inside _vector_transaction: vectors into one column by row id (and NULL in every
        other row if clear_others); advance(n) after each n rows written."""

    # -- training runs and locks ---------------------------------------------------------
    @abstractmethod
    def start_run(self, model: str, parameters: dict[str, Any]) -> int: ...

    @abstractmethod
    def _finish_run(self, run_id: int, status: str, result: dict[str, Any]) -> None:
        """finish_run's UPDATE, inside the caller's transaction."""

    @abstractmethod
    def finish_run(self, run_id: int, status: str, **result: Any) -> None:
        """Record the outcome: status, n_users, n_books, n_interactions, max_interaction_id,
        phases, metrics, error."""

    @abstractmethod
    def runs(self, model: str | None = None, limit: int = 20) -> list[TrainingRun]: ...

    def latest_run(self, model: str, status: str | None = "succeeded") -> TrainingRun | None:
        for run in self.runs(model, limit=50):
            if status is None or run.status == status:
                return run
        return None

    @abstractmethod
    def latest_artifact(self, model: str, name: str) -> tuple[int, bytes] | None: ...

    @abstractmethod
    def training_lock(self, model: str, wait: bool = False) -> AbstractContextManager[None]:
        """Held for a whole training run; raises LockBusyError unless wait."""

    def is_empty(self) -> bool:
        """No schema, or no books, users and interactions."""
        if self.schema_version() is None:
            return True
        return not any(
            self.conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone()
            for table in ("books", "users", "interactions")
        )

    def iter_chunks(self, n: int, size: int) -> Iterator[tuple[int, int]]:
        for start in range(0, n, size):
            yield start, min(n, start + size)
