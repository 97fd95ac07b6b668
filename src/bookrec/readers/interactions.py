"""Interaction files: CSV or JSONL events, or goodbooks' user_id,book_id,rating ratings.

Columns: user_id (or user), book_id (or book) — external ids; event (view, click, like, rate,
purchase); rating (1-5, required for rate); timestamp (ISO 8601 or epoch seconds; missing or
empty means the time the ingest started). A file without an event column but with a rating
column (goodbooks ratings.csv) is read as rate events.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bookrec.domain import (
    EVENT_CODES,
    EVENTS,
    RATING_MAX,
    RATING_MIN,
    InteractionBatch,
    InteractionRow,
)
from bookrec.errors import InputError
from bookrec.readers.common import (
    ErrorLog,
    ProgressCallback,
    RowError,
    detect_format,
    jsonl_block_records,
    jsonl_blocks,
)
from bookrec.readers.csvfile import MAX_RECORD_BYTES, Block, csv_blocks, has_long_line
from bookrec.readers.records import (
    InvalidField,
    Record,
    check_record,
    has_surrogates,
    text_value,
)
from bookrec.readers.timestamps import iso_column_seconds

USER_ALIASES = ("user_id", "user")
BOOK_ALIASES = ("book_id", "book")
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC).timestamp()
MAX_FUTURE = 366 * 86400
_RATE = EVENT_CODES["rate"]


def read_interactions(
    path: Path,
    book_ids: dict[str, int],
    errors: ErrorLog,
    now: float,
    batch_size: int = 65_536,
    on_progress: ProgressCallback | None = None,
) -> Iterator[InteractionBatch]:
    """Batches of valid interactions in file order; invalid rows go to errors with file, line
    (row, in Parquet) and field."""
    kind = detect_format(path)
    if kind == "csv":
        header, blocks = csv_blocks(path, on_progress, block_rows=batch_size, max_lines=1)
        _check_header(path, header)
        columns = _Columns(header)
        for block in blocks:
            batch = _fast_block(block, columns, book_ids, now) if block.clean else None
            if batch is None:
                batch = InteractionBatch.from_rows(
                    _exact_block(block, header, book_ids, now, errors)
                )
            if len(batch):
                yield batch
        return
    if kind == "parquet":
        yield from _parquet(path, book_ids, errors, now, batch_size, on_progress)
        return
    for first_line, data in jsonl_blocks(path, on_progress):
        batch = _fast_jsonl(data, book_ids, now)
        if batch is None:
            records = jsonl_block_records(first_line, data)
            yield from _exact_batches(records, book_ids, now, errors, batch_size)
        elif len(batch):
            yield batch


def _fast_jsonl(
    data: bytes | None, book_ids: dict[str, int], now: float
) -> InteractionBatch | None:
    """A block of JSON lines parsed by pyarrow.json and validated column by column; None
    when anything needs the exact path (which names line and field): a line that is not an
    object starting at its first byte (pyarrow.json 26 crashes on a line `null`), a blank or
    over-long line, a value of another type, a NUL, bytes that are not UTF-8, any invalid row."""
    if (
        not data
        or data[:1] != b"{"
        or data.count(b"\n{") != data.count(b"\n") - 1 + (not data.endswith(b"\n"))
    ):
        return None
    if b"\\u0000" in data or has_long_line(data, MAX_RECORD_BYTES):
        return None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    import pyarrow as pa
    import pyarrow.json as pajson

    def parse(schema: pa.Schema | None) -> pa.Table:
        options = pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer")
        read = pajson.ReadOptions(use_threads=False, block_size=len(data) + 1)
        return pajson.read_json(pa.BufferReader(data), read_options=read, parse_options=options)

    try:
        # Times as text, to be read as the exact path reads them (fromisoformat's rules);
        # a null column where there are none, which reads as no time, as their absence does.
        table = parse(pa.schema([("timestamp", pa.string())]))
    except (pa.ArrowException, OSError):
        try:
            table = parse(None)  # epoch seconds as numbers
        except (pa.ArrowException, OSError):
            return None
        kind = table.schema.field("timestamp").type if "timestamp" in table.column_names else None
        if kind is not None and (pa.types.is_timestamp(kind) or pa.types.is_date(kind)):
            return None
    names = table.column_names
    if not any(a in names for a in USER_ALIASES) or not any(a in names for a in BOOK_ALIASES):
        return None
    if sum(a in names for a in USER_ALIASES) > 1 or sum(a in names for a in BOOK_ALIASES) > 1:
        return None  # which alias a row uses is the exact path's business
    batches = table.combine_chunks().to_batches()
    if len(batches) != 1:
        return None
    return _fast_arrow(batches[0], _Columns(names), book_ids, now)


def _exact_batches(
    records: Iterator[Record],
    book_ids: dict[str, int],
    now: float,
    errors: ErrorLog,
    batch_size: int,
) -> Iterator[InteractionBatch]:
    batch: list[InteractionRow] = []
    for record in records:
        row = _checked(record, book_ids, now, errors)
        if row is not None:
            batch.append(row)
        if len(batch) >= batch_size:
            yield InteractionBatch.from_rows(batch)
            batch = []
    if batch:
        yield InteractionBatch.from_rows(batch)


def _parquet(
    path: Path,
    book_ids: dict[str, int],
    errors: ErrorLog,
    now: float,
    batch_size: int,
    on_progress: ProgressCallback | None,
) -> Iterator[InteractionBatch]:
    """Record batches validated column by column; a batch with any invalid row row by row."""
    from bookrec.readers import parquet

    errors.unit = "row"
    names, batches = parquet.parquet_batches(path, batch_size, on_progress)
    _check_header(path, names)
    columns = _Columns(names)
    for first_row, arrow_batch in batches:
        batch = _fast_arrow(arrow_batch, columns, book_ids, now)
        if batch is None:
            records = parquet.batch_records(arrow_batch, first_row, now)
            yield from _exact_batches(records, book_ids, now, errors, batch_size)
        elif len(batch):
            yield batch


def _fast_arrow(
    batch: Any, columns: _Columns, book_ids: dict[str, int], now: float
) -> InteractionBatch | None:
    from bookrec.readers.parquet import number_column, seconds_column, text_column

    n_rows = batch.num_rows
    users = text_column(batch.column(columns.user))
    books = text_column(batch.column(columns.book))
    events = None if columns.event is None else text_column(batch.column(columns.event))
    if users is None or books is None or (columns.event is not None and events is None):
        return None
    ratings = np.full(n_rows, np.nan)
    if columns.rating is not None:
        rating_column = batch.column(columns.rating)
        ratings = number_column(rating_column)
        if ratings is None and (texts := text_column(rating_column)) is not None:
            ratings = _fast_ratings(texts)
        if ratings is None or not _ratings_in_range(ratings):
            return None
    stamps = np.full(n_rows, now)
    if columns.timestamp is not None:
        seconds = seconds_column(batch.column(columns.timestamp), now)
        stamps = _fast_stamps(seconds, now) if isinstance(seconds, list) else seconds
        if stamps is None:
            return None
    return _fast_columns(users, books, events, ratings, stamps, book_ids, now)


def _checked(
    record: Record, book_ids: dict[str, int], now: float, errors: ErrorLog
) -> InteractionRow | None:
    try:
        return _interaction(record, book_ids, now)
    except InvalidField as invalid:
        errors.add(RowError(record.line, invalid.field, invalid.reason, record.raw))
        return None


def _exact_block(
    block: Block, header: list[str], book_ids: dict[str, int], now: float, errors: ErrorLog
) -> list[InteractionRow]:
    """Row by row, naming the line and field of every problem."""
    rows = []
    for index in range(len(block)):
        record = block.record(index, header)
        if record is not None:
            row = _checked(record, book_ids, now, errors)
            if row is not None:
                rows.append(row)
    return rows


class _Columns:
    def __init__(self, header: list[str]) -> None:
        self.width = len(header)
        self.user = next(header.index(a) for a in USER_ALIASES if a in header)
        self.book = next(header.index(a) for a in BOOK_ALIASES if a in header)
        self.event = header.index("event") if "event" in header else None
        self.rating = header.index("rating") if "rating" in header else None
        self.timestamp = header.index("timestamp") if "timestamp" in header else None


def _fast_block(
    block: Block, columns: _Columns, book_ids: dict[str, int], now: float
) -> InteractionBatch | None:
    """A whole block validated column by column; None when any row needs the exact path."""
    fields = block.columns
    if fields is None:
        rows: list = block.rows
        if set(map(len, rows)) != {columns.width}:
            return None
        fields = [list(map(itemgetter(i), rows)) for i in range(columns.width)]
    n_rows = len(fields[0])

    def column(index: int) -> list[str]:
        values = fields[index]
        if " " in (joined := "".join(values)) or "\t" in joined:
            return list(map(str.strip, values))
        return values

    events = None if columns.event is None else column(columns.event)
    ratings = np.full(n_rows, np.nan)
    if columns.rating is not None and (ratings := _fast_ratings(column(columns.rating))) is None:
        return None
    stamps: np.ndarray | None = np.full(n_rows, now)
    if columns.timestamp is not None:
        stamps = _fast_stamps(column(columns.timestamp), now)
    if stamps is None:
        return None
    users, books = column(columns.user), column(columns.book)
    return _fast_columns(users, books, events, ratings, stamps, book_ids, now)


def _fast_columns(
    users: list[str],
    books: list[str],
    events: list[str] | None,
    ratings: np.ndarray,
    stamps: np.ndarray,
    book_ids: dict[str, int],
    now: float,
) -> InteractionBatch | None:
    """The batch of columns already read (ratings NaN where none, events None for a file
    without them), or None when any row needs the exact path."""
    if not all(users) or "\x00" in (joined := "".join(users)) or has_surrogates(joined):
        return None
    book_codes = list(map(book_ids.get, books))
    if None in book_codes:
        return None
    if events is None:
        event_codes = np.full(len(users), _RATE, dtype=np.int8)
    else:
        codes = list(map(EVENT_CODES.get, events))
        if None in codes:
            return None
        event_codes = np.array(codes, dtype=np.int8)
    rated = event_codes == _RATE
    if np.isnan(ratings[rated]).any() or not np.isnan(ratings[~rated]).all():
        return None
    if len(stamps) and (stamps.min() < EARLIEST or stamps.max() > now + MAX_FUTURE):
        return None
    return InteractionBatch(users, np.array(book_codes, dtype=np.int64), event_codes, ratings,
                            stamps)  # fmt: skip


def _fast_ratings(texts: list[str]) -> np.ndarray | None:
    """Ratings (NaN where empty), or None when any is not a number in range."""
    try:
        values = np.array([float(t) if t else math.nan for t in texts], dtype=np.float64)
    except ValueError:
        return None
    if np.isnan(values[[bool(t) for t in texts]]).any():
        return None  # a given "nan"
    return values if _ratings_in_range(values) else None


def _ratings_in_range(values: np.ndarray) -> bool:
    given = values[~np.isnan(values)]
    return bool(((given >= RATING_MIN) & (given <= RATING_MAX)).all())


def _fast_stamps(texts: list[str], now: float) -> np.ndarray | None:
    """Epoch seconds of every text ('' is now), or None when any is not a valid time."""
    if all(texts):
        seconds = iso_column_seconds(texts)
        if seconds is not None:
            return seconds
    try:
        seconds = np.array([_fast_seconds(t, now) for t in texts], dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        return None
    return seconds


def _fast_seconds(text: str, now: float) -> float:
    if not text:
        return now
    if text[0] != "-" and "-" not in text and ":" not in text:
        seconds = float(text)
        if not math.isfinite(seconds):
            raise ValueError(text)
        return seconds
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _check_header(path: Path, header: list[str]) -> None:
    missing = []
    if not any(a in header for a in USER_ALIASES):
        missing.append("user_id")
    if not any(a in header for a in BOOK_ALIASES):
        missing.append("book_id")
    if "event" not in header and "rating" not in header:
        missing.append("event")
    if missing:
        raise InputError(
            f"{path.name}:1: header: missing column {', '.join(missing)}; expected"
            " user_id,book_id,event,rating,timestamp (or goodbooks user_id,book_id,rating);"
            f" found {','.join(header)}"
        )


def _field(values: dict[str, Any], aliases: tuple[str, ...]) -> tuple[str, Any]:
    for name in aliases:
        if name in values:
            return name, values[name]
    return aliases[0], None


def _interaction(record: Record, book_ids: dict[str, int], now: float) -> InteractionRow:
    check_record(record)
    values = record.values

    user_field, user_value = _field(values, USER_ALIASES)
    user = _scalar_text(user_field, user_value)
    if not user:
        raise InvalidField(user_field, "missing")

    book_field, book_value = _field(values, BOOK_ALIASES)
    book = _scalar_text(book_field, book_value)
    if not book:
        raise InvalidField(book_field, "missing")
    book_id = book_ids.get(book)
    if book_id is None:
        raise InvalidField(book_field, f"unknown book {book!r} (ingest books first)")

    event = _scalar_text("event", values.get("event", "rate"))
    if event not in EVENT_CODES:
        if not event:
            raise InvalidField("event", "missing")
        raise InvalidField(
            "event", f"unknown event {event!r} (expected one of {', '.join(EVENTS)})"
        )

    _scalar_text("rating", values.get("rating"))
    rating = _rating(values.get("rating"), event)
    return (user, book_id, event, rating, _timestamp(values.get("timestamp"), now))


def _scalar_text(name: str, value: Any) -> str:
    if isinstance(value, dict | list | bool):
        raise InvalidField(name, f"expected text or a number, found {orjson.dumps(value).decode()}")
    return text_value(value)


def _rating(value: Any, event: str) -> float | None:
    text = text_value(value)
    if not text:
        if event == "rate":
            raise InvalidField("rating", "missing (required for rate events)")
        return None
    if event != "rate":
        raise InvalidField("rating", f"{text} on a {event} event (only rate events have one)")
    try:
        rating = float(text)
    except ValueError:
        raise InvalidField("rating", f"not a number: {text!r}") from None
    if not RATING_MIN <= rating <= RATING_MAX:
        raise InvalidField("rating", f"{text} is out of range {RATING_MIN:g}-{RATING_MAX:g}")
    return rating


def _timestamp(value: Any, now: float) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        text = text_value(value)
        if not text:
            return now
        try:
            seconds = float(text)
        except ValueError:
            seconds = _iso_seconds(text)
    if not math.isfinite(seconds) or seconds < EARLIEST or seconds > now + MAX_FUTURE:
        raise InvalidField("timestamp", f"out of range: {value!r}")
    return seconds


def _iso_seconds(text: str) -> float:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidField("timestamp", f"not ISO 8601 or epoch seconds: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
