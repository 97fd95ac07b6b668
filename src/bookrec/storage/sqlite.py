"""The embedded SQLite repository (the default)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import orjson

from bookrec.dburl import DatabaseUrl
from bookrec.domain import EVENTS, BookRecord, BookText, InteractionBatch
from bookrec.errors import DatabaseUnavailableError, JobFailedError, LockBusyError
from bookrec.storage.base import (
    BookSummary,
    BookUpsertResult,
    Migration,
    Repository,
    TrainingRun,
    interaction_arrays,
)
from bookrec.storage.columns import INTERACTION_COLUMNS, event_code_sql
from bookrec.storage.loading import (
    InteractionLoader,
    InteractionLoadResult,
    first_in_key_order,
)

VECTOR_CHUNK = 5000
MMAP_BYTES = 1 << 30
BOOK_FIELDS = ("title", "authors", "description", "isbn", "year", "language", "tags", "metadata")
TEXT_FIELDS = ("title", "authors", "description", "year", "language", "tags")


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()


SQL_VARIABLES = 900  # bound parameters per statement: below SQLite's oldest limit (999)
_EVENT_OF_CODE = " ".join(f"WHEN {code} THEN '{name}'" for code, name in enumerate(EVENTS))
INSERT_FROM_JSON = (
    f"INSERT OR IGNORE INTO interactions ({INTERACTION_COLUMNS})"
    " SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'),"
    f" CASE json_extract(value, '$[2]') {_EVENT_OF_CODE} END,"
    " json_extract(value, '$[3]'), json_extract(value, '$[4]') FROM json_each(?)"
)


class SqliteInteractionLoader(InteractionLoader):
    """One IMMEDIATE transaction (the only writer); each batch inserted in unique-key order
    by one statement that reads the rows from a JSON array, so SQLite does the whole batch
    in C without holding Python's lock.

    Foreign keys are not checked row by row: the loader is the only writer; it checks each
    book id once, and its user ids come from its own lookups and inserts."""

    def __init__(self, repo: SqliteRepository) -> None:
        super().__init__()
        self.conn = repo.conn
        self._restore_pragmas = {
            name: self.conn.execute(f"PRAGMA {name}").fetchone()[0]
            for name in ("foreign_keys", "temp_store")
        }
        self.conn.execute("PRAGMA foreign_keys = OFF")  # a no-op inside a transaction
        # SQLite's temporary data of each batch's statement (~80 MB at 100k rows into a 3M-row
        # table) in a temporary file instead of memory: measured as fast, with less RSS.
        self.conn.execute("PRAGMA temp_store = FILE")
        self.conn.execute("BEGIN IMMEDIATE")
        self._insert = _json_insert if _has_json(self.conn) else _executemany_insert
        self._checked_books: set[int] = set()

    def add(self, batch: InteractionBatch) -> None:
        self._check_books(batch.book_ids)
        user_ids = self.user_ids(batch.users)
        order = first_in_key_order(user_ids, batch.book_ids, batch.events, batch.timestamps)
        table = np.column_stack(
            [user_ids[order], batch.book_ids[order], batch.events[order],
             batch.ratings[order], batch.timestamps[order]]
        )  # fmt: skip
        self.result.inserted += self._insert(self.conn, table)
        self.result.rows += len(batch)

    def _check_books(self, book_ids: np.ndarray) -> None:
        new = [b for b in np.unique(book_ids).tolist() if b not in self._checked_books]
        found = 0
        for start in range(0, len(new), SQL_VARIABLES):
            chunk = new[start : start + SQL_VARIABLES]
            sql = f"SELECT count(*) FROM books WHERE id IN ({', '.join('?' * len(chunk))})"
            found += self.conn.execute(sql, chunk).fetchone()[0]
        if found != len(new):
            raise JobFailedError(f"{len(new) - found} of the books are not in the database")
        self._checked_books.update(new)

    def _find_users(self, external_ids: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for start in range(0, len(external_ids), SQL_VARIABLES):
            chunk = external_ids[start : start + SQL_VARIABLES]
            marks = ", ".join("?" * len(chunk))
            rows = self.conn.execute(
                f"SELECT external_id, id FROM users WHERE external_id IN ({marks})", chunk
            )
            found.update(rows.fetchall())
        return found

    def _create_users(self, external_ids: Sequence[str]) -> dict[str, int]:
        rows = [(u,) for u in external_ids]
        self.conn.executemany("INSERT INTO users (external_id) VALUES (?)", rows)
        return self._find_users(external_ids)

    def commit(self) -> InteractionLoadResult:
        try:
            self.conn.execute("COMMIT")
        except BaseException:
            self.rollback()
            raise
        self._finish()
        self.result.duplicates = self.result.rows - self.result.inserted
        return self.result

    def rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
        self._finish()

    def _finish(self) -> None:
        for name, value in self._restore_pragmas.items():
            self.conn.execute(f"PRAGMA {name} = {int(value)}")


def _has_json(conn: sqlite3.Connection) -> bool:
    try:
        conn.execute("SELECT json_extract('[1]', '$[0]')").fetchone()
    except sqlite3.OperationalError:
        return False  # built without JSON1 (before 3.38 it was optional)
    return True


def _json_insert(conn: sqlite3.Connection, table: np.ndarray) -> int:
    """Rows of (user id, book id, event code, rating or NaN, epoch) in one statement."""
    # NaN ratings become JSON null (NULL); floats keep every digit (shortest round trip).
    # Bound as text: SQLite 3.45+ reads a BLOB argument as its binary JSONB format.
    return conn.execute(INSERT_FROM_JSON, (_json(table),)).rowcount


def _executemany_insert(conn: sqlite3.Connection, table: np.ndarray) -> int:
    rows = [
        (int(u), int(b), EVENTS[int(e)], None if r != r else r, t)
        for u, b, e, r, t in table.tolist()
    ]
    before = conn.total_changes
    conn.executemany(
        f"INSERT OR IGNORE INTO interactions ({INTERACTION_COLUMNS}) VALUES (?, ?, ?, ?, ?)", rows
    )
    return conn.total_changes - before


class SqliteRepository(Repository):
    backend = "sqlite"
    migrations_dir = "sqlite"
    param = "?"
    json_length = "json_array_length"

    def __init__(self, url: DatabaseUrl, create: bool = False) -> None:
        super().__init__(url)
        path = url.sqlite_path
        assert path is not None
        if not path.exists() and not create:
            # An absent file is an absent schema; do not leave an empty file behind.
            self.conn = sqlite3.connect(":memory:", isolation_level=None)
            self._missing_file = True
            return
        self._missing_file = False
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(
                path, isolation_level=None, timeout=60, check_same_thread=False
            )
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self.conn.execute("PRAGMA temp_store=MEMORY")
            self.conn.execute("PRAGMA cache_size=-65536")  # 64 MiB
            # Reads through a memory map instead of a read() per 4 KB page: recommend's 16 MB of
            # snapshot blobs in ~20 ms instead of ~35. Writes still go through the journal.
            self.conn.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
        except (sqlite3.Error, OSError) as exc:
            raise DatabaseUnavailableError(f"cannot open {url.where}: {exc}") from None

    def close(self) -> None:
        self.conn.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # -- schema ----------------------------------------------------------------------------
    def schema_version(self) -> int | None:
        if self._missing_file:
            return None
        exists = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        ).fetchone()
        if not exists:
            return None
        return self.conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]

    @contextlib.contextmanager
    def migration_lock(self) -> Iterator[None]:
        with self._file_lock("migrate", wait=True):
            yield

    def apply_migration(self, migration: Migration) -> None:
        with self._transaction() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                " name TEXT NOT NULL, applied_at REAL NOT NULL)"
            )
            for statement in _split_sql(migration.sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                (migration.version, migration.name, time.time()),
            )

    # -- books -----------------------------------------------------------------------------
    def upsert_books(self, batches: Iterable[Sequence[BookRecord]]) -> BookUpsertResult:
        result = BookUpsertResult()
        changed = " OR ".join(f"books.{f} IS NOT excluded.{f}" for f in BOOK_FIELDS)
        text_changed = " OR ".join(f"books.{f} IS NOT excluded.{f}" for f in TEXT_FIELDS)
        sql = (
            f"INSERT INTO books (external_id, {', '.join(BOOK_FIELDS)}) VALUES (?{', ?' * 8})"
            f" ON CONFLICT (external_id) DO UPDATE SET"
            f" {', '.join(f'{f} = excluded.{f}' for f in BOOK_FIELDS)},"
            f" content_embedding = CASE WHEN {text_changed} THEN NULL"
            f" ELSE books.content_embedding END,"
            f" updated_at = (julianday('now') - 2440587.5) * 86400.0"
            f" WHERE {changed} RETURNING id, created_at = updated_at"
        )
        with self._transaction() as conn:
            known = set(self.book_id_map())
            for batch in batches:
                for record in batch:
                    row = conn.execute(sql, _book_params(record)).fetchone()
                    if row is None:
                        result.unchanged += 1
                    elif record.external_id in known:
                        result.updated.append(row[0])
                    else:
                        result.inserted.append(row[0])
                        known.add(record.external_id)
        return result

    def all_book_ids(self, known: np.ndarray | None = None) -> np.ndarray:
        # count(*) walks the smallest index without reading a row: ~4 ms less than the ids.
        # (PostgreSQL visits every heap page for it until a vacuum sets the visibility map.)
        if known is not None:
            (n_books,) = self.conn.execute("SELECT count(*) FROM books").fetchone()
            if len(known) == n_books:
                return known
        return super().all_book_ids()

    def book_texts(self, ids: Sequence[int] | None = None) -> list[BookText]:
        sql = "SELECT id, title, authors, description, year, language, tags FROM books"
        rows = self._select_by_ids(sql, ids)
        return [BookText(r[0], r[1], r[2], r[3], r[4], r[5], orjson.loads(r[6])) for r in rows]

    def book_summaries(self, ids: Sequence[int]) -> list[BookSummary]:
        rows = self._select_by_ids("SELECT id, external_id, title, authors FROM books", ids)
        by_id = {r[0]: BookSummary(*r) for r in rows}
        return [by_id[i] for i in ids if i in by_id]

    def _select_by_ids(self, sql: str, ids: Sequence[int] | None) -> list[tuple]:
        if ids is None:
            return self.conn.execute(sql + " ORDER BY id").fetchall()
        rows: list[tuple] = []
        id_list = [int(i) for i in ids]
        for start in range(0, len(id_list), 900):
            chunk = id_list[start : start + 900]
            marks = ",".join("?" * len(chunk))
            rows.extend(self.conn.execute(f"{sql} WHERE id IN ({marks})", chunk))
        return sorted(rows)

    # -- users and interactions ----------------------------------------------------------
    def interaction_loader(self) -> InteractionLoader:
        return SqliteInteractionLoader(self)

    def load_interactions(self, user_id: int | None = None):
        self.conn.execute("BEGIN")
        try:
            max_id = self.conn.execute("SELECT coalesce(max(id), 0) FROM interactions")
            max_id = max_id.fetchone()[0]
            sql = (
                f"SELECT user_id, book_id, {event_code_sql()}, rating, occurred_at"
                " FROM interactions WHERE id <= ?"
            )
            params: tuple = (max_id,)
            if user_id is not None:
                sql += " AND user_id = ?"
                params = (max_id, user_id)
            rows = self.conn.execute(sql, params).fetchall()
        finally:
            self.conn.execute("COMMIT")
        return interaction_arrays(rows, max_id)

    # -- vectors ---------------------------------------------------------------------------
    def _vector_transaction(self) -> contextlib.AbstractContextManager[Any]:
        return self._transaction()

    def _write_column(
        self,
        side: str,
        column: str,
        ids: np.ndarray,
        vectors: np.ndarray,
        clear_others: bool,
        advance: Callable[[int], None],
    ) -> None:
        if clear_others:
            self.conn.execute(f"UPDATE {side} SET {column} = NULL WHERE {column} IS NOT NULL")
        for start, stop in self.iter_chunks(len(ids), VECTOR_CHUNK):
            self.conn.executemany(
                f"UPDATE {side} SET {column} = ? WHERE id = ?",
                zip(
                    (_json(v) for v in vectors[start:stop]),
                    ids[start:stop].tolist(),
                    strict=True,
                ),
            )
            advance(stop - start)

    # -- runs and locks --------------------------------------------------------------------
    def start_run(self, model: str, parameters: dict[str, Any]) -> int:
        with self._transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO training_runs (model, status, parameters, started_at)"
                " VALUES (?, 'running', ?, ?)",
                (model, _json(parameters), time.time()),
            )
            return int(cursor.lastrowid or 0)

    def finish_run(self, run_id: int, status: str, **result: Any) -> None:
        with self._transaction():
            self._finish_run(run_id, status, result)

    def _finish_run(self, run_id: int, status: str, result: dict[str, Any]) -> None:
        self.conn.execute(
            "UPDATE training_runs SET status = ?, finished_at = ?, n_users = ?, n_books = ?,"
            " n_interactions = ?, max_interaction_id = ?, phases = ?, metrics = ?, error = ?"
            " WHERE id = ?",
            (
                status,
                time.time(),
                result.get("n_users"),
                result.get("n_books"),
                result.get("n_interactions"),
                result.get("max_interaction_id"),
                _json(result.get("phases", {})),
                _json(result.get("metrics", {})),
                result.get("error"),
                run_id,
            ),
        )

    def runs(self, model: str | None = None, limit: int = 20) -> list[TrainingRun]:
        sql = "SELECT * FROM training_runs"
        params: tuple = ()
        if model:
            sql += " WHERE model = ?"
            params = (model,)
        rows = self.conn.execute(sql + " ORDER BY id DESC LIMIT ?", (*params, limit))
        return [
            TrainingRun(
                *r[:3],
                orjson.loads(r[3]),
                *r[4:10],
                orjson.loads(r[10]),
                orjson.loads(r[11]),
                r[12],
            )
            for r in rows
        ]

    def latest_artifact(self, model: str, name: str) -> tuple[int, bytes] | None:
        row = self.conn.execute(
            "SELECT a.run_id, a.data FROM model_artifacts a JOIN training_runs r"
            " ON r.id = a.run_id WHERE r.model = ? AND a.name = ? AND r.status = 'succeeded'"
            " ORDER BY a.run_id DESC LIMIT 1",
            (model, name),
        ).fetchone()
        return (row[0], bytes(row[1])) if row else None

    def training_lock(self, model: str, wait: bool = False):
        return self._file_lock(f"train-{model}", wait)

    @contextlib.contextmanager
    def _file_lock(self, name: str, wait: bool) -> Iterator[None]:
        # flock dies with the process, so a killed run never leaves a stale lock.
        assert self.url.sqlite_path is not None
        lock_path = self.url.sqlite_path.with_name(f"{self.url.sqlite_path.name}.{name}.lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                raise LockBusyError(name.replace("-", " "), self.url.where) from None
            yield
        finally:
            os.close(fd)


def _book_params(record: BookRecord) -> tuple:
    return (
        record.external_id,
        record.title,
        record.authors,
        record.description,
        record.isbn,
        record.year,
        record.language,
        _json(record.tags),
        _json(record.metadata),
    )


def _split_sql(script: str) -> list[str]:
    """The statements of a script; a trigger body's inner `;` does not end its statement."""
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    statements, pending = [], ""
    for piece in "\n".join(lines).split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                statements.append(pending.strip())
            pending = ""
    return statements
