"""A vector family read in chunks, with each row's external id and the run that wrote it, for
`export vectors`: from the books snapshot's chunks where there is one, else from the JSON
column by id ranges. Nothing is ever all in memory at once; everything comes from one state of
the database (read_snapshot)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from bookrec.storage.columns import vector_column
from bookrec.storage.dialect import Dialect
from bookrec.storage.runs import Runs, TrainingRun
from bookrec.storage.snapshots import SnapshotHeader, Snapshots, snapshot_name
from bookrec.storage.vectors import vectors_from_json

JSON_ROWS_PER_CHUNK = 20_000


@dataclass(frozen=True)
class VectorChunk:
    ids: np.ndarray  # int64, ascending: the rows' internal ids
    external_ids: list[str]
    vectors: np.ndarray  # float32 (len(ids), dim)


@dataclass(frozen=True)
class VectorSource:
    """What a family holds (rows, dim: 0 when empty), the run that wrote it, and its rows in
    ascending id order, chunk by chunk (iterate once)."""

    family: str
    side: str
    rows: int
    dim: int
    run: TrainingRun | None
    stored_as: str  # "snapshot" or "json"
    chunks: Iterator[VectorChunk]


class VectorChunks:
    def __init__(self, dialect: Dialect, snapshots: Snapshots, runs: Runs) -> None:
        self.dialect = dialect
        self.snapshots = snapshots
        self.runs = runs
        self._names: tuple[str, np.ndarray, np.ndarray] | None = None

    @contextmanager
    def read(self, family: str, side: str) -> Iterator[VectorSource]:
        """The family's vectors of one side (ValueError if the family has none there), read
        inside one read transaction that lasts the block."""
        column = vector_column(family, side)
        self._names = None
        with self.dialect.read_snapshot():
            run = self.runs.latest(family)
            header = None
            if side == "books":
                name = snapshot_name(family)
                header = self.snapshots.headers([name]).get(name)
                if header is not None and header.n_chunks == 0 and header.n_rows:
                    header = None
            if header is not None:
                chunks = self._snapshot_chunks(header, side)
                yield VectorSource(
                    family, side, header.n_rows, header.width if header.n_rows else 0, run,
                    "snapshot", chunks,
                )  # fmt: skip
                return
            rows, dim = self._json_shape(side, column)
            chunks = self._json_chunks(side, column)
            yield VectorSource(family, side, rows, dim, run, "json", chunks)

    def _snapshot_chunks(self, header: SnapshotHeader, side: str) -> Iterator[VectorChunk]:
        p = self.dialect.param
        for chunk in range(header.n_chunks):
            # As recommend reads them (PostgreSQL: bytea in binary format, half the bytes of
            # hex text and no decoding), consumed whole before the id map's own query.
            found = list(
                self.dialect.stream_blob_rows(
                    f"SELECT ids, data FROM snapshot_chunks WHERE name = {p} AND chunk = {p}",
                    (header.name, chunk),
                )
            )
            row = found[0] if found else None
            if row is None:
                raise RuntimeError(f"snapshot {header.name} lacks chunk {chunk}")
            ids = np.frombuffer(row[0], dtype="<i8").astype(np.int64, copy=False)
            vectors = np.frombuffer(row[1], dtype="<f4").reshape(len(ids), header.width)
            yield VectorChunk(ids, self._external_ids(side, ids), vectors)

    def _external_ids(self, side: str, ids: np.ndarray) -> list[str]:
        """The external ids of ascending internal ids (from the side's id map, read once)."""
        if self._names is None or self._names[0] != side:
            self._names = (side, *self._id_map(side))
        _, known, names = self._names
        at = np.minimum(np.searchsorted(known, ids), max(len(known) - 1, 0))
        if not len(known) or not (known[at] == ids).all():
            raise RuntimeError(f"vectors of {side} rows that no longer exist")
        return names[at].tolist()

    def _id_map(self, side: str) -> tuple[np.ndarray, np.ndarray]:
        """(ids ascending, their external ids): one scan, which SQLite serves from the
        external id's index (the table's rows are wide with JSON vectors: reading them by id
        range cost a page per row). The only thing kept whole: ~10 bytes an id plus the
        strings."""
        cursor = self.dialect.execute(f"SELECT id, external_id FROM {side}")
        id_parts, name_parts = [], []
        while rows := cursor.fetchmany(100_000):
            id_parts.append(np.fromiter((r[0] for r in rows), np.int64, len(rows)))
            name_parts.append(np.array([r[1] for r in rows], dtype=object))
        if not id_parts:
            return np.empty(0, np.int64), np.empty(0, object)
        ids, names = np.concatenate(id_parts), np.concatenate(name_parts)
        order = np.argsort(ids, kind="stable")
        return ids[order], names[order]

    def _json_shape(self, side: str, column: str) -> tuple[int, int]:
        d = self.dialect
        rows = d.execute(f"SELECT count(*) FROM {side} WHERE {column} IS NOT NULL").fetchone()[0]
        first = d.execute(
            f"SELECT {d.json_text(column)} FROM {side} WHERE {column} IS NOT NULL"
            " ORDER BY id LIMIT 1"
        ).fetchone()
        dim = vectors_from_json([(0, first[0])])[1].shape[1] if first else 0
        return int(rows), int(dim)

    def _json_chunks(self, side: str, column: str) -> Iterator[VectorChunk]:
        d = self.dialect
        after = -(2**62)
        while True:
            rows = d.execute(
                f"SELECT id, external_id, {d.json_text(column)} FROM {side}"
                f" WHERE {column} IS NOT NULL AND id > {d.param} ORDER BY id"
                f" LIMIT {JSON_ROWS_PER_CHUNK}",
                (after,),
            ).fetchall()
            if not rows:
                return
            ids, vectors = vectors_from_json([(r[0], r[2]) for r in rows])
            yield VectorChunk(ids, [r[1] for r in rows], vectors)
            after = int(ids[-1])
