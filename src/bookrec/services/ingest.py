"""Loading books and interactions: validate everything, write all valid rows or none."""

from __future__ import annotations

import gc
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bookrec.progress import Phases
from bookrec.readers.books import read_books
from bookrec.readers.common import DEFAULT_MAX_ERRORS, ErrorLog
from bookrec.readers.csvfile import MAX_RECORD_BYTES
from bookrec.readers.interactions import read_interactions
from bookrec.results import BookIngestResult, InteractionIngestResult
from bookrec.storage.base import Repository


def _finish_errors(errors: ErrorLog, skip_invalid: bool, rejects: Path | None, what: str) -> None:
    if skip_invalid:
        if rejects is not None:
            errors.write_rejects(rejects)
        return
    errors.raise_if_any(what)


def ingest_books(
    repo: Repository,
    path: Path,
    phases: Phases,
    *,
    skip_invalid: bool = False,
    rejects: Path | None = None,
    max_errors: int = DEFAULT_MAX_ERRORS,
    max_record_bytes: int = MAX_RECORD_BYTES,
) -> BookIngestResult:
    """Upsert every valid book of the file in one transaction (see `Repository.upsert_books`)."""
    started = time.perf_counter()
    errors = ErrorLog(path, keep_all=skip_invalid, max_errors=max_errors)
    size = path.stat().st_size if path.is_file() else 0
    with phases.phase("validate", total=size) as update:
        batches = list(
            read_books(path, errors, on_progress=update, max_record_bytes=max_record_bytes)
        )
        update(size)
    _finish_errors(errors, skip_invalid, rejects, "book row")
    with phases.phase("write"):
        result = repo.upsert_books(batches)
    rows = sum(len(b) for b in batches)
    return BookIngestResult(
        file=str(path),
        rows_read=rows + errors.count,
        rejected=errors.count,
        seconds=round(time.perf_counter() - started, 3),
        inserted=len(result.inserted),
        updated=len(result.updated),
        unchanged=result.unchanged,
        changed_book_ids=tuple(result.inserted + result.updated),
        reject_reasons=tuple(errors.first_reasons()),
    )


def ingest_interactions(
    repo: Repository,
    path: Path,
    phases: Phases,
    *,
    skip_invalid: bool = False,
    rejects: Path | None = None,
    max_errors: int = DEFAULT_MAX_ERRORS,
) -> InteractionIngestResult:
    """Stream the file into one transaction; any invalid row (without skip_invalid) rolls it
    back, after the whole file was validated so the report counts every bad row.

    Parsing (Python) and writing (the database) overlap: a writer thread takes each validated
    batch while the next one is parsed."""
    started = time.perf_counter()
    now = time.time()
    errors = ErrorLog(path, keep_all=skip_invalid, max_errors=max_errors)
    size = path.stat().st_size if path.is_file() else 0
    with repo.interaction_loader() as loader:  # an exception rolls the load back
        book_ids = repo.book_id_map()  # in the loader's transaction, which its checks rely on
        with phases.phase("load", total=size) as update, _no_cyclic_gc():
            batches = read_interactions(path, book_ids, errors, now, on_progress=update)
            with BatchWriter(loader.add) as writer:
                for batch in batches:
                    if errors.count and not skip_invalid:
                        continue  # keep validating; nothing more is written
                    writer.put(batch)
            update(size)
        if errors.count and not skip_invalid:
            errors.raise_if_any("interaction row")
        with phases.phase("commit"):
            result = loader.commit()
    _finish_errors(errors, skip_invalid, rejects, "interaction row")
    return InteractionIngestResult(
        file=str(path),
        rows_read=result.rows + errors.count,
        rejected=errors.count,
        seconds=round(time.perf_counter() - started, 3),
        inserted=result.inserted,
        duplicates=result.duplicates,
        new_users=result.new_users,
        reject_reasons=tuple(errors.first_reasons()),
    )


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Millions of short-lived row lists make the cyclic GC rescan them for nothing (~30%)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class BatchWriter:
    """Runs write(batch) on a background thread, at most two batches behind the producer.

    A failure of write() is raised again in the producer at the next put() or at exit."""

    def __init__(self, write: Callable[[Any], None]) -> None:
        self.write = write
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=2)
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="bookrec-writer", daemon=True)

    def __enter__(self) -> BatchWriter:
        self.thread.start()
        return self

    def _run(self) -> None:
        while (batch := self.queue.get()) is not None:
            if self.failure is None:
                try:
                    self.write(batch)
                except BaseException as exc:
                    self.failure = exc

    def put(self, batch: Any) -> None:
        if self.failure is not None:
            raise self.failure
        self.queue.put(batch)

    def __exit__(self, *exc: object) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.failure is not None and exc[0] is None:
            raise self.failure
