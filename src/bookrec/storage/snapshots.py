"""Binary snapshots of what recommend, similar and status read (schema v3, see its migration).

A snapshot copies a books vector column (float32 rows) or the per-(book, event, rating)
interaction counts (float64 rows: event code, rating, count): a header row in `snapshots`
(rows, width, chunks) and the data in `snapshot_chunks`, each chunk at most CHUNK_BYTES, so no
catalogue is too large for a database value. A users vector column is recorded by its header
alone (rows and width, for status). Each is written in the transaction that wrote what it
copies; database triggers delete it when anything else changes that, and readers without one
fall back to the columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bookrec.storage.columns import vector_column
from bookrec.storage.dialect import Dialect

EVENT_COUNTS_SNAPSHOT = "book_event_counts"
INTERACTION_TOTALS = "interaction_totals"  # rows: event code -> count; first/last in header
CHUNK_BYTES = 32 << 20  # the data of one chunk; far below SQLite's (1e9) and PostgreSQL's (1 GB)


def snapshot_name(family: str, side: str = "books") -> str:
    """The snapshot that copies (books) or records (users) a vector column."""
    return f"{side}.{vector_column(family, side)}"


@dataclass(frozen=True)
class SnapshotHeader:
    name: str
    n_rows: int
    width: int
    n_chunks: int  # 0: a header only (a users column)
    max_interaction_id: int | None  # event counts: of the interactions up to this id ...
    first_at: float | None  # ... which occurred from first_at to last_at (epoch seconds)
    last_at: float | None


# (ids int64 ascending, n_rows × width array, header); the arrays are read-only
Snapshot = tuple[np.ndarray, np.ndarray, SnapshotHeader]


class Snapshots:
    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect

    def headers(self, names: Sequence[str] | None = None) -> dict[str, SnapshotHeader]:
        """The headers of the snapshots that exist (of those names, if given)."""
        sql = (
            "SELECT name, n_rows, width, n_chunks, max_interaction_id, first_at, last_at"
            " FROM snapshots"
        )
        params: tuple = ()
        if names is not None:
            if not names:
                return {}
            sql += f" WHERE name IN ({self.dialect.marks(len(names))})"
            params = tuple(names)
        rows = self.dialect.execute(sql, params).fetchall()
        return {r[0]: SnapshotHeader(*r) for r in rows}

    def read(self, names: Sequence[str], dtype: type, *, as_blocks: bool = False) -> dict:
        """The snapshots of those names that exist, each read whole from one state of the
        database. A snapshot of one chunk is a view of the fetched bytes (on a little-endian
        machine: no copy); a longer one is copied chunk by chunk into one array, or with
        `as_blocks` left as a tuple of views, one per chunk (its rows in order)."""
        if not names:
            return {}
        with self.dialect.read_snapshot():
            headers = {
                name: header
                for name, header in self.headers(names).items()
                if header.n_chunks > 0 or header.n_rows == 0
            }
            if not headers:
                return {}
            rows = self.dialect.stream_blob_rows(
                "SELECT name, chunk, ids, data FROM snapshot_chunks"
                f" WHERE name IN ({self.dialect.marks(len(headers))}) ORDER BY name, chunk",
                tuple(headers),
            )
            assemblies = {
                name: _Assembly(h, np.dtype(dtype), as_blocks) for name, h in headers.items()
            }
            for name, chunk, ids, data in rows:
                assemblies[name].add(chunk, ids, data)
        found = {name: assembly.result() for name, assembly in assemblies.items()}
        return {name: (*arrays, headers[name]) for name, arrays in found.items() if arrays}

    def write(
        self,
        name: str,
        ids: np.ndarray,
        table: np.ndarray,
        *,
        max_interaction_id: int | None = None,
        first_at: float | None = None,
        last_at: float | None = None,
    ) -> None:
        """Replace a snapshot by rows of `table` (sorted by their ids here); call inside the
        transaction that wrote what it copies."""
        d = self.dialect
        table = np.asarray(table)
        width = table.shape[1] if table.ndim == 2 else 0
        rows_per_chunk = max(1, CHUNK_BYTES // max(1, width * table.dtype.itemsize))
        order = np.argsort(ids, kind="stable")
        n_chunks = -(-len(ids) // rows_per_chunk)
        self.delete(name)
        self._insert_header(name, len(ids), width, n_chunks, max_interaction_id, first_at, last_at)
        little = table.dtype.newbyteorder("<")
        for chunk, start in enumerate(range(0, len(ids), rows_per_chunk)):
            rows = order[start : start + rows_per_chunk]
            d.execute(
                f"INSERT INTO snapshot_chunks (name, chunk, ids, data) VALUES ({d.marks(4)})",
                (
                    name,
                    chunk,
                    np.asarray(ids, dtype="<i8")[rows].tobytes(),
                    table[rows].astype(little).tobytes(),
                ),
            )

    def write_header(self, name: str, n_rows: int, width: int) -> None:
        """Record a column by its header alone (rows, width), inside the transaction that
        wrote it."""
        self.delete(name)
        self._insert_header(name, n_rows, width, 0, None, None, None)

    def delete(self, name: str) -> None:
        p = self.dialect.param
        self.dialect.execute(f"DELETE FROM snapshot_chunks WHERE name = {p}", (name,))
        self.dialect.execute(f"DELETE FROM snapshots WHERE name = {p}", (name,))

    def _insert_header(self, name: str, *values: int | float | None) -> None:
        self.dialect.execute(
            "INSERT INTO snapshots (name, n_rows, width, n_chunks, max_interaction_id,"
            f" first_at, last_at) VALUES ({self.dialect.marks(7)})",
            (name, *values),
        )


class _Assembly:
    """One snapshot's arrays, filled chunk by chunk as its rows arrive."""

    def __init__(self, header: SnapshotHeader, dtype: np.dtype, as_blocks: bool = False) -> None:
        self.header, self.dtype, self.as_blocks = header, dtype, as_blocks
        self.chunks = self.rows = 0
        self.ids = np.empty(0, np.int64)
        self.table = np.empty((0, header.width), dtype)
        self.blocks: list[tuple[np.ndarray, np.ndarray]] = []
        if header.n_chunks > 1 and not as_blocks:
            self.ids = np.empty(header.n_rows, np.int64)
            self.table = np.empty((header.n_rows, header.width), dtype)

    def add(self, chunk: int, ids: bytes, data: bytes) -> None:
        if chunk != self.chunks:
            return  # a chunk is missing (deleted by hand): result() says incomplete
        chunk_ids = np.frombuffer(ids, dtype="<i8")
        little = self.dtype.newbyteorder("<")
        chunk_table = np.frombuffer(data, dtype=little).reshape(len(chunk_ids), self.header.width)
        if self.as_blocks:
            self.blocks.append((chunk_ids, chunk_table))
        elif self.header.n_chunks == 1:  # views of the fetched bytes
            self.ids, self.table = chunk_ids, chunk_table
        else:
            self.ids[self.rows : self.rows + len(chunk_ids)] = chunk_ids
            self.table[self.rows : self.rows + len(chunk_ids)] = chunk_table
        self.chunks += 1
        self.rows += len(chunk_ids)

    def result(self) -> tuple[np.ndarray, Any] | None:
        if (self.chunks, self.rows) != (self.header.n_chunks, self.header.n_rows):
            return None
        if self.as_blocks:
            ids = np.concatenate([i for i, _ in self.blocks]) if self.blocks else self.ids
            tables = [t.astype(self.dtype, copy=False) for _, t in self.blocks] or [self.table]
            ids.flags.writeable = False
            for table in tables:
                table.flags.writeable = False
            return ids.astype(np.int64, copy=False), tuple(tables)
        ids = self.ids.astype(np.int64, copy=False)
        table = self.table.astype(self.dtype, copy=False).reshape(self.rows, self.header.width)
        ids.flags.writeable = table.flags.writeable = False
        return ids, table
