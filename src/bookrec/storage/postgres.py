"""The PostgreSQL repository (production): psycopg 3, COPY for every bulk write."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import orjson
import psycopg
from psycopg.types.json import Jsonb

from bookrec.dburl import DatabaseUrl
from bookrec.domain import EVENTS, BookRecord, BookText, InteractionBatch
from bookrec.errors import DatabaseUnavailableError, JobFailedError, LockBusyError, scrub
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
    KeyFilter,
    first_in_key_order,
)

VECTOR_CHUNK = 5000
BOOK_FIELDS = ("title", "authors", "description", "isbn", "year", "language", "tags", "metadata")
TEXT_FIELDS = ("title", "authors", "description", "year", "language", "tags")
MIGRATION_LOCK_KEY = "bookrec:migrate"
POSTGRES_EPOCH = 946_684_800.0  # 2000-01-01 in Unix seconds: where timestamptz counts from


def connection_error(url: DatabaseUrl, exc: Exception) -> DatabaseUnavailableError:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    reason = lines[0] if lines else type(exc).__name__
    reason = reason.removeprefix("connection failed: ")
    return DatabaseUnavailableError(f"cannot connect to {url.where}: {scrub(reason)}")


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


COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
COPY_TRAILER = b"\xff\xff"


def _interactions_copy_payload(
    user_ids: np.ndarray, book_ids: np.ndarray, events: np.ndarray, ratings: np.ndarray,
    micros: np.ndarray,
) -> bytes:  # fmt: skip
    """COPY BINARY rows of (user_id, book_id, event, rating, occurred_at).

    Rows differ in length only by their event name and by a rating present or not: the rows
    of each such layout are built as one numpy record array, in their given order."""
    parts = []
    rated = ~np.isnan(ratings)
    for code, name in enumerate(EVENTS):
        for has_rating in (False, True):
            rows = np.flatnonzero((events == code) & (rated == has_rating))
            if not len(rows):
                continue
            fields = [
                ("n_fields", ">i2"), ("user_len", ">i4"), ("user", ">i8"), ("book_len", ">i4"),
                ("book", ">i8"), ("event_len", ">i4"), ("event", f"S{len(name)}"),
                ("rating_len", ">i4"), *([("rating", ">f4")] if has_rating else []),
                ("time_len", ">i4"), ("time", ">i8"),
            ]  # fmt: skip
            table = np.zeros(len(rows), dtype=np.dtype(fields))
            table["n_fields"] = 5
            table["user_len"] = table["book_len"] = table["time_len"] = 8
            table["user"], table["book"] = user_ids[rows], book_ids[rows]
            table["event_len"], table["event"] = len(name), name.encode()
            table["rating_len"] = 4 if has_rating else -1  # -1: NULL
            if has_rating:
                table["rating"] = ratings[rows]
            table["time"] = micros[rows]
            parts.append(table.tobytes())
    return b"".join(parts)


class PostgresInteractionLoader(InteractionLoader):
    """One transaction. Each batch's rows, in unique-key order with the batch's duplicates
    dropped, take one of two paths:
    - rows of users this load created, with a key it has not written yet: straight into
      interactions by COPY (nothing else can hold them);
    - all other rows: COPY into a staging table, then INSERT ... ON CONFLICT DO NOTHING.
    A fresh load of new readers takes the first path; a re-load the second."""

    def __init__(self, repo: PostgresRepository) -> None:
        super().__init__()
        self.conn = repo.conn
        self._tx = self.conn.transaction()
        self._tx.__enter__()
        # Compiling each batch's INSERT ... SELECT costs more than it saves.
        self.conn.execute("SET LOCAL jit = off")
        self._checks_references = _may_skip_row_triggers(self.conn)
        if self._checks_references:
            # The per-row foreign-key triggers are half of the server's work on a load. Where
            # this role may, and no trigger but bookrec's own is on the tables, they are off for
            # this transaction and the loader does their job once per user and book instead.
            self.conn.execute("SET LOCAL session_replication_role = replica")
        self.conn.execute(
            "CREATE TEMP TABLE staged_interactions (user_id bigint, book_id bigint, event text,"
            " rating real, occurred_at timestamptz) ON COMMIT DROP"
        )
        self._locked_books: set[int] = set()
        self._written = KeyFilter()
        # The last batch's direct COPY, left running on the server while the next batch is
        # prepared; finished before the connection runs anything else.
        self._running_copy: contextlib.ExitStack | None = None

    def add(self, batch: InteractionBatch) -> None:
        user_ids = self.user_ids(batch.users)
        # As PostgreSQL turns epoch seconds into a timestamptz (float8_timestamptz).
        micros = np.rint((batch.timestamps - POSTGRES_EPOCH) * 1e6).astype(np.int64)
        order = first_in_key_order(user_ids, batch.book_ids, batch.events, micros)
        direct = self.created_by_this_load(user_ids[order])
        candidates = order[direct]
        direct[direct] = ~self._written.seen_then_add(
            user_ids[candidates], batch.book_ids[candidates], batch.events[candidates],
            micros[candidates],
        )  # fmt: skip
        columns = (user_ids, batch.book_ids, batch.events, batch.ratings, micros)
        direct_payload = _interactions_copy_payload(*(c[order[direct]] for c in columns))
        # The database work comes last: it waits for the last batch's COPY, which the work
        # above ran beside.
        if self._checks_references:
            self._lock_books(batch.book_ids)
        if not direct.all():
            rows = order[~direct]
            self._copy(
                "staged_interactions", _interactions_copy_payload(*(c[rows] for c in columns))
            )
            self._finish_copy()
            self.result.inserted += self._execute(
                f"INSERT INTO interactions ({INTERACTION_COLUMNS})"
                f" SELECT {INTERACTION_COLUMNS} FROM staged_interactions"
                # In unique-key order: index lookups walk the trees in order (~10%).
                " ORDER BY user_id, book_id, event, occurred_at"
                " ON CONFLICT (user_id, book_id, event, occurred_at) DO NOTHING"
            ).rowcount
            self._execute("TRUNCATE staged_interactions")
        if direct.any():
            self._copy("interactions", direct_payload)
            self.result.inserted += int(direct.sum())
        self.result.rows += len(batch)

    def _copy(self, table: str, payload: bytes) -> None:
        """Start a binary COPY of payload into table; _finish_copy() waits for it."""
        self._finish_copy()
        sql = f"COPY {table} ({INTERACTION_COLUMNS}) FROM STDIN (FORMAT BINARY)"
        running = contextlib.ExitStack()
        copy = running.enter_context(self.conn.cursor().copy(sql))
        self._running_copy = running
        copy.write(COPY_HEADER + payload + COPY_TRAILER)

    def _finish_copy(self) -> None:
        running, self._running_copy = self._running_copy, None
        if running is not None:
            running.close()

    def _execute(self, sql: str, params: Sequence[Any] | None = None) -> psycopg.Cursor:
        self._finish_copy()
        return self.conn.execute(sql, params)

    def _find_users(self, external_ids: Sequence[str]) -> dict[str, int]:
        # Locked as the foreign-key trigger would: no one deletes them before this commits.
        lock = " FOR KEY SHARE" if self._checks_references else ""
        rows = self._execute(
            f"SELECT external_id, id FROM users WHERE external_id = ANY(%s){lock}",
            (list(external_ids),),
        )
        return dict(rows.fetchall())

    def _create_users(self, external_ids: Sequence[str]) -> dict[str, int]:
        rows = self._execute(
            "INSERT INTO users (external_id) SELECT unnest(%s::text[])"
            " ON CONFLICT (external_id) DO NOTHING RETURNING external_id, id",
            (list(external_ids),),
        )
        return dict(rows.fetchall())

    def _lock_books(self, book_ids: np.ndarray) -> None:
        """What the foreign-key trigger does, once per book: it exists, and is locked (FOR KEY
        SHARE) so that no one deletes it before this load commits."""
        new = [b for b in np.unique(book_ids).tolist() if b not in self._locked_books]
        if not new:
            return
        found = self._execute(
            "SELECT count(*) FROM (SELECT 1 FROM books WHERE id = ANY(%s) FOR KEY SHARE) b",
            (new,),
        ).fetchone()[0]
        if found != len(new):
            raise JobFailedError(
                f"{len(new) - found} books were deleted while the interactions"
                " were being loaded; nothing was written"
            )
        self._locked_books.update(new)

    def commit(self) -> InteractionLoadResult:
        try:
            self._finish_copy()
            self._tx.__exit__(None, None, None)
        except BaseException:
            self.rollback()
            raise
        self.result.duplicates = self.result.rows - self.result.inserted
        return self.result

    def rollback(self) -> None:
        with contextlib.suppress(psycopg.Error):
            self._finish_copy()
        with contextlib.suppress(psycopg.Error):
            self._tx.__exit__(psycopg.Rollback, psycopg.Rollback(), None)


# bookrec's own triggers (migration 0002): none fires on INSERT into these tables.
OWN_TRIGGERS = ("interactions_changed", "interactions_deleted", "interactions_truncated")


def _may_skip_row_triggers(conn: psycopg.Connection) -> bool:
    """May this role set session_replication_role, with no foreign trigger on the tables an
    interaction load writes (whose work the loader could not do itself)?"""
    version = conn.execute("SELECT current_setting('server_version_num')::int").fetchone()[0]
    if version >= 150000:
        query = "SELECT has_parameter_privilege('session_replication_role', 'SET')"
    else:
        query = "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
    if not conn.execute(query).fetchone()[0]:
        return False
    others = conn.execute(
        "SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal"
        " AND tgrelid IN ('interactions'::regclass, 'users'::regclass)"
        " AND NOT (tgname = ANY (%s))",
        (list(OWN_TRIGGERS),),
    ).fetchone()[0]
    return others == 0


class PostgresRepository(Repository):
    backend = "postgresql"
    migrations_dir = "postgres"
    param = "%s"
    json_length = "jsonb_array_length"

    def _epoch(self, expression: str) -> str:
        return f"extract(epoch FROM {expression})::float8"

    def _json_text(self, column: str) -> str:
        return f"{column}::text"

    def __init__(self, url: DatabaseUrl, connect_timeout: float = 5.0) -> None:
        super().__init__(url)
        self._convert_in_parallel = False  # set by each _vector_transaction
        try:
            self.conn = psycopg.connect(
                url.raw,
                autocommit=True,
                connect_timeout=max(1, round(connect_timeout)),
                application_name="bookrec",
            )
        except psycopg.Error as exc:
            raise connection_error(url, exc) from None

    def close(self) -> None:
        self.conn.close()

    # -- schema ----------------------------------------------------------------------------
    def schema_version(self) -> int | None:
        exists = self.conn.execute("SELECT to_regclass('schema_migrations')").fetchone()
        if not exists or exists[0] is None:
            return None
        return self.conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]

    @contextlib.contextmanager
    def migration_lock(self) -> Iterator[None]:
        self.conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (MIGRATION_LOCK_KEY,))
        try:
            yield
        finally:
            self.conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (MIGRATION_LOCK_KEY,))

    def apply_migration(self, migration: Migration) -> None:
        with self.conn.transaction():
            self.conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY,"
                " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            self.conn.execute(migration.sql.encode())
            self.conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                (migration.version, migration.name),
            )

    # -- books -----------------------------------------------------------------------------
    def upsert_books(self, batches: Iterable[Sequence[BookRecord]]) -> BookUpsertResult:
        result = BookUpsertResult()
        columns = ", ".join(BOOK_FIELDS)
        changed = " OR ".join(f"b.{f} IS DISTINCT FROM s.{f}" for f in BOOK_FIELDS)
        text_changed = " OR ".join(f"b.{f} IS DISTINCT FROM s.{f}" for f in TEXT_FIELDS)
        with self.conn.transaction():
            self.conn.execute(
                "CREATE TEMP TABLE staged_books (LIKE books INCLUDING DEFAULTS) ON COMMIT DROP"
            )
            with self.conn.cursor().copy(
                f"COPY staged_books (external_id, {columns}) FROM STDIN"
            ) as copy:
                for batch in batches:
                    for record in batch:
                        copy.write_row(_book_row(record))
            staged = self.conn.execute(
                "SELECT count(DISTINCT external_id) FROM staged_books"
            ).fetchone()[0]
            # Last row wins when a file repeats an external id.
            self.conn.execute(
                "DELETE FROM staged_books a USING staged_books b"
                " WHERE a.external_id = b.external_id AND a.ctid < b.ctid"
            )
            stale = [
                r[0]
                for r in self.conn.execute(
                    f"SELECT b.id FROM books b JOIN staged_books s USING (external_id)"
                    f" WHERE b.content_embedding IS NOT NULL AND ({text_changed})"
                )
            ]
            result.updated = [
                r[0]
                for r in self.conn.execute(
                    f"UPDATE books b SET {', '.join(f'{f} = s.{f}' for f in BOOK_FIELDS)},"
                    f" updated_at = now()"
                    f" FROM staged_books s WHERE b.external_id = s.external_id AND ({changed})"
                    f" RETURNING b.id"
                )
            ]
            if stale:  # only then: the statement fires the trigger that drops its snapshot
                self.conn.execute(
                    "UPDATE books SET content_embedding = NULL WHERE id = ANY (%s)", (stale,)
                )
            result.inserted = [
                r[0]
                for r in self.conn.execute(
                    f"INSERT INTO books (external_id, {columns})"
                    f" SELECT external_id, {columns} FROM staged_books s"
                    f" WHERE NOT EXISTS (SELECT 1 FROM books b WHERE b.external_id = s.external_id)"
                    f" ORDER BY s.ctid RETURNING id"
                )
            ]
            result.unchanged = staged - len(result.updated) - len(result.inserted)
        return result

    def book_texts(self, ids: Sequence[int] | None = None) -> list[BookText]:
        sql = "SELECT id, title, authors, description, year, language, tags FROM books"
        rows = self._select_by_ids(sql, ids)
        return [BookText(*r) for r in rows]

    def book_summaries(self, ids: Sequence[int]) -> list[BookSummary]:
        rows = self._select_by_ids("SELECT id, external_id, title, authors FROM books", ids)
        by_id = {r[0]: BookSummary(*r) for r in rows}
        return [by_id[i] for i in ids if i in by_id]

    def _select_by_ids(self, sql: str, ids: Sequence[int] | None) -> list[tuple]:
        if ids is None:
            return self.conn.execute(sql + " ORDER BY id").fetchall()
        return self.conn.execute(
            sql + " WHERE id = ANY(%s) ORDER BY id", ([int(i) for i in ids],)
        ).fetchall()

    # -- users and interactions ----------------------------------------------------------
    def interaction_loader(self) -> InteractionLoader:
        return PostgresInteractionLoader(self)

    def load_interactions(self, user_id: int | None = None):
        with self.conn.transaction():
            self.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            max_id = self.conn.execute("SELECT coalesce(max(id), 0) FROM interactions")
            max_id = max_id.fetchone()[0]
            sql = (
                f"SELECT user_id, book_id, {event_code_sql()}, rating,"
                " extract(epoch FROM occurred_at)::float8 FROM interactions WHERE id <= %s"
            )
            params: tuple = (max_id,)
            if user_id is not None:
                sql += " AND user_id = %s"
                params = (max_id, user_id)
            with self.conn.cursor(binary=True) as cursor:
                rows = cursor.execute(sql, params).fetchall()
        return interaction_arrays(rows, max_id)

    # -- vectors ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def _vector_transaction(self) -> Iterator[None]:
        with self.conn.transaction():
            has_lz4, self._convert_in_parallel = self._vector_write_capabilities()
            if has_lz4:
                # A 128-d JSONB vector (~2 KB) is compressed on its way to TOAST: lz4 does it
                # ~1.6x faster than the default pglz; readers decompress either transparently.
                self.conn.execute("SET LOCAL default_toast_compression = 'lz4'")
            if self._convert_in_parallel:
                # The planner prices to_jsonb like an addition, so it would not spend workers
                # on what is in fact most of the write's time.
                self.conn.execute(
                    "SELECT set_config('parallel_setup_cost', '0', true),"
                    " set_config('parallel_tuple_cost', '0', true),"
                    " set_config('min_parallel_table_scan_size', '0', true)"
                )
            yield

    def _write_column(
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
        if self._convert_in_parallel:
            staged = f"bookrec_staged_{side}_vectors_{self.conn.info.backend_pid}"
            self.conn.execute(f"CREATE UNLOGGED TABLE {staged} (id bigint, v real[])")
        else:
            staged = f"staged_{side}_vectors"
            self.conn.execute(f"CREATE TEMP TABLE {staged} (id bigint, v real[]) ON COMMIT DROP")
        with self.conn.cursor().copy(f"COPY {staged} FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(COPY_HEADER)
            for start, stop in self.iter_chunks(len(ids), VECTOR_CHUNK):
                copy.write(_float4_copy_payload(ids[start:stop], vectors[start:stop]))
                advance(stop - start)
            copy.write(COPY_TRAILER)
        if clear_others:
            self.conn.execute(
                f"UPDATE {side} t SET {column} = NULL WHERE {column} IS NOT NULL"
                f" AND NOT EXISTS (SELECT 1 FROM {staged} s WHERE s.id = t.id)"
            )
        converted = f"converted_{side}_vectors"
        self.conn.execute(
            f"CREATE TEMP TABLE {converted} ON COMMIT DROP AS"
            f" SELECT id, to_jsonb(v) AS vector FROM {staged}"
        )
        self.conn.execute(f"DROP TABLE {staged}")
        self.conn.execute(
            f"UPDATE {side} t SET {column} = c.vector FROM {converted} c WHERE t.id = c.id"
        )

    def _fetch_blob_rows(self, sql: str, params: tuple) -> list[tuple]:
        # In binary format: bytea as text is hex, twice the bytes and 4x slower to read.
        return self.conn.cursor(binary=True).execute(sql, params).fetchall()

    def _vector_write_capabilities(self) -> tuple[bool, bool]:
        """(Has this server lz4 TOAST compression (PostgreSQL 14+, --with-lz4)? May this role
        create a table in its current schema, and may the planner use parallel workers?)"""
        row = self.conn.execute(
            "SELECT coalesce((SELECT 'lz4' = ANY (enumvals) FROM pg_settings"
            "  WHERE name = 'default_toast_compression'), false),"
            " coalesce(has_schema_privilege(current_schema(), 'CREATE'), false)"
            " AND current_setting('max_parallel_workers_per_gather')::int > 0"
        ).fetchone()
        return bool(row[0]), bool(row[1])

    # -- runs and locks --------------------------------------------------------------------
    def start_run(self, model: str, parameters: dict[str, Any]) -> int:
        row = self.conn.execute(
            "INSERT INTO training_runs (model, status, parameters, started_at)"
            " VALUES (%s, 'running', %s, now()) RETURNING id",
            (model, Jsonb(parameters)),
        ).fetchone()
        return int(row[0])

    def finish_run(self, run_id: int, status: str, **result: Any) -> None:
        self._finish_run(run_id, status, result)

    def _finish_run(self, run_id: int, status: str, result: dict[str, Any]) -> None:
        self.conn.execute(
            "UPDATE training_runs SET status = %s, finished_at = now(), n_users = %s,"
            " n_books = %s, n_interactions = %s, max_interaction_id = %s, phases = %s,"
            " metrics = %s, error = %s WHERE id = %s",
            (
                status,
                result.get("n_users"),
                result.get("n_books"),
                result.get("n_interactions"),
                result.get("max_interaction_id"),
                Jsonb(result.get("phases", {})),
                Jsonb(result.get("metrics", {})),
                result.get("error"),
                run_id,
            ),
        )

    def runs(self, model: str | None = None, limit: int = 20) -> list[TrainingRun]:
        sql = (
            "SELECT id, model, status, parameters, extract(epoch FROM started_at)::float8,"
            " extract(epoch FROM finished_at)::float8, n_users, n_books, n_interactions,"
            " max_interaction_id, phases, metrics, error FROM training_runs"
        )
        params: tuple = ()
        if model:
            sql += " WHERE model = %s"
            params = (model,)
        rows = self.conn.execute(sql + " ORDER BY id DESC LIMIT %s", (*params, limit))
        return [TrainingRun(*r) for r in rows.fetchall()]

    def latest_artifact(self, model: str, name: str) -> tuple[int, bytes] | None:
        row = self.conn.execute(
            "SELECT a.run_id, a.data FROM model_artifacts a JOIN training_runs r"
            " ON r.id = a.run_id WHERE r.model = %s AND a.name = %s AND r.status = 'succeeded'"
            " ORDER BY a.run_id DESC LIMIT 1",
            (model, name),
        ).fetchone()
        return (row[0], bytes(row[1])) if row else None

    @contextlib.contextmanager
    def training_lock(self, model: str, wait: bool = False) -> Iterator[None]:
        # A session-level advisory lock: it dies with the connection, so with the process.
        key = f"bookrec:train:{model}"
        if wait:
            self.conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (key,))
        else:
            got = self.conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (key,))
            if not got.fetchone()[0]:
                raise LockBusyError(f"train {model}", self.url.where)
        try:
            yield
        finally:
            with contextlib.suppress(psycopg.Error):
                self.conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (key,))


def _book_row(record: BookRecord) -> tuple:
    return (
        record.external_id,
        record.title,
        record.authors,
        record.description,
        record.isbn,
        record.year,
        record.language,
        orjson.dumps(record.tags).decode(),
        orjson.dumps(record.metadata).decode(),
    )
