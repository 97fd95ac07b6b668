"""Vector families: the JSON columns the serving API reads, written one family per transaction,
and read back from their snapshots where there is one."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import numpy as np

from bookrec import interrupts
from bookrec.domain import EVENTS, BookEventCounts
from bookrec.errors import JobFailedError
from bookrec.storage.columns import vector_column
from bookrec.storage.dialect import Dialect
from bookrec.storage.runs import Runs
from bookrec.storage.snapshots import (
    EVENT_COUNTS_SNAPSHOT,
    INTERACTION_TOTALS,
    Snapshots,
    snapshot_name,
)

ProgressCallback = Callable[[int, int], None]
# (side: "books" or "users", row ids, vectors)
VectorSide = tuple[str, np.ndarray, np.ndarray]
HybridRows = dict[str, tuple[float, float | None]]  # strategy -> (weight, prior)


@dataclass(frozen=True)
class VectorStats:
    family: str
    side: str  # "books" or "users"
    column: str
    rows: int
    with_vector: int
    dimensions: dict[int, int]  # dimension -> rows


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


def chunks(n: int, size: int) -> list[tuple[int, int]]:
    """(start, stop) of each `size` rows of n."""
    return [(start, min(n, start + size)) for start in range(0, n, size)]


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


class Vectors(ABC):
    """Every write is one transaction with the run's success; each backend writes a column
    its own way (write_column)."""

    def __init__(self, dialect: Dialect, snapshots: Snapshots, runs: Runs) -> None:
        self.dialect = dialect
        self.snapshots = snapshots
        self.runs = runs

    # -- reading ---------------------------------------------------------------------------
    def stats(self, family: str, side: str, rows: int | None = None) -> VectorStats:
        """How many rows of the side have a vector of the family, of which dimensions: as its
        last write recorded them, or (when something else changed the column since) counted.
        `rows`: the side's row count if the caller has it (counting scans the wide table)."""
        d = self.dialect
        column = vector_column(family, side)
        if rows is None:
            rows = d.execute(f"SELECT count(*) FROM {side}").fetchone()[0]
        name = snapshot_name(family, side)
        header = self.snapshots.headers([name]).get(name)
        if header is not None:
            dims = {header.width: header.n_rows} if header.n_rows else {}
        else:
            dims = dict(
                d.execute(
                    f"SELECT {d.json_length_function}({column}), count(*) FROM {side}"
                    f" WHERE {column} IS NOT NULL GROUP BY 1"
                ).fetchall()
            )
        return VectorStats(family, side, column, rows, sum(dims.values()), dims)

    def load(self, family: str, side: str = "books") -> tuple[np.ndarray, np.ndarray]:
        """(ids, float32 matrix) of every row that has a vector of that family (read-only)."""
        return self.load_families([family], side)[family]

    def load_families(
        self, families: Sequence[str], side: str = "books", *, as_blocks: bool = False
    ) -> dict[str, tuple[np.ndarray, Any]]:
        """load of several families: books from their snapshots where there is one, the rest
        from the JSON columns in one scan of the table (rows are wide). The arrays are
        read-only either way. With `as_blocks` each family's vectors are a tuple of
        consecutive row blocks (a snapshot's chunks, not joined into one array)."""
        loaded: dict[str, tuple[np.ndarray, Any]] = {}
        if side == "books":
            names = {snapshot_name(family): family for family in families}
            found = self.snapshots.read(list(names), np.float32, as_blocks=as_blocks)
            for name, (ids, vectors, _) in found.items():
                loaded[names[name]] = ids, vectors
        missing = [f for f in families if f not in loaded]
        if missing:
            from_json = self.load_json(missing, side)
            for family, (ids, vectors) in from_json.items():
                ids.flags.writeable = vectors.flags.writeable = False
                loaded[family] = (ids, (vectors,)) if as_blocks else (ids, vectors)
        return {family: loaded[family] for family in families}

    def load_json(
        self, families: Sequence[str], side: str
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The families' vectors from their JSON columns (what the serving API reads)."""
        columns = [self.dialect.json_text(vector_column(f, side)) for f in families]
        # Only the rows with a vector reach Python: a family without any (content before
        # `embed`) was 2.4M rows of NULLs, 13 s of the gate at that catalogue.
        having = " OR ".join(f"{vector_column(f, side)} IS NOT NULL" for f in families)
        rows = self.dialect.execute(
            f"SELECT id, {', '.join(columns)} FROM {side} WHERE {having} ORDER BY id"
        ).fetchall()
        return {
            family: vectors_from_json([(r[0], r[i]) for r in rows if r[i] is not None])
            for i, family in enumerate(families, start=1)
        }

    def load_one(self, family: str, side: str, row_id: int) -> np.ndarray | None:
        """One row's vector of that family, or None."""
        d = self.dialect
        column = d.json_text(vector_column(family, side))
        row = d.execute(f"SELECT {column} FROM {side} WHERE id = {d.param}", (row_id,)).fetchone()
        if row is None or row[0] is None:
            return None
        return vectors_from_json([(row_id, row[0])])[1][0]

    # -- writing ---------------------------------------------------------------------------
    def replace(
        self,
        family: str,
        run_id: int,
        run_result: dict[str, Any] | Callable[[], dict[str, Any]],
        book_ids: np.ndarray,
        book_vectors: np.ndarray,
        user_ids: np.ndarray | None = None,
        user_vectors: np.ndarray | None = None,
        artifacts: dict[str, bytes] | None = None,
        on_progress: ProgressCallback | None = None,
        event_counts: BookEventCounts | Callable[[], BookEventCounts] | None = None,
        hybrid_weights: HybridRows | Callable[[], HybridRows | None] | None = None,
    ) -> None:
        """In one transaction: write the family's vectors, NULL it everywhere else, store the
        snapshots recommend reads (with `event_counts`, if given, for popularity), the
        `hybrid_weights` if given (strategy -> (weight, prior)), and mark the run succeeded
        with run_result (finish_run's fields). Nothing changes on error.

        `event_counts`, `hybrid_weights` and `run_result` may each be a function returning
        them, called (in that order) once the vectors are written: the caller can compute them
        meanwhile, and an error one of them raises rolls the whole write back."""
        sides = [("books", book_ids, book_vectors)]
        if user_ids is not None and user_vectors is not None:
            sides.append(("users", user_ids, user_vectors))
        self._write(
            family, run_id, run_result, _checked(family, sides), artifacts, on_progress, True,
            event_counts, hybrid_weights,
        )  # fmt: skip

    def update(
        self,
        family: str,
        run_id: int,
        run_result: dict[str, Any],
        book_ids: np.ndarray,
        book_vectors: np.ndarray,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        """Like replace, but leaves the vectors of other books as they are."""
        sides = _checked(family, [("books", book_ids, book_vectors)])
        self._write(family, run_id, run_result, sides, None, on_progress, False, None)

    def _write(
        self,
        family: str,
        run_id: int,
        run_result: dict[str, Any] | Callable[[], dict[str, Any]],
        sides: list[VectorSide],
        artifacts: dict[str, bytes] | None,
        on_progress: ProgressCallback | None,
        clear_others: bool,
        event_counts: BookEventCounts | Callable[[], BookEventCounts] | None,
        hybrid_weights: HybridRows | Callable[[], HybridRows | None] | None = None,
    ) -> None:
        """The one transaction of replace / update."""
        total = sum(len(ids) for _, ids, _ in sides)
        done = 0

        def advance(rows: int) -> None:
            nonlocal done
            done += rows
            if on_progress:
                on_progress(done, total)

        with self.transaction():
            for side, ids, vectors in sides:
                column = vector_column(family, side)
                self.write_column(side, column, ids, vectors, clear_others, advance)
            self.runs.add_artifacts(run_id, artifacts or {})
            if callable(event_counts):
                event_counts = event_counts()
            self._write_snapshots(family, sides, event_counts, clear_others)
            if callable(hybrid_weights):
                hybrid_weights = hybrid_weights()
            if hybrid_weights is not None:
                self.runs.replace_hybrid_weights(run_id, hybrid_weights)
            if callable(run_result):
                run_result = run_result()
            self.runs.finish_in_transaction(run_id, "succeeded", run_result)
            interrupts.commit_point()

    def _write_snapshots(
        self,
        family: str,
        sides: list[VectorSide],
        event_counts: BookEventCounts | None,
        others_cleared: bool,
    ) -> None:
        """After a vector write, in its transaction: the family's books snapshot (read back
        when only some books were written: not others_cleared, and other books have vectors),
        the users column's header, and the event counts the trainer passed."""
        written = {side: (ids, vectors) for side, ids, vectors in sides}
        if "books" in written and (
            others_cleared or len(written["books"][0]) == self._count_vectors(family)
        ):
            ids, vectors = written["books"]
        else:
            ids, vectors = self.load_json([family], "books")[family]
        self.snapshots.write(snapshot_name(family), ids, vectors.astype(np.float32, copy=False))
        if "users" in written and others_cleared:
            ids, vectors = written["users"]
            self.snapshots.write_header(snapshot_name(family, "users"), len(ids), vectors.shape[1])
        if event_counts is not None:
            table = np.column_stack(
                [event_counts.events, event_counts.ratings, event_counts.counts]
            ).astype(np.float64)
            counted_to = event_counts.max_interaction_id
            self.snapshots.write(
                EVENT_COUNTS_SNAPSHOT, event_counts.book_ids, table, max_interaction_id=counted_to
            )
            if event_counts.first_at is not None:
                codes = np.arange(len(EVENTS))
                by_event = np.bincount(
                    event_counts.events, weights=event_counts.counts, minlength=len(EVENTS)
                )
                self.snapshots.write(
                    INTERACTION_TOTALS, codes, by_event[:, None], max_interaction_id=counted_to,
                    first_at=event_counts.first_at, last_at=event_counts.last_at,
                )  # fmt: skip

    def _count_vectors(self, family: str) -> int:
        column = vector_column(family, "books")
        sql = f"SELECT count(*) FROM books WHERE {column} IS NOT NULL"
        return self.dialect.execute(sql).fetchone()[0]

    def transaction(self) -> AbstractContextManager[Any]:
        """The transaction of a vector write, set up for it."""
        return self.dialect.transaction()

    @abstractmethod
    def write_column(
        self,
        side: str,
        column: str,
        ids: np.ndarray,
        vectors: np.ndarray,
        clear_others: bool,
        advance: Callable[[int], None],
    ) -> None:
        """Inside transaction(): vectors into one column by row id (and NULL in every other
        row if clear_others); advance(n) after each n rows written."""
