"""What the book and interaction readers share: the error report and the record streams."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from bookrec.errors import InputError, InvalidRowsError, TooManyInvalidRowsError
from bookrec.readers.csvfile import MAX_RECORD_BYTES, csv_blocks
from bookrec.readers.records import Record
from bookrec.readers.sources import open_input

MAX_REPORTED_ERRORS = 10
DEFAULT_MAX_ERRORS = 1000
ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class RowError:
    line: int
    field: str
    reason: str
    raw: str = ""

    def describe(self, path: Path, unit: str = "line") -> str:
        where = f"{path.name}:{self.line}" if unit == "line" else f"{path.name}:{unit} {self.line}"
        return f"{where}: {self.field}: {self.reason}" if self.field else f"{where}: {self.reason}"


@dataclass
class ErrorLog:
    """The invalid rows of one file: all of them (keep_all) or the first few, and their
    count. Reading stops with an InputError at the max_errors-th (0: no limit)."""

    path: Path
    errors: list[RowError] = field(default_factory=list)
    count: int = 0
    keep_all: bool = False
    max_errors: int = DEFAULT_MAX_ERRORS
    unit: str = "line"  # what errors count: lines of text files, rows of Parquet files

    def add(self, error: RowError) -> None:
        self.count += 1
        if self.keep_all or len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(error)
        if self.max_errors and self.count >= self.max_errors:
            raise TooManyInvalidRowsError(
                self.path.name, self.unit, error.line, self.count, self.first_reasons()
            )

    def first_reasons(self) -> list[str]:
        return [e.describe(self.path, self.unit) for e in self.errors[:MAX_REPORTED_ERRORS]]

    def raise_if_any(self, what: str) -> None:
        if not self.count:
            return
        raise InvalidRowsError(self.path.name, self.count, what, self.first_reasons())

    def write_rejects(self, target: Path) -> None:
        with target.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(["line", "field", "reason", "row"])
            for error in self.errors:
                writer.writerow([error.line, error.field, error.reason, error.raw.rstrip("\r\n")])


def detect_format(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    last = suffixes[-1] if suffixes else ""
    if last in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if last in (".csv", ".tsv", ".txt", ""):
        return "csv"
    if last in (".parquet", ".pq") and path.suffix.lower() != ".gz":
        return "parquet"
    raise InputError(
        f"{path.name}: unknown file type '{last}' (expected .csv, .tsv, .jsonl or .parquet)"
    )


def iter_records(
    path: Path,
    on_progress: ProgressCallback | None = None,
    *,
    max_lines: int | None = None,
    max_record_bytes: int = MAX_RECORD_BYTES,
) -> tuple[list[str], Iterator[Record]]:
    """The header (field names) and an iterator of records of a CSV or JSONL file. A CSV
    record may span up to max_lines lines (None: any number) and max_record_bytes bytes."""
    kind = detect_format(path)
    if kind == "parquet":
        return _parquet_records(path, on_progress)
    if kind == "csv":
        header, blocks = csv_blocks(
            path, on_progress, max_lines=max_lines, max_record_bytes=max_record_bytes
        )

        def records() -> Iterator[Record]:
            for block in blocks:
                for index in range(len(block)):
                    record = block.record(index, header)
                    if record is not None:
                        yield record

        return header, records()
    return [], _jsonl_records(path, on_progress, max_record_bytes)


def _parquet_records(
    path: Path, on_progress: ProgressCallback | None
) -> tuple[list[str], Iterator[Record]]:
    from bookrec.readers.parquet import batch_records, parquet_batches

    names, batches = parquet_batches(path, 10_000, on_progress)

    def records() -> Iterator[Record]:
        for first_row, batch in batches:
            yield from batch_records(batch, first_row, now=0.0)

    return names, records()


def _jsonl_records(
    path: Path, on_progress: ProgressCallback | None, max_bytes: int
) -> Iterator[Record]:
    for first_line, data in jsonl_blocks(path, on_progress, max_bytes):
        yield from jsonl_block_records(first_line, data, max_bytes)


def jsonl_blocks(
    path: Path,
    on_progress: ProgressCallback | None = None,
    max_bytes: int = MAX_RECORD_BYTES,
    block_bytes: int = 1 << 22,
) -> Iterator[tuple[int, bytes | None]]:
    """(number of the first line, whole lines) of a JSONL file, block by block; a line longer
    than max_bytes comes as None, alone (and is never held in memory whole)."""
    stream = open_input(path)
    total = path.stat().st_size
    with stream:
        first, pending = 1, b""
        while True:
            data = stream.read(block_bytes)
            if not data:
                if pending:
                    yield first, pending
                return
            data = pending + data
            cut = data.rfind(b"\n") + 1
            block, pending = data[:cut], data[cut:]
            if block:
                yield first, block
                first += block.count(b"\n")
            if len(pending) > max_bytes:
                yield first, None
                first += 1
                while (end := pending.find(b"\n")) < 0 and (more := stream.read(block_bytes)):
                    pending = more
                pending = pending[end + 1 :] if end >= 0 else b""
            if on_progress:
                on_progress(stream.position(), total)


def jsonl_block_records(
    first_line: int, data: bytes | None, max_bytes: int = MAX_RECORD_BYTES
) -> Iterator[Record]:
    if data is None:
        yield Record(first_line, {}, "", bad_shape=f"line longer than {max_bytes:,} bytes")
        return
    lines = data.split(b"\n")
    if data.endswith(b"\n"):
        lines.pop()
    for number, line in enumerate(lines, start=first_line):
        if len(line) > max_bytes:
            yield Record(number, {}, "", bad_shape=f"line longer than {max_bytes:,} bytes")
            continue
        try:
            text = line.decode("utf-8-sig" if number == 1 else "utf-8")
            undecodable = False
        except UnicodeDecodeError:
            text, undecodable = line.decode("utf-8", errors="replace"), True
        if not text.strip():
            continue
        try:
            values = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            reason = f"invalid JSON: {exc}"
            yield Record(number, {}, text, bad_shape=reason, undecodable=undecodable)
            continue
        if not isinstance(values, dict):
            yield Record(number, {}, text, bad_shape="not a JSON object")
            continue
        plain = "\\u0000" not in text  # orjson rejects lone surrogates and raw NULs
        yield Record(number, values, text, undecodable=undecodable, plain_text=plain)
