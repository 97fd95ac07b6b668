"""The schema: versioned migrations per backend, applied each in its own transaction."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from bookrec.errors import SchemaMissingError, SchemaOutdatedError
from bookrec.storage.dialect import Dialect

MIGRATION_LOCK = "migrate"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations(backend_dir: str) -> list[Migration]:
    folder = resources.files("bookrec.storage") / "migrations" / backend_dir
    migrations = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".sql"):
            version_text, _, rest = entry.name.partition("_")
            migrations.append(Migration(int(version_text), rest[:-4], entry.read_text("utf-8")))
    return migrations


class Schema:
    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect

    def version(self) -> int | None:
        """The applied schema version, or None when there is no bookrec schema."""
        if not self.dialect.table_exists("schema_migrations"):
            return None
        return self.dialect.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]

    def migrations(self) -> list[Migration]:
        return load_migrations(self.dialect.migrations_dir)

    def latest_version(self) -> int:
        return max(m.version for m in self.migrations())

    def apply(self, migration: Migration) -> None:
        d = self.dialect
        with d.transaction():
            d.execute(d.migrations_table)
            d.run_script(migration.sql)
            d.execute(
                f"INSERT INTO schema_migrations (version, name, applied_at)"
                f" VALUES ({d.param}, {d.param}, {d.now})",
                (migration.version, migration.name),
            )

    def migrate(self) -> list[Migration]:
        """Apply every migration not yet applied, each in its own transaction."""
        with self.dialect.lock(MIGRATION_LOCK, wait=True):
            current = self.version() or 0
            pending = [m for m in self.migrations() if m.version > current]
            for migration in pending:
                self.apply(migration)
            return pending

    def require(self) -> None:
        version = self.version()
        if version is None:
            raise SchemaMissingError()
        latest = self.latest_version()
        if version < latest:
            raise SchemaOutdatedError(version, latest)

    def is_empty(self) -> bool:
        """No schema, or no books, users and interactions."""
        if self.version() is None:
            return True
        return not any(
            self.dialect.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone()
            for table in ("books", "users", "interactions")
        )
