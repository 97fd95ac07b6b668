"""One input record (a CSV row or a JSONL object) and the checks every record gets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

UNDECODABLE = "undecodable bytes (the file must be UTF-8)"


class InvalidField(Exception):
    """One row's problem: the field (empty for the whole row) and why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


@dataclass
class Record:
    """One input record: its first line number, fields by name, the raw text, and what makes
    it unreadable as a whole (bad_shape, with the field concerned if there is one)."""

    line: int
    values: dict[str, Any]
    raw: str
    bad_shape: str | None = None
    bad_field: str = ""
    undecodable: bool = False  # a JSONL line that was not UTF-8 (decoded with replacement)
    plain_text: bool = False  # known to hold no NUL and no undecodable bytes


def has_surrogates(text: str) -> bool:
    """Whether text holds bytes that were not UTF-8 (decoded with surrogateescape)."""
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def check_record(record: Record) -> None:
    """InvalidField when the row itself is unreadable: a bad shape, undecodable bytes or a
    NUL character (which PostgreSQL cannot store), naming the field."""
    if record.bad_shape:
        raise InvalidField(record.bad_field, record.bad_shape)
    if record.undecodable:
        field = next((k for k, v in record.values.items() if "\ufffd" in str(v)), "")
        raise InvalidField(_name(field), UNDECODABLE)
    if record.plain_text:
        return
    for name, value in record.values.items():
        if "\x00" in name:
            raise InvalidField(_name(name), "a NUL character in the field name")
        problem = _text_problem(value)
        if problem:
            raise InvalidField(_name(name), problem)


def _name(field: str) -> str:
    return field.replace("\x00", "\\0")


def _text_problem(value: Any) -> str | None:
    if isinstance(value, str):
        if "\x00" in value:
            return "contains a NUL character"
        if has_surrogates(value):
            return UNDECODABLE
        return None
    if isinstance(value, list):
        return next((p for v in value if (p := _text_problem(v))), None)
    if isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                return "contains a NUL character"
            if problem := _text_problem(item):
                return problem
    return None


def text_value(value: Any) -> str:
    """A field as stripped text ('' for missing); JSON numbers become their text."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()
