"""Database URLs: which backend, where, and how to show one without its password."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from bookrec.errors import InputError, register_secret


@dataclass(frozen=True)
class DatabaseUrl:
    raw: str
    backend: str  # "sqlite" or "postgresql"
    sqlite_path: Path | None = None
    host: str | None = None
    port: int | None = None
    database: str | None = None

    @property
    def masked(self) -> str:
        return mask_url(self.raw)

    @property
    def where(self) -> str:
        """Backend, host and database in words, for messages."""
        if self.backend == "sqlite":
            return f"sqlite database {self.sqlite_path}"
        port = f":{self.port}" if self.port else ""
        return f"postgresql database '{self.database}' on {self.host or 'localhost'}{port}"


def mask_url(url: str) -> str:
    """The URL with any password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def parse_database_url(url: str) -> DatabaseUrl:
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme in ("postgresql", "postgres"):
        register_secret(parts.password)
        if parts.password:
            register_secret(unquote(parts.password))
        try:
            port = parts.port
        except ValueError:
            raise InputError(f"database URL {mask_url(url)}: bad port") from None
        return DatabaseUrl(
            raw=url,
            backend="postgresql",
            host=parts.hostname,
            port=port,
            database=unquote(parts.path.lstrip("/")) or parts.username or "postgres",
        )
    if scheme == "sqlite":
        # sqlite:///relative.db, sqlite:////absolute/path.db
        path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else parts.path
        if not path:
            raise InputError(f"database URL {url}: no file path (use sqlite:///path/to/file.db)")
        return DatabaseUrl(raw=url, backend="sqlite", sqlite_path=Path(path).expanduser())
    raise InputError(
        f"database URL {mask_url(url)}: unsupported scheme '{parts.scheme}' "
        "(use postgresql://user@host/db or sqlite:///path/to/file.db)"
    )
