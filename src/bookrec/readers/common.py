"""What the book and interaction readers share: opening, decoding, line numbers, reports."""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson

from bookrec.errors import InputError, InvalidRowsError

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
        raise InvalidRowsError(
            self.path.name,
            self.count,
            what,
            [e.describe(self.path) for e in self.errors[:MAX_REPORTED_ERRORS]],
        )

    def write_rejects(self, target: Path) -> None:
        with target.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(["line", "field", "reason", "row"])
            for error in self.errors:
                writer.writerow([error.line, error.field, error.reason, error.raw.rstrip("\r\n")])


class InvalidField(Exception):
    """One row's problem: the field (empty for the whole row) and why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


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
    """Decoded lines of a binary file, remembering which ones were not valid UTF-8.

    Keeps the lines read since the last `take_lines()`, so a block of records can show the
    raw text of any of its records."""

    def __init__(self, binary: IO[bytes], on_progress: ProgressCallback | None, total: int):
        self.binary = binary
        self.bad_lines: set[int] = set()
        self.lines: list[str] = []
        self.first = 1  # line number of self.lines[0]
        self.number = 0
        self.on_progress = on_progress
        self.total = total

    def __iter__(self) -> Iterator[str]:
        progress_every = 1 << 16
        append = self.lines.append
        for number, data in enumerate(self.binary, start=1):
            self.number = number
            try:
                text = data.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError:
                self.bad_lines.add(number)
                text = data.decode("utf-8", errors="replace")
            append(text)
            if self.on_progress and number % progress_every == 0:
                self.on_progress(_position(self.binary), self.total)
            yield text

    def take_lines(self) -> tuple[int, list[str]]:
        """The lines read since the last call, and the number of the first of them."""
        first, lines = self.first, self.lines[:]
        self.lines.clear()
        self.first = self.number + 1
        return first, lines


def _position(binary: IO[bytes]) -> int:
    inner = getattr(binary, "fileobj", None)
    return (inner or binary).tell()


class Block:
    """Consecutive CSV records: fields per row (None where the CSV itself is malformed) and
    the last line number of each row. Undecodable bytes arrive as lone surrogates
    (surrogateescape), so a row can tell that it had some.

    A block read without the csv module (see csv_blocks) has its fields as columns; its
    rows and line numbers are made from them only when asked for."""

    def __init__(
        self,
        rows: list[list[str] | None] | None,
        ends: list[int] | None,
        errors: dict[int, str],
        first_line: int,
        delimiter: str = ",",
        columns: list[list[str]] | None = None,
    ) -> None:
        self._rows = rows
        self._ends = ends
        self.errors = errors  # row index -> CSV error
        self.first_line = first_line
        self.delimiter = delimiter
        self.columns = columns

    @property
    def rows(self) -> list[list[str] | None]:
        if self._rows is None:
            self._rows = [list(row) for row in zip(*self.columns or [], strict=True)]
        return self._rows

    @property
    def ends(self) -> list[int]:
        if self._ends is None:
            self._ends = list(range(self.first_line, self.first_line + len(self)))
        return self._ends

    def __len__(self) -> int:
        if self._rows is None and self.columns is not None:
            return len(self.columns[0])
        return len(self.rows)

    def start(self, index: int) -> int:
        return self.ends[index - 1] + 1 if index else self.first_line

    def raw(self, index: int) -> str:
        row = self.rows[index]
        if row is None:
            return ""
        out = io.StringIO()
        csv.writer(out, delimiter=self.delimiter, lineterminator="").writerow(row)
        return out.getvalue().encode("utf-8", "surrogateescape").decode("utf-8", "replace")

    def undecodable(self, index: int) -> bool:
        row = self.rows[index]
        return row is not None and has_surrogates("".join(row))

    @property
    def clean(self) -> bool:
        return not self.errors

    def record(self, index: int, header: list[str]) -> Record | None:
        """The slow, exact view of one row; None for a blank line."""
        row = self.rows[index]
        line, raw = self.start(index), self.raw(index)
        if row is None:
            return Record(line, {}, raw, bad_shape=f"malformed CSV: {self.errors[index]}")
        if not row or (len(row) == 1 and not row[0].strip()):
            return None
        shape = None
        if len(row) != len(header):
            shape = f"expected {len(header)} fields, found {len(row)}"
        values = dict(zip(header, row, strict=False))
        return Record(line, values, raw, self.undecodable(index), shape)


def has_surrogates(text: str) -> bool:
    """Whether text holds bytes that were not UTF-8 (decoded with surrogateescape)."""
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def csv_blocks(
    path: Path, on_progress: ProgressCallback | None = None, block_rows: int = 20_000
) -> tuple[list[str], Iterator[Block]]:
    """The header and blocks of records of a CSV file, streaming.

    Lines without a quote character are split without the csv module (str.split gives the
    same fields, ~3x faster); from the first block of lines that has a quote (a field may
    then span lines) or a lone carriage return, the csv module reads the rest."""
    binary = open_binary(path)
    total = path.stat().st_size
    delimiter = "\t" if path.name.lower().removesuffix(".gz").endswith(".tsv") else ","
    chunk_bytes = max(block_rows, 1) * 64  # bytes of about block_rows typical lines

    def progress() -> None:
        if on_progress:
            on_progress(_position(binary), total)

    first_line = binary.readline()
    if _needs_csv_module(first_line):
        reader = _csv_module_reader(_Rejoined(first_line, binary), delimiter, "utf-8-sig")
        try:
            fields = next(reader)
        except StopIteration:
            fields = []
        except csv.Error as exc:
            binary.close()
            raise InputError(f"{path.name}:1: cannot read the header: {exc}") from None
        header = _header(path, fields, binary)
        return header, _csv_module_blocks(reader, 0, delimiter, block_rows, binary, progress)
    text = first_line.decode("utf-8-sig", "surrogateescape").rstrip("\r\n")
    header = _header(path, text.split(delimiter) if first_line else [], binary)

    def blocks() -> Iterator[Block]:
        with binary:
            line = 2
            pending = b""
            while True:
                data = binary.read(chunk_bytes)
                if data:
                    data = pending + data
                    cut = data.rfind(b"\n") + 1
                    if not cut:  # a line longer than a chunk: read on
                        pending = data
                        continue
                    chunk, pending = data[:cut], data[cut:]
                elif pending:
                    chunk, pending = pending, b""
                else:
                    return
                if _needs_csv_module(chunk):
                    reader = _csv_module_reader(_Rejoined(chunk + pending, binary), delimiter)
                    yield from _csv_module_blocks(
                        reader, line - 1, delimiter, block_rows, binary, progress
                    )
                    return
                yield _split_block(chunk, line, delimiter, len(header))
                line += chunk.count(b"\n") + (not chunk.endswith(b"\n"))
                progress()

    return header, blocks()


def _needs_csv_module(data: bytes) -> bool:
    """A quote (a field may span lines), or a carriage return that does not end a line."""
    return b'"' in data or data.count(b"\r") != data.count(b"\r\n")


def _header(path: Path, fields: list[str], binary: IO[bytes]) -> list[str]:
    header = [name.strip() for name in fields]
    problem = None
    if not fields:
        problem = f"{path.name}: the file is empty"
    elif has_surrogates("".join(header)):
        problem = f"{path.name}:1: the header is not valid UTF-8"
    if problem:
        binary.close()
        raise InputError(problem)
    return header


def _split_block(chunk: bytes, first_line: int, delimiter: str, width: int) -> Block:
    """Whole lines without quotes or lone carriage returns: one field per delimiter."""
    if not chunk.endswith(b"\n"):
        chunk += b"\n"
    try:
        text = chunk.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and _fields_per_line(chunk, delimiter) == {width}:
        flat = text.replace("\r\n", "\n").replace("\n", delimiter).split(delimiter)
        flat.pop()  # after the last line's newline
        return Block(None, None, {}, first_line, delimiter, [flat[i::width] for i in range(width)])
    lines = chunk.decode("utf-8", "surrogateescape").replace("\r\n", "\n").split("\n")
    lines.pop()
    rows: list[list[str] | None] = [line.split(delimiter) if line else [] for line in lines]
    return Block(rows, None, {}, first_line, delimiter)


def _fields_per_line(chunk: bytes, delimiter: str) -> set[int]:
    """The distinct numbers of fields of the lines of chunk (which ends with a newline)."""
    data = np.frombuffer(chunk, dtype=np.uint8)
    line_ends = np.flatnonzero(data == ord("\n"))
    separators = np.flatnonzero(data == ord(delimiter))
    before_each_end = np.searchsorted(separators, line_ends)
    return set((np.diff(before_each_end, prepend=0) + 1).tolist())


class _Rejoined(io.RawIOBase):
    """Bytes already read, then the rest of the stream they came from."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self.head = head
        self.rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        if self.head:
            n = min(len(buffer), len(self.head))
            buffer[:n], self.head = self.head[:n], self.head[n:]
            return n
        data = self.rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _csv_module_reader(stream: io.RawIOBase, delimiter: str, encoding: str = "utf-8"):
    text = io.TextIOWrapper(
        io.BufferedReader(stream), encoding=encoding, errors="surrogateescape", newline=""
    )
    return csv.reader(text, delimiter=delimiter, strict=True)


def _csv_module_blocks(
    reader: Any,
    offset: int,
    delimiter: str,
    block_rows: int,
    binary: IO[bytes],
    progress: Callable[[], None],
) -> Iterator[Block]:
    """Blocks of the records the csv reader gives; line numbers are the reader's + offset."""
    with binary:
        done = False
        while not done:
            first = offset + reader.line_num + 1
            rows: list[list[str] | None] = []
            ends: list[int] = []
            errors: dict[int, str] = {}
            append_row, append_end = rows.append, ends.append
            while len(rows) < block_rows:
                try:
                    for row in reader:
                        append_row(row)
                        append_end(offset + reader.line_num)
                        if len(rows) >= block_rows:
                            break
                    else:
                        done = True
                    break
                except csv.Error as exc:
                    errors[len(rows)] = str(exc)
                    append_row(None)
                    append_end(offset + reader.line_num)
            progress()
            if rows:
                yield Block(rows, ends, errors, first, delimiter)


def iter_records(
    path: Path, on_progress: ProgressCallback | None = None
) -> tuple[list[str], Iterator[Record]]:
    """The header (field names) and an iterator of records of a CSV or JSONL file."""
    if detect_format(path) == "csv":
        header, blocks = csv_blocks(path, on_progress)

        def records() -> Iterator[Record]:
            for block in blocks:
                for index in range(len(block.rows)):
                    record = block.record(index, header)
                    if record is not None:
                        yield record

        return header, records()
    source = LineSource(open_binary(path), on_progress, path.stat().st_size)
    return [], _jsonl_records(source)


def _jsonl_records(source: LineSource) -> Iterator[Record]:
    with source.binary:
        for text in source:
            source.take_lines()
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


def text_value(value: Any) -> str:
    """A field as stripped text ('' for missing); JSON numbers become their text."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def check_record(record: Record) -> None:
    """InvalidField when the row itself is unreadable: undecodable bytes or a bad shape."""
    if record.undecodable:
        raise InvalidField("", "undecodable bytes (the file must be UTF-8)")
    if record.bad_shape:
        raise InvalidField("", record.bad_shape)
