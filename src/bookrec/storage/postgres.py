"""The PostgreSQL backend (production): psycopg 3, COPY for every bulk write, advisory locks."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import psycopg
from psycopg.types.json import Jsonb

from bookrec.dburl import DatabaseUrl
from bookrec.domain import BookRecord
from bookrec.errors import DatabaseUnavailableError, LockBusyError, scrub
from bookrec.storage.adbc import off_the_main_thread
from bookrec.storage.books import BOOK_FIELDS, TEXT_FIELDS, Books, BookUpsertResult, book_values
from bookrec.storage.dialect import Dialect
from bookrec.storage.interactions import Interactions
from bookrec.storage.loading import InteractionLoader
from bookrec.storage.postgres_loader import COPY_HEADER, COPY_TRAILER, PostgresInteractionLoader
from bookrec.storage.repository import Repository
from bookrec.storage.vectors import Vectors, chunks

VECTOR_CHUNK = 5000  # vectors converted and sent at a time


def connection_error(url: DatabaseUrl, exc: Exception) -> DatabaseUnavailableError:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    reason = lines[0] if lines else type(exc).__name__
    reason = reason.removeprefix("connection failed: ")
    return DatabaseUnavailableError(f"cannot connect to {url.where}: {scrub(reason)}")


def _advisory_key(name: str) -> str:
    """The text hashed to a lock's advisory key: "train-cf" -> "bookrec:train:cf"."""
    return "bookrec:" + name.replace("-", ":")


class PostgresDialect(Dialect):
    backend = "postgresql"
    migrations_dir = "postgres"
    param = "%s"
    json_length_function = "jsonb_array_length"
    now = "now()"
    migrations_table = (
        "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY,"
        " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
    )

    def __init__(self, url: DatabaseUrl, connect_timeout: float = 5.0) -> None:
        super().__init__(url)
        self.conninfo = psycopg.conninfo.make_conninfo(
            url.raw, connect_timeout=max(1, round(connect_timeout)), application_name="bookrec"
        )
        try:
            self.conn = psycopg.connect(self.conninfo, autocommit=True)
        except psycopg.Error as exc:
            raise connection_error(url, exc) from None

    def epoch(self, expression: str) -> str:
        return f"extract(epoch FROM {expression})::float8"

    def json_text(self, column: str) -> str:
        return f"{column}::text"

    def json_param(self, value: Any) -> Jsonb:
        return Jsonb(value)

    def select_by_ids(self, sql: str, ids: Sequence[int] | None) -> list[tuple]:
        if ids is None:
            return self.conn.execute(sql + " ORDER BY id").fetchall()
        return self.conn.execute(
            sql + " WHERE id = ANY(%s) ORDER BY id", ([int(i) for i in ids],)
        ).fetchall()

    def stream_blob_rows(self, sql: str, params: Sequence[Any]) -> Iterator[tuple]:
        # In binary format: bytea as text is hex, twice the bytes and 4x slower to read; row by
        # row, so that a snapshot of many chunks is never all in memory at once.
        return self.conn.cursor(binary=True).stream(sql, params)

    def transaction(self) -> contextlib.AbstractContextManager[Any]:
        return self.conn.transaction()

    @contextlib.contextmanager
    def read_snapshot(self) -> Iterator[None]:
        if self.conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            yield
            return
        with self.conn.transaction():
            self.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield

    def table_exists(self, name: str) -> bool:
        return self.conn.execute("SELECT to_regclass(%s)", (name,)).fetchone()[0] is not None

    def run_script(self, script: str) -> None:
        self.conn.execute(script.encode())

    # -- locks: session-level advisory locks, which die with the connection ----------------
    @contextlib.contextmanager
    def lock(
        self, name: str, wait: bool, on_wait: Callable[[], None] | None = None
    ) -> Iterator[None]:
        key = _advisory_key(name)
        got = self.conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (key,)).fetchone()[0]
        if not got:
            if not wait:
                raise LockBusyError(name.replace("-", " "), self.url.where)
            if on_wait is not None:
                on_wait()
            self.conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (key,))
        try:
            yield
        finally:
            with contextlib.suppress(psycopg.Error):
                self.conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (key,))

    def lock_is_held(self, name: str) -> bool:
        # A one-number advisory key shows in pg_locks as its high half (classid) and low half
        # (objid), objsubid 1.
        return self.conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND objsubid = 1 AND database = (SELECT oid FROM pg_database"
            "  WHERE datname = current_database())"
            " AND ((classid::bigint << 32) | objid::bigint) = hashtext(%s)::bigint)",
            (_advisory_key(name),),
        ).fetchone()[0]


# -- books ----------------------------------------------------------------------------------
class PostgresBooks(Books):
    def upsert(self, batches: Iterable[Sequence[BookRecord]]) -> BookUpsertResult:
        result = BookUpsertResult()
        conn = self.dialect.conn
        columns = ", ".join(BOOK_FIELDS)
        changed = " OR ".join(f"b.{f} IS DISTINCT FROM s.{f}" for f in BOOK_FIELDS)
        text_changed = " OR ".join(f"b.{f} IS DISTINCT FROM s.{f}" for f in TEXT_FIELDS)
        with conn.transaction():
            conn.execute(
                "CREATE TEMP TABLE staged_books (LIKE books INCLUDING DEFAULTS) ON COMMIT DROP"
            )
            with conn.cursor().copy(
                f"COPY staged_books (external_id, {columns}) FROM STDIN"
            ) as copy:
                for batch in batches:
                    for record in batch:
                        copy.write_row(book_values(record))
            staged = conn.execute("SELECT count(DISTINCT external_id) FROM staged_books")
            staged = staged.fetchone()[0]
            # Last row wins when a file repeats an external id.
            conn.execute(
                "DELETE FROM staged_books a USING staged_books b"
                " WHERE a.external_id = b.external_id AND a.ctid < b.ctid"
            )
            stale = [
                r[0]
                for r in conn.execute(
                    f"SELECT b.id FROM books b JOIN staged_books s USING (external_id)"
                    f" WHERE b.content_embedding IS NOT NULL AND ({text_changed})"
                )
            ]
            result.updated = [
                r[0]
                for r in conn.execute(
                    f"UPDATE books b SET {', '.join(f'{f} = s.{f}' for f in BOOK_FIELDS)},"
                    f" updated_at = now()"
                    f" FROM staged_books s WHERE b.external_id = s.external_id AND ({changed})"
                    f" RETURNING b.id"
                )
            ]
            if stale:  # only then: the statement fires the trigger that drops its snapshot
                conn.execute(
                    "UPDATE books SET content_embedding = NULL WHERE id = ANY (%s)", (stale,)
                )
            result.inserted = [
                r[0]
                for r in conn.execute(
                    f"INSERT INTO books (external_id, {columns})"
                    f" SELECT external_id, {columns} FROM staged_books s"
                    f" WHERE NOT EXISTS (SELECT 1 FROM books b WHERE b.external_id = s.external_id)"
                    f" ORDER BY s.ctid RETURNING id"
                )
            ]
            result.unchanged = staged - len(result.updated) - len(result.inserted)
        return result


# -- interactions ---------------------------------------------------------------------------
class PostgresInteractions(Interactions):
    dialect: PostgresDialect

    def loader(self) -> InteractionLoader:
        return PostgresInteractionLoader(self.dialect.conn)

    @contextlib.contextmanager
    def _arrow_connection(self) -> Iterator[Any]:
        import adbc_driver_manager
        import adbc_driver_postgresql.dbapi

        # Connecting and executing block: off the main thread, where ADBC keeps its own SIGINT
        # handler out of the way (storage/adbc.py).
        try:
            conn = off_the_main_thread(
                lambda: adbc_driver_postgresql.dbapi.connect(self.dialect.conninfo),
                discard=lambda made: made.close(),
            )
        except adbc_driver_manager.Error as exc:
            raise connection_error(self.dialect.url, exc) from None
        try:
            with conn.cursor() as cursor:
                # Compiling the read's expressions costs more than it saves.
                off_the_main_thread(lambda: cursor.execute("SET jit = off"), cursor.adbc_cancel)
            yield conn
        finally:
            conn.close()

    def _epoch_seconds(self, column: Any) -> np.ndarray:
        # As extract(epoch FROM occurred_at)::float8 rounds the exact value: the nearest double.
        import pyarrow as pa

        return column.cast(pa.int64()).to_numpy() / 1e6


# -- vectors --------------------------------------------------------------------------------
def _float4_copy_payload(ids: np.ndarray, vectors: np.ndarray) -> bytes:
    """COPY BINARY rows of (bigint id, real[] vector), built in one numpy pass."""
    n_rows, dim = vectors.shape
    row = np.dtype(
        [
            ("n_fields", ">i2"), ("id_len", ">i4"), ("id", ">i8"), ("array_len", ">i4"),
            ("ndim", ">i4"), ("has_null", ">i4"), ("elem_oid", ">i4"), ("dim", ">i4"),
            ("lower_bound", ">i4"), ("values", [("len", ">i4"), ("value", ">f4")], (dim,)),
        ]
    )  # fmt: skip
    table = np.zeros(n_rows, dtype=row)
    table["n_fields"] = 2
    table["id_len"] = 8
    table["id"] = ids
    table["array_len"] = 20 + 8 * dim
    table["ndim"] = 1
    table["elem_oid"] = 700  # float4
    table["dim"] = dim
    table["lower_bound"] = 1
    table["values"]["len"] = 4
    table["values"]["value"] = vectors
    return table.tobytes()


class PostgresVectors(Vectors):
    _convert_in_parallel = False  # set by each transaction()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        conn = self.dialect.conn
        with conn.transaction():
            has_lz4, self._convert_in_parallel = self._vector_write_capabilities()
            if has_lz4:
                # A 128-d JSONB vector (~2 KB) is compressed on its way to TOAST: lz4 does it
                # ~1.6x faster than the default pglz; readers decompress either transparently.
                conn.execute("SET LOCAL default_toast_compression = 'lz4'")
            if self._convert_in_parallel:
                # The planner prices to_jsonb like an addition, so it would not spend workers
                # on what is in fact most of the write's time.
                conn.execute(
                    "SELECT set_config('parallel_setup_cost', '0', true),"
                    " set_config('parallel_tuple_cost', '0', true),"
                    " set_config('min_parallel_table_scan_size', '0', true)"
                )
            yield

    def write_column(
        self,
        side: str,
        column: str,
        ids: np.ndarray,
        vectors: np.ndarray,
        clear_others: bool,
        advance: Callable[[int], None],
    ) -> None:
        # The float → JSONB conversion is most of the write's time, and parallel workers can
        # share it, but they cannot read temporary tables: where this role may create one, the
        # real[] vectors are staged in an unlogged table instead, created and dropped inside
        # this transaction (so a rollback or crash leaves none behind). Without workers the
        # same statements run in this backend alone, as fast as one UPDATE converting inline.
        conn = self.dialect.conn
        if self._convert_in_parallel:
            staged = f"bookrec_staged_{side}_vectors_{conn.info.backend_pid}"
            conn.execute(f"CREATE UNLOGGED TABLE {staged} (id bigint, v real[])")
        else:
            staged = f"staged_{side}_vectors"
            conn.execute(f"CREATE TEMP TABLE {staged} (id bigint, v real[]) ON COMMIT DROP")
        with conn.cursor().copy(f"COPY {staged} FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(COPY_HEADER)
            for start, stop in chunks(len(ids), VECTOR_CHUNK):
                copy.write(_float4_copy_payload(ids[start:stop], vectors[start:stop]))
                advance(stop - start)
            copy.write(COPY_TRAILER)
        # The key makes the anti-join below linear whatever the statistics say: with
        # autovacuum off or behind, they may still say the column is all NULL (one row
        # expected), and a nested loop over an unindexed stage was quadratic (300k users:
        # over 8 minutes instead of a second).
        conn.execute(f"ALTER TABLE {staged} ADD PRIMARY KEY (id)")
        if clear_others:
            conn.execute(
                f"UPDATE {side} t SET {column} = NULL WHERE {column} IS NOT NULL"
                f" AND NOT EXISTS (SELECT 1 FROM {staged} s WHERE s.id = t.id)"
            )
        converted = f"converted_{side}_vectors"
        conn.execute(
            f"CREATE TEMP TABLE {converted} ON COMMIT DROP AS"
            f" SELECT id, to_jsonb(v) AS vector FROM {staged}"
        )
        conn.execute(f"DROP TABLE {staged}")
        conn.execute(
            f"UPDATE {side} t SET {column} = c.vector FROM {converted} c WHERE t.id = c.id"
        )

    def _vector_write_capabilities(self) -> tuple[bool, bool]:
        """(Has this server lz4 TOAST compression (PostgreSQL 14+, --with-lz4)? May this role
        create a table in its current schema, and may the planner use parallel workers?)"""
        row = self.dialect.conn.execute(
            "SELECT coalesce((SELECT 'lz4' = ANY (enumvals) FROM pg_settings"
            "  WHERE name = 'default_toast_compression'), false),"
            " coalesce(has_schema_privilege(current_schema(), 'CREATE'), false)"
            " AND current_setting('max_parallel_workers_per_gather')::int > 0"
        ).fetchone()
        return bool(row[0]), bool(row[1])


class PostgresRepository(Repository):
    books_class = PostgresBooks
    interactions_class = PostgresInteractions
    vectors_class = PostgresVectors

    def __init__(self, url: DatabaseUrl, connect_timeout: float = 5.0) -> None:
        super().__init__(PostgresDialect(url, connect_timeout))
