"""What the book and interaction readers share: opening, decoding, line numbers, reports."""

from __future__ import annotations

import csv
import gzip
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from bookrec.errors import InputError

MAX_REPORTED_ERRORS = 10
ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class RowError:
    line: int
    field: str
    reason: str
    raw: str = ""

    def describe(self, path: Path) -> str:
        where = f"{path.name}:{self.line}"
        return f"{where}: {self.field}: {self.reason}" if self.field else f"{where}: {self.reason}"


@dataclass
class ErrorLog:
    path: Path
    errors: list[RowError] = field(default_factory=list)
    count: int = 0
    keep_all: bool = False

    def add(self, error: RowError) -> None:
        self.count += 1
        if self.keep_all or len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(error)

    def raise_if_any(self, what: str) -> None:
        if not self.count:
            return
        raise InputError(
            f"{self.path.name}: {self.count} invalid {what}{'s' if self.count != 1 else ''},"
            " nothing written",
            hint="fix the file, or pass --skip-invalid --rejects FILE to load the valid rows",
            details=[e.describe(self.path) for e in self.errors[:MAX_REPORTED_ERRORS]],
        )

    def write_rejects(self, target: Path) -> None:
        with target.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(["line", "field", "reason", "row"])
            for error in self.errors:
                writer.writerow([error.line, error.field, error.reason, error.raw.rstrip("\r\n")])


@dataclass
class Record:
    """One input record: its first line number, fields by name, the raw text, decode status."""

    line: int
    values: dict[str, Any]
    raw: str
    undecodable: bool = False
    bad_shape: str | None = None


def detect_format(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    last = suffixes[-1] if suffixes else ""
    if last in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if last in (".csv", ".tsv", ".txt", ""):
        return "csv"
    raise InputError(f"{path.name}: unknown file type '{last}' (expected .csv or .jsonl)")


def open_binary(path: Path) -> IO[bytes]:
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    raw = path.open("rb")
    if path.suffix.lower() == ".gz":
        return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
    return raw


class LineSource:
    """Decoded lines of a binary file, remembering which ones were not valid UTF-8."""

    def __init__(self, binary: IO[bytes], on_progress: ProgressCallback | None, total: int):
        self.binary = binary
        self.bad_lines: set[int] = set()
        self.lines: list[str] = []  # raw lines of the current record
        self.number = 0
        self.on_progress = on_progress
        self.total = total

    def __iter__(self) -> Iterator[str]:
        progress_every = 1 << 16
        for number, data in enumerate(self.binary, start=1):
            self.number = number
            try:
                text = data.decode("utf-8-sig" if self.number == 1 else "utf-8")
            except UnicodeDecodeError:
                self.bad_lines.add(self.number)
                text = data.decode("utf-8", errors="replace")
            self.lines.append(text)
            if self.on_progress and self.number % progress_every == 0:
                self.on_progress(_position(self.binary), self.total)
            yield text


def _position(binary: IO[bytes]) -> int:
    inner = getattr(binary, "fileobj", None)
    return (inner or binary).tell()


def iter_records(
    path: Path, on_progress: ProgressCallback | None = None
) -> tuple[list[str], Iterator[Record]]:
    """The header (field names) and an iterator of records of a CSV or JSONL file."""
    kind = detect_format(path)
    binary = open_binary(path)
    total = path.stat().st_size
    source = LineSource(binary, on_progress, total)
    if kind == "csv":
        return _csv_records(path, source)
    return _jsonl_records(path, source)


def _csv_records(path: Path, source: LineSource) -> tuple[list[str], Iterator[Record]]:
    delimiter = "\t" if path.name.lower().removesuffix(".gz").endswith(".tsv") else ","
    reader = csv.reader(iter(source), delimiter=delimiter, strict=True)
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        raise InputError(f"{path.name}: the file is empty") from None
    except csv.Error as exc:
        raise InputError(f"{path.name}:1: cannot read the header: {exc}") from None
    if source.bad_lines:
        raise InputError(f"{path.name}:1: the header is not valid UTF-8")
    source.lines.clear()
    width = len(header)

    def records() -> Iterator[Record]:
        with source.binary:
            while True:
                first = source.number + 1
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    raw = "".join(source.lines)
                    source.lines.clear()
                    yield Record(first, {}, raw, bad_shape=f"malformed CSV: {exc}")
                    continue
                raw = "".join(source.lines)
                source.lines.clear()
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                undecodable = any(n in source.bad_lines for n in range(first, source.number + 1))
                shape = None
                if len(row) != width:
                    shape = f"expected {width} fields, found {len(row)}"
                yield Record(first, dict(zip(header, row, strict=False)), raw, undecodable, shape)

    return header, records()


def _jsonl_records(path: Path, source: LineSource) -> tuple[list[str], Iterator[Record]]:
    def records() -> Iterator[Record]:
        with source.binary:
            for text in source:
                source.lines.clear()
                if not text.strip():
                    continue
                line = source.number
                undecodable = line in source.bad_lines
                try:
                    values = orjson.loads(text)
                except orjson.JSONDecodeError as exc:
                    yield Record(line, {}, text, undecodable, bad_shape=f"invalid JSON: {exc}")
                    continue
                if not isinstance(values, dict):
                    yield Record(line, {}, text, undecodable, bad_shape="not a JSON object")
                    continue
                yield Record(line, values, text, undecodable)

    return [], records()


def text_value(value: Any) -> str:
    """A field as stripped text ('' for missing); JSON numbers become their text."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()
