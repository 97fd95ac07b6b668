"""Parquet input, streamed by record batch (pyarrow, imported only here).

Rows are numbered from 1 in file order across row groups; errors name them as
`events.parquet:row 17: book_id: …` (a Parquet file has no lines). Columns are taken by
name as in CSV; their values by type: strings (also dictionary-encoded), integers, floats,
timestamps with or without a time zone (naive ones are UTC, as in CSV), dates, nulls.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from bookrec.errors import InputError
from bookrec.readers.records import Record
from bookrec.readers.sources import check_readable

if TYPE_CHECKING:
    import pyarrow as pa

ProgressCallback = Callable[[int, int], None]


def parquet_batches(
    path: Path, batch_size: int, on_progress: ProgressCallback | None = None
) -> tuple[list[str], Iterator[tuple[int, pa.RecordBatch]]]:
    """The column names and (number of the first row, batch) of a Parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    check_readable(path)
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path.name}: not a readable Parquet file ({_first_line(exc)})") from None
    names = [name.strip() for name in parquet.schema_arrow.names]
    total_rows = parquet.metadata.num_rows or 1
    size = path.stat().st_size

    def batches() -> Iterator[tuple[int, pa.RecordBatch]]:
        first = 1
        stream = parquet.iter_batches(batch_size=batch_size)
        with parquet:
            while True:
                try:
                    batch = next(stream)
                except StopIteration:
                    return
                except (pa.ArrowException, OSError) as exc:
                    raise InputError(
                        f"{path.name}: damaged Parquet file ({_first_line(exc)}),"
                        f" after row {first - 1:,}"
                    ) from None
                batch = batch.rename_columns(names)
                yield first, batch
                first += batch.num_rows
                if on_progress:
                    on_progress(int(size * (first - 1) / total_rows), size)

    return names, batches()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def text_column(column: pa.Array) -> list[str] | None:
    """Stripped text of every value ('' for null), or None for a type that has no text."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.dictionary_decode()
        kind = column.type
    if pa.types.is_null(kind):
        return [""] * len(column)
    if pa.types.is_integer(kind):
        return column.cast(pa.string()).fill_null("").to_pylist()
    if pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return [_number_text(v) for v in column.to_pylist()]
    if pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        column = column.cast(pa.string())
        kind = column.type
    if not pa.types.is_string(kind):
        return None
    column = pc.utf8_trim_whitespace(column).fill_null("")
    return column.to_pylist()


def _number_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def number_column(column: pa.Array) -> np.ndarray | None:
    """float64 values (NaN for null) of a numeric column; None for other types or when a
    value is NaN itself (left to the exact path)."""
    import pyarrow as pa

    kind = column.type
    if pa.types.is_null(kind):
        return np.full(len(column), np.nan)
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)):
        return None
    values = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
    if np.isnan(values[np.asarray(column.is_valid())]).any():
        return None
    return values


_UNIT_SECONDS = {"s": 1, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


def seconds_column(column: pa.Array, now: float) -> np.ndarray | list[str] | None:
    """Epoch seconds (now for null) of a timestamp, date or numeric column; the text of a
    string column (for the caller to read as CSV text); None for other types."""
    import pyarrow as pa

    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.dictionary_decode()
        kind = column.type
    valid = np.asarray(column.is_valid())
    if pa.types.is_null(kind):
        return np.full(len(column), now)
    if pa.types.is_timestamp(kind):
        raw = column.cast(pa.int64()).to_numpy(zero_copy_only=False)
        seconds = raw.astype(np.float64) * _UNIT_SECONDS[kind.unit]
    elif pa.types.is_date(kind):
        days = column.cast(pa.date32()).cast(pa.int32()).to_numpy(zero_copy_only=False)
        seconds = days.astype(np.float64) * 86_400
    elif (numbers := number_column(column)) is not None:
        seconds = numbers
    else:
        return text_column(column)
    return np.where(valid, seconds, now)


def batch_records(batch: pa.RecordBatch, first_row: int, now: float) -> Iterator[Record]:
    """Each row of batch as a Record of Python values (timestamps as epoch seconds)."""
    import pyarrow as pa

    columns: dict[str, list[Any]] = {}
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        kind = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
        if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
            seconds = np.asarray(seconds_column(column, now)).tolist()
            valid = column.is_valid().to_pylist()
            columns[name] = [s if ok else None for s, ok in zip(seconds, valid, strict=True)]
        else:
            columns[name] = [_plain(v) for v in column.to_pylist()]
    names = list(columns)
    for index, values in enumerate(zip(*columns.values(), strict=True)):
        row = dict(zip(names, values, strict=True))
        raw = orjson.dumps(row, default=str).decode()
        yield Record(first_row + index, row, raw)


def _plain(value: Any) -> Any:
    """A Parquet value as a JSON-friendly Python value."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
