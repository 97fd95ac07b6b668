"""Names shared by the SQL of every backend: vector columns, the columns an interaction load
writes, the event-code expression, and JSON as text."""

from __future__ import annotations

from typing import Any

import orjson

from bookrec.domain import EVENT_CODES, VECTOR_FAMILIES

INTERACTION_COLUMNS = "user_id, book_id, event, rating, occurred_at"  # what a load writes


def vector_column(family: str, side: str) -> str:
    books_column, users_column = VECTOR_FAMILIES[family]
    column = books_column if side == "books" else users_column
    if column is None:
        raise ValueError(f"the {family} family has no {side} vectors")
    return column


def event_code_sql() -> str:
    """A SQL CASE turning the event column into its integer code."""
    whens = " ".join(f"WHEN '{name}' THEN {code}" for name, code in EVENT_CODES.items())
    return f"CASE event {whens} END"


def json_text(value: Any) -> str:
    """A value (numpy arrays and scalars included) as JSON text."""
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()
