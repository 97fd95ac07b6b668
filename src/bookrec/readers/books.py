"""Book files: goodbooks-10k books.csv, or a generic CSV/JSONL with the documented columns.

Generic columns: external_id (or id, book_id), title (required), authors, description, isbn,
year, language, tags ('|'-separated in CSV, a list in JSONL); any other column is kept in the
book's metadata.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bookrec.domain import BookRecord
from bookrec.errors import InputError
from bookrec.readers.common import (
    ErrorLog,
    ProgressCallback,
    RowError,
    detect_format,
    iter_records,
)
from bookrec.readers.csvfile import MAX_RECORD_BYTES
from bookrec.readers.records import InvalidField, Record, check_record, text_value

GOODBOOKS_MARKERS = {"book_id", "goodreads_book_id", "original_title", "language_code"}
ID_ALIASES = ("external_id", "id", "book_id")
KNOWN = {"title", "authors", "description", "isbn", "year", "language", "tags", *ID_ALIASES}
GOODBOOKS_MAPPED = {
    "book_id", "title", "authors", "isbn", "isbn13", "original_publication_year", "language_code",
}  # fmt: skip


def read_books(
    path: Path,
    errors: ErrorLog,
    batch_size: int = 2000,
    on_progress: ProgressCallback | None = None,
    max_record_bytes: int = MAX_RECORD_BYTES,
) -> Iterator[list[BookRecord]]:
    """Batches of valid books; every invalid row goes to errors (with file, line, field).
    A CSV record may span lines (a quoted description with newlines) up to max_record_bytes."""
    if detect_format(path) == "parquet":
        errors.unit = "row"
    header, records = iter_records(path, on_progress, max_record_bytes=max_record_bytes)
    goodbooks = set(header) >= GOODBOOKS_MARKERS
    has_columns = any(alias in header for alias in ID_ALIASES) and "title" in header
    if header and not goodbooks and not has_columns:
        raise InputError(
            f"{path.name}:1: header: needs an external_id (or id, book_id) and a title"
            f" column; found {', '.join(header) or 'nothing'}"
        )
    batch: list[BookRecord] = []
    for record in records:
        try:
            book = _goodbooks_book(record) if goodbooks else _generic_book(record)
        except InvalidField as invalid:
            errors.add(RowError(record.line, invalid.field, invalid.reason, record.raw))
            continue
        batch.append(book)
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def _text(values: dict[str, Any], name: str) -> str | None:
    return text_value(values.get(name)) or None


def _year(values: dict[str, Any], name: str) -> int | None:
    text = _text(values, name)
    if text is None:
        return None
    try:
        number = float(text)
    except ValueError:
        raise InvalidField(name, f"not a year: {text!r}") from None
    if not number.is_integer() or not -5000 <= number <= 3000:
        raise InvalidField(name, f"not a year: {text!r}")
    return int(number)


def _goodbooks_book(record: Record) -> BookRecord:
    check_record(record)
    values = record.values
    external_id = _text(values, "book_id")
    if not external_id:
        raise InvalidField("book_id", "missing")
    title = _text(values, "title") or _text(values, "original_title")
    if not title:
        raise InvalidField("title", "missing")
    metadata = {k: _number_or_text(v) for k, v in values.items() if k not in GOODBOOKS_MAPPED}
    return BookRecord(
        external_id=external_id,
        title=title,
        authors=_text(values, "authors"),
        isbn=_text(values, "isbn"),
        year=_year(values, "original_publication_year"),
        language=_text(values, "language_code"),
        metadata={k: v for k, v in metadata.items() if v not in (None, "")},
    )


def _generic_book(record: Record) -> BookRecord:
    check_record(record)
    values = record.values
    id_field = next((a for a in ID_ALIASES if a in values), "external_id")
    external_id = _text(values, id_field)
    if not external_id:
        raise InvalidField(id_field, "missing")
    title = _text(values, "title")
    if not title:
        raise InvalidField("title", "missing")
    return BookRecord(
        external_id=external_id,
        title=title,
        authors=_authors(values.get("authors")),
        description=_text(values, "description"),
        isbn=_text(values, "isbn"),
        year=_year(values, "year"),
        language=_text(values, "language"),
        tags=_tags(values.get("tags")),
        metadata={k: v for k, v in values.items() if k not in KNOWN and v not in (None, "")},
    )


def _authors(value: Any) -> str | None:
    if isinstance(value, list):
        return ", ".join(str(v).strip() for v in value if str(v).strip()) or None
    return text_value(value) or None


def _tags(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    if not isinstance(value, str):
        raise InvalidField("tags", "expected text or a list")
    return [t.strip() for t in value.replace(";", "|").split("|") if t.strip()]


def _number_or_text(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() and "." not in text else number
