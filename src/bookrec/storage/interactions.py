"""Users and interactions: loads, counts, and the stream of compact arrays training reads.

Training reads every interaction: through Arrow database connectivity (ADBC, the Apache Arrow
project's drivers, which read rows into columns in C: measured 5x the sqlite3 module's rate
and 2x psycopg's COPY loop at 10M rows), in chunks of CHUNK_ROWS rows of compact arrays
(InteractionArrays: int32 ids where they fit, int8 events, float32 ratings, int64 seconds),
never a Python object per row.
"""

from __future__ import annotations

import queue
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from bookrec.domain import EVENTS, BookEventCounts, InteractionArrays
from bookrec.storage.adbc import off_the_main_thread
from bookrec.storage.columns import event_code_sql
from bookrec.storage.dialect import Dialect
from bookrec.storage.loading import InteractionLoader
from bookrec.storage.snapshots import EVENT_COUNTS_SNAPSHOT, INTERACTION_TOTALS, Snapshots

T = TypeVar("T")
CHUNK_ROWS = 1 << 20
ARROW_BATCH_ROWS = 1 << 16
INT32_MAX = np.iinfo(np.int32).max
RATING_OR_NO_RATING = "coalesce(rating, CAST(-1 AS REAL))"  # no NULL: columns of one type


@dataclass
class InteractionTotals:
    """How many interactions of each event (counts by event code), and when the first and the
    last occurred (epoch seconds as stored; None without interactions)."""

    by_event: np.ndarray
    first_at: float | None = None
    last_at: float | None = None

    def add(self, by_event: np.ndarray, first: float, last: float) -> None:
        """Count in interactions: how many of each event code, the first and last time."""
        self.by_event += by_event
        first, last = float(first), float(last)
        self.first_at = first if self.first_at is None else min(self.first_at, first)
        self.last_at = last if self.last_at is None else max(self.last_at, last)

    @classmethod
    def empty(cls) -> InteractionTotals:
        return cls(np.zeros(len(EVENTS), dtype=np.int64))


class InteractionStream:
    """All interactions up to `max_interaction_id`, as of the start of the read, in chunks of
    InteractionArrays in id order; iterate it once, inside its `with` block. `totals` are
    complete once it has been iterated."""

    def __init__(
        self,
        max_interaction_id: int,
        chunks: Iterator[tuple[InteractionArrays, np.ndarray]],
        newest: Callable[[], float | None],
    ) -> None:
        self.max_interaction_id = max_interaction_id
        self.rows = 0
        self.totals = InteractionTotals.empty()
        self._chunks = chunks
        self._newest = newest

    def newest(self) -> float | None:
        """The newest timestamp (floored epoch seconds, as in the arrays), before the chunks
        are read: the `now` of a decaying weight scheme. Cheap where a training run recorded
        the totals; else one scan of the table."""
        newest = self._newest()
        return None if newest is None else float(np.floor(newest))

    def __iter__(self) -> Iterator[InteractionArrays]:
        for chunk, epochs in self._chunks:
            self.rows += len(chunk)
            by_event = np.bincount(chunk.events, minlength=len(EVENTS))
            self.totals.add(by_event, epochs.min(), epochs.max())
            yield chunk


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_DONE = object()


def prefetched(items: Iterator[T]) -> Iterator[T]:
    """The items of an iterator, each made on a thread of its own while the caller works on
    the one before. Its errors are raised in the caller; stopping early stops it."""
    ready: queue.Queue[Any] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def hand_over(item: Any) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not hand_over(item):
                    return
            hand_over(_DONE)
        except BaseException as error:  # handed to the caller, which raises it
            hand_over(_Failed(error))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="bookrec-read-ahead", daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not _DONE:
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()


def compact_arrays(
    user_ids: np.ndarray,
    book_ids: np.ndarray,
    events: np.ndarray,
    ratings: np.ndarray,
    epochs: np.ndarray,
    id_dtype: type,
    max_interaction_id: int,
) -> InteractionArrays:
    """InteractionArrays of raw columns: ratings below 1 (the readers' stand-in for NULL) and
    NaN become NaN, epoch seconds are floored."""
    ratings = np.where(np.asarray(ratings) >= 1, ratings, np.nan).astype(np.float32)
    return InteractionArrays(
        user_ids=np.asarray(user_ids).astype(id_dtype, copy=False),
        book_ids=np.asarray(book_ids).astype(id_dtype, copy=False),
        events=np.asarray(events).astype(np.int8, copy=False),
        ratings=ratings,
        timestamps=np.floor(epochs).astype(np.int64),
        max_interaction_id=max_interaction_id,
    )


class Interactions(ABC):
    def __init__(self, dialect: Dialect, snapshots: Snapshots) -> None:
        self.dialect = dialect
        self.snapshots = snapshots

    @abstractmethod
    def loader(self) -> InteractionLoader:
        """A load of interactions in one transaction (a context manager, see InteractionLoader)."""

    # -- what the backend provides ---------------------------------------------------------
    @abstractmethod
    def _arrow_connection(self) -> AbstractContextManager[Any]:
        """An ADBC DB-API connection to the same database."""

    @abstractmethod
    def _epoch_seconds(self, column: Any) -> np.ndarray:
        """float64 epoch seconds (as the dialect's epoch() gives them) of a column of
        occurred_at as the Arrow driver returns it."""

    # -- reading ---------------------------------------------------------------------------
    def find_user(self, external_id: str) -> int | None:
        sql = f"SELECT id FROM users WHERE external_id = {self.dialect.param}"
        found = self.dialect.execute(sql, (external_id,)).fetchone()
        return found[0] if found else None

    @contextmanager
    def stream(self, chunk_rows: int = CHUNK_ROWS) -> Iterator[InteractionStream]:
        """Every interaction (see InteractionStream)."""
        d = self.dialect
        with d.read_snapshot():
            max_id, id_dtype = self._bounds()
        with self._arrow_connection() as conn:
            chunks = self._arrow_chunks(conn, max_id, id_dtype, chunk_rows)
            try:
                yield InteractionStream(max_id, chunks, lambda: self._newest(max_id))
            finally:
                chunks.close()  # its cursor, before the connection

    def load(self, user_id: int | None = None) -> InteractionArrays:
        """All interactions (or one user's) up to the newest id at the start of the read, in
        id order, as compact arrays."""
        if user_id is not None:
            return self._load_user(user_id)
        with self.stream() as stream:
            (lowest,) = self.dialect.execute("SELECT coalesce(min(id), 1) FROM interactions")
            bound = max(0, stream.max_interaction_id - lowest[0] + 1)  # rows at most
            # Allocated for the bound, filled as far as there are rows: untouched pages of a
            # large np.empty are never resident.
            columns: list[np.ndarray] | None = None
            filled = 0
            for chunk in stream:
                parts = (chunk.user_ids, chunk.book_ids, chunk.events, chunk.ratings,
                         chunk.timestamps)  # fmt: skip
                if columns is None:
                    columns = [np.empty(bound, dtype=p.dtype) for p in parts]
                for column, part in zip(columns, parts, strict=True):
                    column[filled : filled + len(part)] = part
                filled += len(chunk)
        if columns is None:
            return _empty(stream.max_interaction_id)
        if filled < bound // 2:
            columns = [c[:filled].copy() for c in columns]
        return InteractionArrays(*(c[:filled] for c in columns), stream.max_interaction_id)

    def _bounds(self) -> tuple[int, type]:
        """(the newest interaction id, the dtype every user and book id fits)."""
        d = self.dialect
        (max_id,) = d.execute("SELECT coalesce(max(id), 0) FROM interactions").fetchone()
        largest = max(
            d.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]
            for table in ("users", "books")
        )
        return max_id, np.int32 if largest <= INT32_MAX else np.int64

    def _arrow_chunks(
        self, conn: Any, max_id: int, id_dtype: type, chunk_rows: int
    ) -> Iterator[tuple[InteractionArrays, np.ndarray]]:
        """(chunk, its float64 epoch seconds) of the rows up to max_id, in id order: read one
        chunk ahead on a thread of its own, so that the database and the driver work while the
        caller aggregates the last one (both mostly outside Python's lock). The query is
        executed off the main thread too, where a Ctrl-C cancels it as bookrec's interrupt
        (storage/adbc.py)."""
        cursor = conn.cursor()
        sql = (
            f"SELECT user_id, book_id, {event_code_sql()} AS event_code,"
            f" {RATING_OR_NO_RATING} AS rating, occurred_at FROM interactions"
            f" WHERE id <= {int(max_id)} ORDER BY id"
        )
        try:
            cursor.adbc_statement.set_options(**self._arrow_options())
            off_the_main_thread(lambda: cursor.execute(sql), cursor.adbc_cancel)
            batches = cursor.fetch_record_batch()
            yield from prefetched(self._chunks_of(batches, id_dtype, max_id, chunk_rows))
        finally:
            cursor.close()

    def _chunks_of(
        self, batches: Iterable[Any], id_dtype: type, max_id: int, chunk_rows: int
    ) -> Iterator[tuple[InteractionArrays, np.ndarray]]:
        import pyarrow as pa

        pending: list[Any] = []
        rows = 0
        for batch in batches:
            pending.append(batch)
            rows += batch.num_rows
            if rows >= chunk_rows:
                yield self._chunk(pa.Table.from_batches(pending), id_dtype, max_id)
                pending, rows = [], 0
        if rows:
            yield self._chunk(pa.Table.from_batches(pending), id_dtype, max_id)

    def _chunk(
        self, table: Any, id_dtype: type, max_id: int
    ) -> tuple[InteractionArrays, np.ndarray]:
        users, books, events, ratings, times = (table.column(i).combine_chunks() for i in range(5))
        epochs = self._epoch_seconds(times)
        arrays = compact_arrays(
            users.to_numpy(), books.to_numpy(), events.to_numpy(), ratings.to_numpy(),
            epochs, id_dtype, max_id,
        )  # fmt: skip
        return arrays, epochs

    def _arrow_options(self) -> dict[str, str]:
        return {}

    def _load_user(self, user_id: int) -> InteractionArrays:
        d = self.dialect
        with d.read_snapshot():
            max_id, id_dtype = self._bounds()
            rows = d.execute(
                f"SELECT user_id, book_id, {event_code_sql()}, {RATING_OR_NO_RATING},"
                f" {d.epoch('occurred_at')} FROM interactions"
                f" WHERE id <= {d.param} AND user_id = {d.param} ORDER BY id",
                (max_id, user_id),
            ).fetchall()
        if not rows:
            return _empty(max_id)
        table = np.array(rows, dtype=np.float64)
        return compact_arrays(*table.T, id_dtype, max_id)

    def _newest(self, max_id: int) -> float | None:
        """The newest occurred_at (epoch seconds) of the interactions up to max_id."""
        d = self.dialect
        recorded = self._recorded_totals(max_id)
        counted_to, newest = (recorded[0], recorded[1].last_at) if recorded else (0, None)
        (later,) = d.execute(
            f"SELECT {d.epoch('max(occurred_at)')} FROM interactions"
            f" WHERE id > {d.param} AND id <= {d.param}",
            (counted_to, max_id),
        ).fetchone()
        known = [t for t in (newest, later) if t is not None]
        return max(known) if known else None

    def counts(self) -> dict[str, Any]:
        """books, users, interactions, per-event counts, first/last interaction time."""
        d = self.dialect
        (max_id,) = d.execute("SELECT coalesce(max(id), 0) FROM interactions").fetchone()
        recorded = self._recorded_totals(max_id)
        counted_to, totals = recorded if recorded is not None else (0, InteractionTotals.empty())
        rows = d.execute(
            f"SELECT {event_code_sql()}, count(*), {d.epoch('min(occurred_at)')},"
            f" {d.epoch('max(occurred_at)')} FROM interactions WHERE id > {d.param}"
            " GROUP BY event",
            (counted_to,),
        ).fetchall()
        for code, count, first, last in rows:
            totals.add(np.bincount([code], [count], len(EVENTS)).astype(np.int64), first, last)
        # The newest row by id, not max(created_at): the primary key answers at once.
        newest = d.execute(
            f"SELECT {d.epoch('created_at')} FROM interactions ORDER BY id DESC LIMIT 1"
        ).fetchone()
        return {
            "books": d.execute("SELECT count(*) FROM books").fetchone()[0],
            "users": d.execute("SELECT count(*) FROM users").fetchone()[0],
            "interactions": int(totals.by_event.sum()),
            "interactions_by_event": dict(zip(EVENTS, totals.by_event.tolist(), strict=True)),
            "first_interaction_at": totals.first_at,
            "last_interaction_at": totals.last_at,
            "last_arrival_at": newest[0] if newest else None,
            "max_interaction_id": max_id,
        }

    def _recorded_totals(self, max_id: int) -> tuple[int, InteractionTotals] | None:
        """(counted_to, the totals of the interactions up to it) as the last training run
        recorded them, if nothing changed them since and counted_to <= max_id."""
        found = self.snapshots.read([INTERACTION_TOTALS], np.float64).get(INTERACTION_TOTALS)
        if found is None:
            return None
        codes, table, header = found
        counted_to = header.max_interaction_id or 0
        if counted_to > max_id:
            return None
        by_event = np.zeros(len(EVENTS), dtype=np.int64)
        by_event[codes] = table[:, 0].astype(np.int64)
        return counted_to, InteractionTotals(by_event, header.first_at, header.last_at)

    def after(self, interaction_id: int) -> tuple[int, float | None]:
        """How many interactions have an id above the given one (arrived since a run), and
        when the first of them arrived (epoch seconds of its created_at; None if none)."""
        d = self.dialect
        sql = (
            f"SELECT count(*), {d.epoch('min(created_at)')} FROM interactions WHERE id > {d.param}"
        )
        count, first = d.execute(sql, (interaction_id,)).fetchone()
        return count, first

    def book_event_counts(self, since: float | None = None) -> BookEventCounts:
        """Interaction counts per (book, event, rating): of all interactions (the snapshot the
        last training stored plus what arrived after it), or of those at or after `since`
        (epoch seconds)."""
        p = self.dialect.param
        if since is not None:
            condition = f"{self.dialect.epoch('occurred_at')} >= {p}"
            return _event_counts(self._count_events(condition, since), 0)
        found = self.snapshots.read([EVENT_COUNTS_SNAPSHOT], np.float64).get(EVENT_COUNTS_SNAPSHOT)
        if found is None:
            return _event_counts(self._count_events("1 = 1", None), 0)
        ids, table, header = found
        counted_to = header.max_interaction_id or 0
        newer = _event_counts(self._count_events(f"id > {p}", counted_to), counted_to)
        return BookEventCounts(
            np.concatenate([ids, newer.book_ids]),
            np.concatenate([table[:, 0].astype(np.int8), newer.events]),
            np.concatenate([table[:, 1].astype(np.float32), newer.ratings]),
            np.concatenate([table[:, 2].astype(np.int64), newer.counts]),
            counted_to,
        )

    def _count_events(self, condition: str, value: Any) -> list[tuple]:
        return self.dialect.execute(
            f"SELECT +book_id, {event_code_sql()}, rating, count(*) FROM interactions"
            # `+book_id`: SQLite would otherwise walk the whole book_id index to save a sort,
            # instead of reading just the rows after an id.
            f" WHERE {condition} GROUP BY +book_id, event, rating",
            () if value is None else (value,),
        ).fetchall()


def _event_counts(rows: list[tuple], max_interaction_id: int | None) -> BookEventCounts:
    """BookEventCounts from rows of (book id, event code, rating or None, count)."""
    table = np.array(rows, dtype=np.float64).reshape(-1, 4)  # None ratings become NaN
    return BookEventCounts(
        table[:, 0].astype(np.int64),
        table[:, 1].astype(np.int8),
        table[:, 2].astype(np.float32),
        table[:, 3].astype(np.int64),
        max_interaction_id or 0,
    )


def _empty(max_interaction_id: int) -> InteractionArrays:
    empty = np.empty(0, dtype=np.int64)
    return InteractionArrays(
        empty, empty.copy(), np.empty(0, np.int8), np.empty(0, np.float32), empty.copy(),
        max_interaction_id,
    )  # fmt: skip
