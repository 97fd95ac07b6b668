"""Binary snapshots of what recommend and similar read (schema v2, see its migration).

A snapshot copies one books vector column (float32 rows) or the per-(book, event, rating)
interaction counts (float64 rows: event code, rating, count) into one row of `snapshots`,
written in the transaction that wrote what it copies. Database triggers delete it when anything
else changes that; readers without one fall back to the columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from bookrec.domain import BookEventCounts
from bookrec.storage.columns import event_code_sql, vector_column

if TYPE_CHECKING:
    # (side: "books" or "users", row ids, vectors), as base.VectorSide
    VectorSide = tuple[str, np.ndarray, np.ndarray]

EVENT_COUNTS_SNAPSHOT = "book_event_counts"


def snapshot_name(family: str) -> str:
    """The snapshot that copies the books column of a vector family."""
    return f"books.{vector_column(family, 'books')}"


def _event_counts(rows: Sequence[tuple], max_interaction_id: int | None) -> BookEventCounts:
    """BookEventCounts from rows of (book id, event code, rating or None, count)."""
    table = np.array(rows, dtype=np.float64).reshape(-1, 4)  # None ratings become NaN
    return BookEventCounts(
        table[:, 0].astype(np.int64),
        table[:, 1].astype(np.int8),
        table[:, 2].astype(np.float32),
        table[:, 3].astype(np.int64),
        max_interaction_id or 0,
    )


class SnapshotStore:
    """The snapshot half of the Repository, a mixin: it uses the repository's `conn`, `param`,
    `_epoch` and `_load_json_vectors`."""

    conn: Any
    param: str

    def book_event_counts(self, since: float | None = None) -> BookEventCounts:
        """Interaction counts per (book, event, rating): of all interactions (the snapshot the
        last training stored plus what arrived after it), or of those at or after `since`
        (epoch seconds)."""
        if since is not None:
            condition, value = f"{self._epoch('occurred_at')} >= {self.param}", since
            return _event_counts(self._count_events(condition, value), 0)
        snapshot = self._read_snapshot(EVENT_COUNTS_SNAPSHOT, np.float64)
        if snapshot is None:
            return _event_counts(self._count_events("1 = 1", None), 0)
        ids, table, counted_to = snapshot
        newer = _event_counts(self._count_events(f"id > {self.param}", counted_to), counted_to)
        return BookEventCounts(
            np.concatenate([ids, newer.book_ids]),
            np.concatenate([table[:, 0].astype(np.int8), newer.events]),
            np.concatenate([table[:, 1].astype(np.float32), newer.ratings]),
            np.concatenate([table[:, 2].astype(np.int64), newer.counts]),
            counted_to or 0,
        )

    def _count_events(self, condition: str, value: Any) -> list[tuple]:
        return self.conn.execute(
            f"SELECT +book_id, {event_code_sql()}, rating, count(*) FROM interactions"
            # `+book_id`: SQLite would otherwise walk the whole book_id index to save a sort,
            # instead of reading just the rows after an id.
            f" WHERE {condition} GROUP BY +book_id, event, rating",
            () if value is None else (value,),
        ).fetchall()

    def _read_snapshot(
        self, name: str, dtype: type
    ) -> tuple[np.ndarray, np.ndarray, int | None] | None:
        """(ids, n_rows × width array, max_interaction_id) of a snapshot, or None."""
        return self._read_snapshots([name], dtype).get(name)

    def _read_snapshots(
        self, names: Sequence[str], dtype: type
    ) -> dict[str, tuple[np.ndarray, np.ndarray, int | None]]:
        """_read_snapshot of several, in one query (on PostgreSQL ~10 ms less than one each),
        for those that exist. The arrays are read-only views of the fetched bytes (on a
        little-endian machine: no copy)."""
        if not names:
            return {}
        rows = self._fetch_blob_rows(
            "SELECT name, n_rows, width, ids, data, max_interaction_id FROM snapshots"
            f" WHERE name IN ({', '.join([self.param] * len(names))})",
            tuple(names),
        )
        little = np.dtype(dtype).newbyteorder("<")
        return {
            name: (
                np.frombuffer(ids, dtype="<i8").astype(np.int64, copy=False),
                np.frombuffer(data, dtype=little).astype(dtype, copy=False).reshape(n_rows, width),
                counted_to,
            )
            for name, n_rows, width, ids, data, counted_to in rows
        }

    def snapshot_names(self) -> set[str]:
        """The snapshots that exist: `snapshot_name(family)`s and EVENT_COUNTS_SNAPSHOT."""
        return {r[0] for r in self.conn.execute("SELECT name FROM snapshots").fetchall()}

    def _fetch_blob_rows(self, sql: str, params: tuple) -> list[tuple]:
        """The rows of a query that returns binary columns."""
        return self.conn.execute(sql, params).fetchall()

    def _write_snapshot(
        self, name: str, ids: np.ndarray, table: np.ndarray, max_interaction_id: int | None
    ) -> None:
        """Replace a snapshot; call inside the transaction that wrote what it copies."""
        order = np.argsort(ids, kind="stable")
        table = np.asarray(table)
        little = table.dtype.newbyteorder("<")
        self.conn.execute(f"DELETE FROM snapshots WHERE name = {self.param}", (name,))
        self.conn.execute(
            "INSERT INTO snapshots (name, n_rows, width, ids, data, max_interaction_id)"
            f" VALUES ({', '.join([self.param] * 6)})",
            (
                name,
                len(ids),
                table.shape[1] if table.ndim == 2 else 0,
                np.asarray(ids, dtype="<i8")[order].tobytes(),
                table[order].astype(little).tobytes(),
                max_interaction_id,
            ),
        )

    def _write_snapshots(
        self,
        family: str,
        sides: list[VectorSide],
        event_counts: BookEventCounts | None,
        others_cleared: bool,
    ) -> None:
        """After a vector write, in its transaction: the family's books snapshot (read back
        when only some books were written: not others_cleared, and other books have vectors)
        and the event counts the trainer passed."""
        written = {side: (ids, vectors) for side, ids, vectors in sides}
        if "books" in written and (
            others_cleared or len(written["books"][0]) == self._count_vectors(family)
        ):
            ids, vectors = written["books"]
        else:
            ids, vectors = self._load_json_vectors([family], "books")[family]
        self._write_snapshot(snapshot_name(family), ids, vectors.astype(np.float32), None)
        if event_counts is not None:
            table = np.column_stack(
                [event_counts.events, event_counts.ratings, event_counts.counts]
            ).astype(np.float64)
            self._write_snapshot(
                EVENT_COUNTS_SNAPSHOT,
                event_counts.book_ids,
                table,
                event_counts.max_interaction_id,
            )

    def _count_vectors(self, family: str) -> int:
        column = vector_column(family, "books")
        sql = f"SELECT count(*) FROM books WHERE {column} IS NOT NULL"
        return self.conn.execute(sql).fetchone()[0]
