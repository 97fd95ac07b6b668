"""CSV files as blocks of records, streaming, with exact line numbers and recovery.

Lines end at LF, CRLF or a lone CR. Lines without a quote character are split with
`str.split` (the same fields the csv module gives, ~3x faster); lines with quotes go through
the csv module (strict), one record at a time under two limits:

- a record may span at most `max_lines` physical lines (1 for interaction files, whose fields
  never hold a newline; unlimited for book files, whose descriptions may) and at most
  `max_record_bytes` bytes;
- a record that spans several lines must have the header's number of fields.

A record that breaks a limit, ends inside a quote at the end of the file, or is malformed in
any other way is reported as an error of its first line (naming the field where its quote
opened), and reading resumes at the very next line, so a stray quote costs one row, never the
rest of the file. This is what DuckDB (`ignore_errors`, `max_line_size`) and pyarrow
(`newlines_in_values=False`) do for one-line records; PostgreSQL's COPY and pandas stop at the
first unterminated quote instead.
"""

from __future__ import annotations

import csv
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from bookrec.errors import InputError
from bookrec.readers.records import Record, has_surrogates
from bookrec.readers.sources import CheckedStream, open_input

MAX_RECORD_BYTES = 1 << 20
ProgressCallback = Callable[[int, int], None]


class Block:
    """Consecutive CSV records: fields per row (None where the row could not be read, with
    its error in `errors` and its first line's text in `raws`) and the last line number of
    each row. Undecodable bytes arrive as lone surrogates (surrogateescape).

    A block split without the csv module may have its fields as columns; its rows and line
    numbers are made from them only when asked for."""

    def __init__(
        self,
        rows: list[list[str] | None] | None,
        ends: list[int] | None,
        first_line: int,
        delimiter: str = ",",
        *,
        columns: list[list[str]] | None = None,
        errors: dict[int, tuple[str, str]] | None = None,
        raws: dict[int, str] | None = None,
    ) -> None:
        self._rows = rows
        self._ends = ends
        self.first_line = first_line
        self.delimiter = delimiter
        self.columns = columns
        self.errors = errors or {}  # row index -> (field, reason)
        self.raws = raws or {}

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

    def record(self, index: int, header: list[str]) -> Record | None:
        """The slow, exact view of one row; None for a blank line."""
        row = self.rows[index]
        line, raw = self.start(index), self.raw(index)
        if row is None:
            field, reason = self.errors[index]
            return Record(line, {}, raw, bad_shape=reason, bad_field=field)
        if not row or (len(row) == 1 and not row[0].strip()):
            return None
        shape, field = None, ""
        if len(row) != len(header):
            shape = f"expected {len(header)} fields, found {len(row)}"
            field = header[len(row)] if len(row) < len(header) else ""
        joined = "".join(row)
        plain = "\x00" not in joined and not has_surrogates(joined)
        values = dict(zip(header, row, strict=False))
        return Record(line, values, raw, shape, field, plain_text=plain)

    @property
    def clean(self) -> bool:
        """No row the csv module could not read: the block may be validated column by column."""
        return not self.errors

    def start(self, index: int) -> int:
        return self.ends[index - 1] + 1 if index else self.first_line

    def raw(self, index: int) -> str:
        if index in self.raws:
            return _printable(self.raws[index].rstrip("\r\n"))
        row = self.rows[index]
        if row is None:
            return ""
        out = _Line()
        csv.writer(out, delimiter=self.delimiter, lineterminator="").writerow(row)
        return _printable(out.text)


class _Line:
    text = ""

    def write(self, text: str) -> None:
        self.text += text


def _printable(text: str) -> str:
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


class _TooLong:
    """Stands for a line longer than the limit among chunks."""


class _Chunks:
    """Chunks of whole lines of a binary stream; an over-long line comes as TOO_LONG."""

    TOO_LONG = _TooLong()

    def __init__(self, stream: CheckedStream, chunk_bytes: int, max_line_bytes: int) -> None:
        self.stream = stream
        self.chunk_bytes = chunk_bytes
        self.max_line_bytes = max_line_bytes
        self.pending = b""
        self.eof = False

    def first_line(self) -> bytes | None:
        """The first line (with its line end); None when it is longer than the limit."""
        while not self.eof:
            end = _line_end(self.pending)
            if end is not None:
                line, self.pending = self.pending[:end], self.pending[end:]
                return line
            if len(self.pending) > self.max_line_bytes:
                return None
            self._fill()
        line, self.pending = self.pending, b""
        return line

    def _fill(self) -> None:
        data = self.stream.read(self.chunk_bytes)
        if data:
            self.pending += data
        else:
            self.eof = True

    def __iter__(self) -> Iterator[bytes | _TooLong]:
        while True:
            if not self.eof:
                self._fill()
            data = self.pending
            if self.eof:
                self.pending = b""
                if data:
                    yield data
                return
            hold = data.endswith(b"\r")  # perhaps the first half of a CRLF
            body = data[:-1] if hold else data
            cut = max(body.rfind(b"\n"), body.rfind(b"\r")) + 1
            if cut:
                self.pending = data[cut:]
                yield data[:cut]
            if len(self.pending) > self.max_line_bytes:
                yield self.TOO_LONG
                self._skip_line()

    def _skip_line(self) -> None:
        """Drop the rest of an over-long line, through its line end."""
        while True:
            end = _line_end(self.pending)
            if end is not None:
                self.pending = self.pending[end:]
                return
            self.pending = self.pending[-1:] if self.pending.endswith(b"\r") else b""
            self._fill()
            if self.eof:
                self.pending = b""
                return


def _line_end(data: bytes) -> int | None:
    """The index after the first line end of data, None if data holds no complete line."""
    lf, cr = data.find(b"\n"), data.find(b"\r")
    if cr < 0 or (0 <= lf < cr):
        return lf + 1 if lf >= 0 else None
    if cr + 1 == len(data):
        return None  # a CR at the end: a CRLF or not, the next read tells
    return cr + 2 if data[cr + 1 : cr + 2] == b"\n" else cr + 1


def count_lines(chunk: bytes) -> int:
    if b"\r" not in chunk:
        return chunk.count(b"\n") + (not chunk.endswith(b"\n"))
    return len(chunk.splitlines())


def has_long_line(chunk: bytes, max_bytes: int) -> bool:
    if len(chunk) <= max_bytes:
        return False
    ends = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == ord("\n"))
    longest = np.diff(ends, prepend=-1, append=len(chunk) - 1).max()
    return bool(longest > max_bytes)


def _needs_csv_module(data: bytes) -> bool:
    """A quote, or a carriage return that does not end a CRLF."""
    return b'"' in data or data.count(b"\r") != data.count(b"\r\n")


def csv_blocks(
    path: Path,
    on_progress: ProgressCallback | None = None,
    block_rows: int = 20_000,
    *,
    max_lines: int | None = 1,
    max_record_bytes: int = MAX_RECORD_BYTES,
) -> tuple[list[str], Iterator[Block]]:
    """The header and blocks of records of a CSV file, streaming (see the module's doc)."""
    stream = open_input(path)
    total = path.stat().st_size
    delimiter = "\t" if path.name.lower().removesuffix(".gz").endswith(".tsv") else ","
    chunks = _Chunks(stream, max(block_rows, 1) * 64, max_record_bytes)
    try:
        header = _header(path, chunks.first_line(), delimiter, max_record_bytes)
    except BaseException:
        stream.close()
        raise
    limits = _Limits(delimiter, header, max_lines, max_record_bytes)
    if csv.field_size_limit() < max_record_bytes:
        csv.field_size_limit(max_record_bytes)

    def blocks() -> Iterator[Block]:
        with stream:
            line = 2
            chunk_iter = iter(chunks)
            for chunk in chunk_iter:
                if chunk is _Chunks.TOO_LONG:
                    yield _too_long_block(line, delimiter, max_record_bytes)
                    line += 1
                elif not _needs_csv_module(chunk) and not has_long_line(chunk, max_record_bytes):
                    yield _split_block(chunk, line, delimiter, len(header))
                    line += count_lines(chunk)
                elif max_lines == 1:  # records end at line ends: each chunk stands alone
                    yield from _record_blocks(_lines([chunk]), line, limits, block_rows)
                    line += count_lines(chunk)
                else:  # records may span chunks: the csv module reads the rest
                    rest = _lines(_chain(chunk, chunk_iter))
                    yield from _record_blocks(rest, line, limits, block_rows, progress)
                    return
                progress()

    def progress() -> None:
        if on_progress:
            on_progress(stream.position(), total)

    return header, blocks()


def _chain(first: bytes, rest: Iterator[bytes | _TooLong]) -> Iterator[bytes | _TooLong]:
    yield first
    yield from rest


TOO_LONG_LINE = "\x00too long\x00"  # stands for an over-long line among decoded lines


def _lines(chunks: Iterator[bytes | _TooLong]) -> Iterator[str]:
    """Decoded lines (str.splitlines would also split at form feeds and the like)."""
    for chunk in chunks:
        if chunk is _Chunks.TOO_LONG:
            yield TOO_LONG_LINE
        else:
            for line in chunk.splitlines(keepends=True):
                yield line.decode("utf-8", "surrogateescape")


def _header(path: Path, first: bytes | None, delimiter: str, max_bytes: int) -> list[str]:
    if first is None:
        raise InputError(f"{path.name}:1: the header line is longer than {_size(max_bytes)}")
    text = first.decode("utf-8-sig", "surrogateescape")
    if not first:
        raise InputError(f"{path.name}: the file is empty")
    if not text.strip():
        raise InputError(f"{path.name}:1: the header line is empty")
    if has_surrogates(text):
        raise InputError(f"{path.name}:1: the header is not valid UTF-8")
    if "\x00" in text:
        raise InputError(f"{path.name}:1: the header contains a NUL character")
    problem = quote_problem(text, delimiter)
    if problem is not None:
        raise InputError(f"{path.name}:1: cannot read the header: {problem[1]}")
    return [name.strip() for name in next(csv.reader([text], delimiter=delimiter))]


def _size(n_bytes: int) -> str:
    return f"{n_bytes >> 20} MiB" if n_bytes % (1 << 20) == 0 else f"{n_bytes:,} bytes"


def _split_block(chunk: bytes, first_line: int, delimiter: str, width: int) -> Block:
    """Whole lines without quotes or lone carriage returns: one field per delimiter."""
    if not chunk.endswith(b"\n"):
        chunk += b"\n"
    try:
        text = chunk.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and b"\x00" not in chunk and _fields_per_line(chunk, delimiter) == {width}:
        flat = text.replace("\r\n", "\n").replace("\n", delimiter).split(delimiter)
        flat.pop()  # after the last line's newline
        columns = [flat[i::width] for i in range(width)]
        return Block(None, None, first_line, delimiter, columns=columns)
    lines = chunk.decode("utf-8", "surrogateescape").replace("\r\n", "\n").split("\n")
    lines.pop()
    rows: list[list[str] | None] = [line.split(delimiter) if line else [] for line in lines]
    return Block(rows, None, first_line, delimiter)


def _fields_per_line(chunk: bytes, delimiter: str) -> set[int]:
    """The distinct numbers of fields of the lines of chunk (which ends with a newline)."""
    data = np.frombuffer(chunk, dtype=np.uint8)
    line_ends = np.flatnonzero(data == ord("\n"))
    separators = np.flatnonzero(data == ord(delimiter))
    before_each_end = np.searchsorted(separators, line_ends)
    return set((np.diff(before_each_end, prepend=0) + 1).tolist())


def _too_long_block(line: int, delimiter: str, max_bytes: int) -> Block:
    reason = f"line longer than {_size(max_bytes)}"
    return Block([None], [line], line, delimiter, errors={0: ("", reason)}, raws={0: ""})


class _Limits:
    def __init__(
        self, delimiter: str, header: list[str], max_lines: int | None, max_bytes: int
    ) -> None:
        self.delimiter = delimiter
        self.header = header
        self.max_lines = max_lines
        self.max_bytes = max_bytes

    def field_name(self, index: int) -> str:
        return self.header[index] if index < len(self.header) else f"field {index + 1}"


class _RecordTooLong(Exception):
    pass


class _LineTooLong(Exception):
    pass


class _Feed:
    """The lines the csv reader reads: first any replayed after a failed record, then new
    ones; remembers the lines of the current record and stops it at the limits."""

    def __init__(self, lines: Iterator[str], limits: _Limits) -> None:
        self.lines = lines
        self.limits = limits
        self.replay: deque[str] = deque()
        self.record: list[str] = []
        self.size = 0

    def __iter__(self) -> _Feed:
        return self

    def __next__(self) -> str:
        if self.record and len(self.record) == self.limits.max_lines:
            raise _RecordTooLong
        line = self.replay.popleft() if self.replay else next(self.lines)
        if line is TOO_LONG_LINE:
            if self.record:
                self.replay.appendleft(line)
                raise _RecordTooLong
            self.record.append(line)
            raise _LineTooLong
        self.record.append(line)
        self.size += len(line)
        if self.size > self.limits.max_bytes:
            raise _LineTooLong if len(self.record) == 1 else _RecordTooLong
        return line

    def retry_after_first(self) -> None:
        """Give back every line of the failed record but its first."""
        self.replay.extendleft(reversed(self.record[1:]))
        self.next_record()

    def next_record(self) -> None:
        self.record = []
        self.size = 0


def _record_blocks(
    lines: Iterator[str],
    first_line: int,
    limits: _Limits,
    block_rows: int,
    progress: Callable[[], None] | None = None,
) -> Iterator[Block]:
    rows: list[list[str] | None] = []
    ends: list[int] = []
    errors: dict[int, tuple[str, str]] = {}
    raws: dict[int, str] = {}
    start = first_line
    for line, n_lines, fields, problem in _records(lines, first_line, limits):
        if problem is not None:
            errors[len(rows)] = problem[1:]
            raws[len(rows)] = problem[0]
        rows.append(fields)
        ends.append(line + n_lines - 1)
        if len(rows) >= block_rows:
            yield Block(rows, ends, start, limits.delimiter, errors=errors, raws=raws)
            start = ends[-1] + 1
            rows, ends, errors, raws = [], [], {}, {}
            if progress:
                progress()
    if rows:
        yield Block(rows, ends, start, limits.delimiter, errors=errors, raws=raws)


def _records(
    lines: Iterator[str], first_line: int, limits: _Limits
) -> Iterator[tuple[int, int, list[str] | None, tuple[str, str, str] | None]]:
    """(first line, lines spanned, fields or None, None or (raw, field, reason)) per record."""
    feed = _Feed(lines, limits)
    reader = csv.reader(feed, delimiter=limits.delimiter, strict=True)
    line = first_line
    width = len(limits.header)
    while True:
        feed.next_record()
        try:
            fields = next(reader)
        except StopIteration:
            return
        except _LineTooLong:
            raw = feed.record[0][:200] if feed.record[0] is not TOO_LONG_LINE else ""
            problem = (raw, "", f"line longer than {_size(limits.max_bytes)}")
        except _RecordTooLong:
            if limits.max_lines == 1:
                within = "on its line (fields of this file never span lines)"
            else:
                within = f"within {_size(limits.max_bytes)}"
            problem = _unterminated(feed.record, limits, within)
        except csv.Error as exc:
            if "unexpected end of data" in str(exc):
                problem = _unterminated(feed.record, limits, "before the end of the file")
            else:
                problem = _malformed(feed.record, limits, str(exc))
        else:
            if len(feed.record) <= 1 or len(fields) == width:
                yield line, len(feed.record), fields, None
                line += len(feed.record)
                continue
            problem = _spanning(feed.record, limits, len(fields))
        yield line, 1, None, problem
        line += 1
        feed.retry_after_first()


def _unterminated(record: list[str], limits: _Limits, within: str) -> tuple[str, str, str]:
    first = record[0]
    problem = quote_problem(first, limits.delimiter)
    index = problem[0] if problem else 0
    return first, limits.field_name(index), f"unterminated quote: no closing quote {within}"


def _malformed(record: list[str], limits: _Limits, message: str) -> tuple[str, str, str]:
    first = record[0]
    problem = quote_problem(first, limits.delimiter)
    if len(record) > 1:
        index = problem[0] if problem else 0
        reason = (
            f"unbalanced quote: the quoted field opened here runs over {len(record)} lines"
            f" into malformed CSV ({message})"
        )
        return first, limits.field_name(index), reason
    if problem is None:
        if "field limit" in message:
            return first, "", f"a field longer than {_size(limits.max_bytes)}"
        return first, "", f"malformed CSV: {message}"
    return first, limits.field_name(problem[0]), problem[1]


def _spanning(record: list[str], limits: _Limits, n_fields: int) -> tuple[str, str, str]:
    first = record[0]
    problem = quote_problem(first, limits.delimiter)
    index = problem[0] if problem else 0
    return (
        first,
        limits.field_name(index),
        f"unbalanced quote: the quoted field opened here runs over {len(record)} lines"
        f" and leaves {n_fields} fields, expected {len(limits.header)}",
    )


def quote_problem(line: str, delimiter: str) -> tuple[int, str] | None:
    """The field index and reason of the first quoting error of one line, as the csv
    module's strict mode sees them: text after a closing quote, or a quote still open at the
    end of the line."""
    text = line.rstrip("\r\n")
    field = 0
    at_start, in_quotes, after_quote = True, False, False
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if in_quotes:
            if char == '"':
                if i + 1 < n and text[i + 1] == '"':
                    i += 2
                    continue
                in_quotes, after_quote = False, True
            i += 1
            continue
        if char == delimiter:
            field += 1
            at_start, after_quote = True, False
        elif after_quote:
            return field, 'text after a closing quote (a quote inside quotes is written "")'
        elif char == '"' and at_start:
            in_quotes, at_start = True, False
        else:
            at_start = False
        i += 1
    if in_quotes:
        return field, "unterminated quote"
    return None
