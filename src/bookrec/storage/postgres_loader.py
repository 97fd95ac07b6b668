"""The PostgreSQL interaction loader: binary COPY, straight into the table where it can."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import psycopg

from bookrec import interrupts
from bookrec.domain import EVENTS, InteractionBatch
from bookrec.errors import JobFailedError
from bookrec.storage.columns import INTERACTION_COLUMNS
from bookrec.storage.loading import InteractionLoader, KeyFilter, first_in_key_order

POSTGRES_EPOCH = 946_684_800.0  # 2000-01-01 in Unix seconds: where timestamptz counts from

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

    def __init__(self, conn: psycopg.Connection) -> None:
        super().__init__()
        self.conn = conn
        self._tx: Any = None
        self._checks_references = False
        self._locked_books: set[int] = set()
        self._written = KeyFilter()
        # The last batch's direct COPY, left running on the server while the next batch is
        # prepared; finished before the connection runs anything else.
        self._running_copy: contextlib.ExitStack | None = None

    def _begin(self) -> None:
        self._tx = self.conn.transaction()
        self._tx.__enter__()
        try:
            # Compiling each batch's INSERT ... SELECT costs more than it saves.
            self.conn.execute("SET LOCAL jit = off")
            self._checks_references = _may_skip_row_triggers(self.conn)
            if self._checks_references:
                # The per-row foreign-key triggers are half of the server's work on a load.
                # Where this role may, and no trigger but bookrec's own is on the tables, they
                # are off for this transaction and the loader does their job once per user
                # and book instead.
                self.conn.execute("SET LOCAL session_replication_role = replica")
            self.conn.execute(
                "CREATE TEMP TABLE staged_interactions (user_id bigint, book_id bigint,"
                " event text, rating real, occurred_at timestamptz) ON COMMIT DROP"
            )
        except BaseException:
            self._rollback()
            raise

    def _add(self, batch: InteractionBatch) -> None:
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

    def _commit(self) -> None:
        self._finish_copy()
        if self.result.inserted >= ANALYZE_AFTER_ROWS:
            # In the load's transaction, so a Ctrl-C here still leaves nothing changed. Without
            # statistics (autovacuum off or not yet run) the planner scans all of interactions
            # for a range of ids: status's 0.25 s queries at 10M rows become < 1 ms.
            self.conn.execute("ANALYZE interactions, users")
        interrupts.commit_point()
        self._tx.__exit__(None, None, None)

    def _rollback(self) -> None:
        with contextlib.suppress(psycopg.Error):
            self._finish_copy()
        with contextlib.suppress(psycopg.Error):
            self._tx.__exit__(psycopg.Rollback, psycopg.Rollback(), None)


ANALYZE_AFTER_ROWS = 10_000  # a load that adds this many rows refreshes the planner's statistics

# bookrec's own triggers (migrations 0002, 0003): none fires on an INSERT of what a load writes
# (users without vectors, interactions).
OWN_TRIGGERS = (
    "interactions_changed", "interactions_deleted", "interactions_truncated",
    "users_cf_vector_changed", "users_inserted_with_vector", "users_deleted", "users_truncated",
)  # fmt: skip


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
