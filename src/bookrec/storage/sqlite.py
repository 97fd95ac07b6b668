"""The embedded SQLite backend (the default): its dialect, file locks, and bulk paths."""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bookrec import interrupts
from bookrec.dburl import DatabaseUrl
from bookrec.domain import EVENTS, BookRecord, InteractionArrays, InteractionBatch
from bookrec.errors import DatabaseUnavailableError, InputError, JobFailedError, LockBusyError
from bookrec.storage.books import BOOK_FIELDS, TEXT_FIELDS, Books, BookUpsertResult, book_values
from bookrec.storage.columns import INTERACTION_COLUMNS, event_code_sql, json_text
from bookrec.storage.dialect import Dialect
from bookrec.storage.interactions import (
    RATING_OR_NO_RATING,
    Interactions,
    compact_arrays,
    prefetched,
)
from bookrec.storage.loading import InteractionLoader, first_in_key_order
from bookrec.storage.repository import Repository
from bookrec.storage.vectors import Vectors, chunks

VECTOR_CHUNK = 5000  # vectors converted and sent at a time
MMAP_BYTES = 1 << 30
LOAD_CACHE_BYTES = 4 << 30
WAL_LIMIT_BYTES = 64 << 20  # what a WAL shrinks back to once checkpointed
SQL_VARIABLES = 900  # bound parameters per statement: below SQLite's oldest limit (999)
LOCK_GRACE_SECONDS = 0.2  # a probe (lock_is_held) holds a lock for microseconds: not "busy"


class SqliteDialect(Dialect):
    backend = "sqlite"
    migrations_dir = "sqlite"
    param = "?"
    json_length_function = "json_array_length"
    now = "((julianday('now') - 2440587.5) * 86400.0)"
    migrations_table = (
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
        " name TEXT NOT NULL, applied_at REAL NOT NULL)"
    )
    # count(*) walks the smallest index without reading a row: ~4 ms less than the ids.
    # (PostgreSQL visits every heap page for it until a vacuum sets the visibility map.)
    counts_rows_cheaply = True

    def __init__(self, url: DatabaseUrl, create: bool = False, create_directory: bool = False):
        super().__init__(url)
        path = url.sqlite_path
        assert path is not None
        self.path = path
        if not path.exists() and not create:
            # An absent file is an absent schema; do not leave an empty file behind.
            self.conn = sqlite3.connect(":memory:", isolation_level=None)
            return
        if create_directory:
            path.parent.mkdir(parents=True, exist_ok=True)
        elif not path.parent.is_dir():
            raise InputError(
                f"{url.where}: the directory {path.parent} does not exist (create it first)"
            )
        try:
            self.conn = sqlite3.connect(
                path, isolation_level=None, timeout=60, check_same_thread=False
            )
            self.conn.execute("PRAGMA journal_mode=WAL")
            # A 50M-row load leaves a 5.7 GB WAL; without a limit the file keeps that size.
            self.conn.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self.conn.execute("PRAGMA temp_store=MEMORY")
            self.conn.execute("PRAGMA cache_size=-65536")  # 64 MiB
            # Reads through a memory map instead of a read() per 4 KB page: recommend's 16 MB of
            # snapshot blobs in ~20 ms instead of ~35. Writes still go through the journal.
            self.conn.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
        except (sqlite3.Error, OSError) as exc:
            raise DatabaseUnavailableError(f"cannot open {url.where}: {exc}") from None

    def json_param(self, value: Any) -> str:
        return json_text(value)

    def from_json(self, value: Any) -> Any:
        return orjson.loads(value)

    def select_by_ids(self, sql: str, ids: Sequence[int] | None) -> list[tuple]:
        if ids is None:
            return self.conn.execute(sql + " ORDER BY id").fetchall()
        rows: list[tuple] = []
        id_list = [int(i) for i in ids]
        for start in range(0, len(id_list), SQL_VARIABLES):
            chunk = id_list[start : start + SQL_VARIABLES]
            rows.extend(self.conn.execute(f"{sql} WHERE id IN ({self.marks(len(chunk))})", chunk))
        return sorted(rows)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    @contextlib.contextmanager
    def read_snapshot(self) -> Iterator[None]:
        if self.conn.in_transaction:
            yield
            return
        self.conn.execute("BEGIN")  # deferred: the snapshot starts at the first read
        try:
            yield
        finally:
            self.conn.execute("COMMIT")

    def table_exists(self, name: str) -> bool:
        sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
        return self.conn.execute(sql, (name,)).fetchone() is not None

    def run_script(self, script: str) -> None:
        for statement in _split_sql(script):
            self.conn.execute(statement)

    # -- locks: an flock on a file beside the database -------------------------------------
    def _lock_path(self, name: str) -> Path:
        return self.path.with_name(f"{self.path.name}.{name}.lock")

    @contextlib.contextmanager
    def lock(
        self, name: str, wait: bool, on_wait: Callable[[], None] | None = None
    ) -> Iterator[None]:
        # flock dies with the process, so a killed run never leaves a stale lock (its file, at
        # worst, which the next holder removes).
        path = self._lock_path(name)
        fd = _lock_file(
            path, wait, on_wait, lambda: LockBusyError(name.replace("-", " "), self.url.where)
        )
        try:
            yield
        finally:
            # Removed while still held: a process that opened the file meanwhile and gets the
            # lock once we let go sees that the path no longer names its file, and retries.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            os.close(fd)

    def lock_is_held(self, name: str) -> bool:
        try:
            fd = os.open(self._lock_path(name), os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False


def _lock_file(
    path: Path, wait: bool, on_wait: Callable[[], None] | None, busy: Callable[[], Exception]
) -> int:
    """An open descriptor of `path` holding its exclusive flock, the file still at `path`."""
    waited = False
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if not _try_flock(fd):
                if not wait:
                    raise busy()
                if on_wait is not None and not waited:
                    on_wait()
                waited = True
                fcntl.flock(fd, fcntl.LOCK_EX)
            if _still_at(fd, path):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # the last holder removed this file as it let go: lock the new one


def _try_flock(fd: int) -> bool:
    deadline = time.monotonic() + LOCK_GRACE_SECONDS
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)


def _still_at(fd: int, path: Path) -> bool:
    try:
        linked = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (linked.st_dev, linked.st_ino) == (held.st_dev, held.st_ino)


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


# -- books ----------------------------------------------------------------------------------
class SqliteBooks(Books):
    def upsert(self, batches: Iterable[Sequence[BookRecord]]) -> BookUpsertResult:
        result = BookUpsertResult()
        changed = " OR ".join(f"books.{f} IS NOT excluded.{f}" for f in BOOK_FIELDS)
        text_changed = " OR ".join(f"books.{f} IS NOT excluded.{f}" for f in TEXT_FIELDS)
        sql = (
            f"INSERT INTO books (external_id, {', '.join(BOOK_FIELDS)}) VALUES (?{', ?' * 8})"
            f" ON CONFLICT (external_id) DO UPDATE SET"
            f" {', '.join(f'{f} = excluded.{f}' for f in BOOK_FIELDS)},"
            f" content_embedding = CASE WHEN {text_changed} THEN NULL"
            f" ELSE books.content_embedding END,"
            f" updated_at = {self.dialect.now}"
            f" WHERE {changed} RETURNING id, created_at = updated_at"
        )
        with self.dialect.transaction() as conn:
            known = set(self.id_map())
            for batch in batches:
                for record in batch:
                    row = conn.execute(sql, book_values(record)).fetchone()
                    if row is None:
                        result.unchanged += 1
                    elif record.external_id in known:
                        result.updated.append(row[0])
                    else:
                        result.inserted.append(row[0])
                        known.add(record.external_id)
        return result


# -- interactions ---------------------------------------------------------------------------
_EVENT_OF_CODE = " ".join(f"WHEN {code} THEN '{name}'" for code, name in enumerate(EVENTS))
STAGE = "temp.bookrec_load_stage"
CREATE_STAGE = (
    "CREATE TEMP TABLE IF NOT EXISTS bookrec_load_stage (user_id INTEGER, book_id INTEGER,"
    " event TEXT, rating REAL, occurred_at REAL)"
)
STAGE_FROM_JSON = (
    f"INSERT INTO {STAGE} ({INTERACTION_COLUMNS})"
    " SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'),"
    f" CASE json_extract(value, '$[2]') {_EVENT_OF_CODE} END,"
    " json_extract(value, '$[3]'), json_extract(value, '$[4]') FROM json_each(?)"
)
INSERT_FROM_STAGE = (
    f"INSERT OR IGNORE INTO interactions ({INTERACTION_COLUMNS}, created_at)"
    f" SELECT {INTERACTION_COLUMNS}, ? FROM {STAGE} ORDER BY rowid"
)


class SqliteInteractionLoader(InteractionLoader):
    """One IMMEDIATE transaction (the only writer); each batch inserted in unique-key order
    by two statements that read the rows from a JSON array into a temporary table and from
    there into interactions, so SQLite does the whole batch in C without holding Python's
    lock (see _json_insert).

    Foreign keys are not checked row by row: the loader is the only writer; it checks each
    book id once, and its user ids come from its own lookups and inserts."""

    def __init__(self, dialect: SqliteDialect) -> None:
        super().__init__()
        self.conn = dialect.conn
        self._insert = _json_insert if _has_json(self.conn) else _executemany_insert
        self._checked_books: set[int] = set()
        self._restore_pragmas: dict[str, int] = {}

    def _begin(self) -> None:
        self._restore_pragmas = {
            name: self.conn.execute(f"PRAGMA {name}").fetchone()[0]
            for name in ("foreign_keys", "temp_store", "cache_size")
        }
        self.conn.execute("PRAGMA foreign_keys = OFF")  # a no-op inside a transaction
        self.conn.execute("PRAGMA temp_store = FILE")  # a batch's stage (~5 MB per 100k rows)
        # The indexes of interactions take random inserts: once they outgrow the page cache,
        # SQLite spills dirty pages to the WAL mid-transaction and writes them again each time
        # they change (a 50M-row load with 64 MiB: 3.3 GB of WAL in 16 minutes, a quarter
        # of the way). The cache only takes memory for pages the load touches.
        self.conn.execute(f"PRAGMA cache_size = -{load_cache_kib()}")
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._restore()
            raise

    def _add(self, batch: InteractionBatch) -> None:
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

    def _commit(self) -> None:
        interrupts.commit_point()
        self.conn.execute("COMMIT")
        self._restore()
        # Copy the load's WAL into the database now (PASSIVE: never waits on a reader), so the
        # next write starts the WAL again and shrinks it to WAL_LIMIT_BYTES.
        with contextlib.suppress(sqlite3.Error):
            self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            self._restore()

    def _restore(self) -> None:
        for name, value in self._restore_pragmas.items():
            self.conn.execute(f"PRAGMA {name} = {int(value)}")


def load_cache_kib() -> int:
    """The page cache of a load: a quarter of the machine's memory, at most 4 GiB."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        memory = 1 << 32
    return max(64 << 10, min(memory // 4, LOAD_CACHE_BYTES) >> 10)


def _has_json(conn: sqlite3.Connection) -> bool:
    try:
        conn.execute("SELECT json_extract('[1]', '$[0]')").fetchone()
    except sqlite3.OperationalError:
        return False  # built without JSON1 (before 3.38 it was optional)
    return True


def _json_insert(conn: sqlite3.Connection, table: np.ndarray) -> int:
    """Rows of (user id, book id, event code, rating or NaN, epoch), staged in a temporary
    table first: a statement that writes several rows inside a transaction keeps a statement
    journal of every page it changes when it reads a virtual table (json_each) or calls a
    function per row (created_at's DEFAULT), and a batch's rows change pages all over the
    indexes of interactions: ~40 bytes per row already stored, for every batch (a 100M-row
    load wrote 208 GB to it in its first 23 minutes). The stage's journal is its own few MB."""
    conn.execute(CREATE_STAGE)
    # NaN ratings become JSON null (NULL); floats keep every digit (shortest round trip).
    # Bound as text: SQLite 3.45+ reads a BLOB argument as its binary JSONB format.
    conn.execute(STAGE_FROM_JSON, (json_text(table),))
    inserted = conn.execute(INSERT_FROM_STAGE, (time.time(),)).rowcount
    conn.execute(f"DELETE FROM {STAGE}")  # left empty (a failed batch rolls back the load)
    return inserted


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


# One row of the interaction stream's SELECT, as numpy reads it from the cursor.
ROW_TYPE = np.dtype(
    [("user", np.int64), ("book", np.int64), ("event", np.int64), ("rating", np.float64),
     ("epoch", np.float64)]
)  # fmt: skip


class SqliteInteractions(Interactions):
    dialect: SqliteDialect

    def loader(self) -> InteractionLoader:
        return SqliteInteractionLoader(self.dialect)

    @contextlib.contextmanager
    def _arrow_connection(self) -> Iterator[Any]:
        # A read-only connection of Python's own SQLite, never of a second copy of the library
        # (ADBC's driver bundles one): two copies in one process ignore each other's POSIX
        # locks, and the second to open a WAL database truncates the first one's shared
        # memory, which ends the first one's next commit in SIGBUS.
        uri = f"{self.dialect.path.resolve().as_uri()}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("BEGIN")  # one read snapshot for the whole stream
            yield conn
        finally:
            conn.close()

    def _arrow_chunks(
        self, conn: Any, max_id: int, id_dtype: type, chunk_rows: int
    ) -> Iterator[tuple[InteractionArrays, np.ndarray]]:
        cursor = conn.execute(
            f"SELECT user_id, book_id, {event_code_sql()}, {RATING_OR_NO_RATING},"
            f" {self.dialect.epoch('occurred_at')} FROM interactions"
            f" WHERE id <= {int(max_id)} ORDER BY id"
        )

        def chunks() -> Iterator[tuple[InteractionArrays, np.ndarray]]:
            # Rows straight from the cursor into typed columns: no list of tuples, no float64
            # table in between (a quarter less time than fetchmany and np.array).
            while len(table := np.fromiter(itertools.islice(cursor, chunk_rows), ROW_TYPE)):
                columns = (table[name] for name in ROW_TYPE.names)
                yield compact_arrays(*columns, id_dtype, max_id), table["epoch"]

        try:
            yield from prefetched(chunks())
        finally:
            cursor.close()

    def _epoch_seconds(self, column: Any) -> np.ndarray:
        return column.to_numpy().astype(np.float64, copy=False)


# -- vectors --------------------------------------------------------------------------------
class SqliteVectors(Vectors):
    def write_column(
        self,
        side: str,
        column: str,
        ids: np.ndarray,
        vectors: np.ndarray,
        clear_others: bool,
        advance: Callable[[int], None],
    ) -> None:
        conn = self.dialect.conn
        if clear_others:  # only the rows not written below: a row rewritten twice costs twice
            conn.execute(
                f"UPDATE {side} SET {column} = NULL WHERE {column} IS NOT NULL"
                " AND id NOT IN (SELECT value FROM json_each(?))",
                (json_text(np.ascontiguousarray(ids)),),
            )
        for start, stop in chunks(len(ids), VECTOR_CHUNK):
            conn.executemany(
                f"UPDATE {side} SET {column} = ? WHERE id = ?",
                zip(
                    (json_text(v) for v in vectors[start:stop]),
                    ids[start:stop].tolist(),
                    strict=True,
                ),
            )
            advance(stop - start)


class SqliteRepository(Repository):
    books_class = SqliteBooks
    interactions_class = SqliteInteractions
    vectors_class = SqliteVectors

    def __init__(
        self, url: DatabaseUrl, create: bool = False, create_directory: bool = False
    ) -> None:
        super().__init__(SqliteDialect(url, create, create_directory))
