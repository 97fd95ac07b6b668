"""The repository layer: all SQL of bookrec lives below this package."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bookrec.dburl import parse_database_url

if TYPE_CHECKING:
    from bookrec.storage.repository import Repository


def open_repository(url: str, *, create: bool = False, connect_timeout: float = 5.0) -> Repository:
    """Connect to the database at url. create: allow creating a new SQLite file."""
    parsed = parse_database_url(url)
    if parsed.backend == "sqlite":
        from bookrec.settings import default_sqlite_path
        from bookrec.storage.sqlite import SqliteRepository

        # The embedded default's own data directory may be made; the parents of a path the
        # user named are theirs to make (a typo must not create a directory tree).
        embedded = parsed.sqlite_path == default_sqlite_path()
        return SqliteRepository(parsed, create=create, create_directory=create and embedded)
    from bookrec.storage.postgres import PostgresRepository

    return PostgresRepository(parsed, connect_timeout=connect_timeout)
