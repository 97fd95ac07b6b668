"""The repository layer: all SQL of bookrec lives below this package."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bookrec.dburl import parse_database_url

if TYPE_CHECKING:
    from bookrec.storage.base import Repository


def open_repository(url: str, *, create: bool = False, connect_timeout: float = 5.0) -> Repository:
    """Connect to the database at url. create: allow creating a new SQLite file."""
    parsed = parse_database_url(url)
    if parsed.backend == "sqlite":
        from bookrec.storage.sqlite import SqliteRepository

        return SqliteRepository(parsed, create=create)
    from bookrec.storage.postgres import PostgresRepository

    return PostgresRepository(parsed, connect_timeout=connect_timeout)
