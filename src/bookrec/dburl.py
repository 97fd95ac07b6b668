"""Database URLs: which backend, where, and how to show one without its password.

Accepted: `sqlite:///path`, `postgresql://…` / `postgres://…` URLs (libpq's URI form), and
libpq's keyword/value connection strings (`host=… dbname=… password='a b'`), which psycopg
takes as they are. A password — in the URL's user part, a `password=` query parameter or a
`password=` keyword — is registered as a secret (errors.scrub) the moment the string is
parsed, and no message quotes a string that could not be parsed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

from bookrec.errors import InputError, register_secret

_KEYWORD_START = re.compile(r"\s*[A-Za-z_][A-Za-z0-9_]*\s*=")
_URL_PASSWORD = re.compile(r"(://[^:/?#@]*:)[^/?#]*@")
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)
_USAGE = "use postgresql://user@host/db, host=… dbname=…, or sqlite:///path/to/file.db"


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


def is_keyword_conninfo(text: str) -> bool:
    """libpq's rule: a string that is not a postgresql:// or postgres:// URI is key=value."""
    return "://" not in text and bool(_KEYWORD_START.match(text))


def parse_conninfo(text: str) -> list[tuple[str, str, tuple[int, int]]]:
    """(keyword, value, span of the value's text) of a key=value connection string, by
    libpq's rules: values are bare words or single-quoted, a backslash escapes the next
    character. InputError (quoting no part of the string) when it is malformed."""
    pairs = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            return pairs
        start = i
        while i < n and text[i] != "=" and not text[i].isspace():
            i += 1
        keyword = text[start:i]
        while i < n and text[i].isspace():
            i += 1
        if i >= n or text[i] != "=" or not keyword:
            raise InputError(
                f"database URL: keyword {len(pairs) + 1} of the connection string has no '='"
                " (quote values with spaces: password='a b')"
            )
        i += 1
        while i < n and text[i].isspace():
            i += 1
        value, span_start = [], i
        quoted = i < n and text[i] == "'"
        if quoted:
            i += 1
        while i < n:
            char = text[i]
            if char == "\\" and i + 1 < n:
                value.append(text[i + 1])
                i += 2
                continue
            if quoted and char == "'":
                i += 1
                break
            if not quoted and char.isspace():
                break
            value.append(char)
            i += 1
        else:
            if quoted:
                raise InputError(
                    f"database URL: the value of keyword {len(pairs) + 1} ({keyword}) has no"
                    " closing quote"
                )
        pairs.append((keyword, "".join(value), (span_start, i)))


def mask_url(url: str) -> str:
    """The URL or connection string with any password replaced by ***."""
    if is_keyword_conninfo(url):
        try:
            pairs = parse_conninfo(url)
        except InputError:
            return "(a connection string that cannot be parsed)"
        masked = url
        for keyword, _, (start, stop) in reversed(pairs):
            if keyword == "password":
                masked = masked[:start] + "***" + masked[stop:]
        return masked
    masked = _QUERY_PASSWORD.sub(r"\1***", url)
    try:
        parts = urlsplit(masked)
        password, port = parts.password, parts.port
    except ValueError:
        return _URL_PASSWORD.sub(r"\1***@", masked)
    if password is None:
        return masked
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if port:
        host = f"{host}:{port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _register_url_secrets(url: str) -> None:
    match = _URL_PASSWORD.search(url)
    if match:
        secret = url[match.end(1) : match.end() - 1]
        register_secret(secret)
        register_secret(unquote(secret))
    query = url.split("?", 1)[1] if "?" in url else ""
    for key, value in parse_qsl(query.split("#", 1)[0], keep_blank_values=True):
        if key.lower() == "password":
            register_secret(value)
    for match in _QUERY_PASSWORD.finditer(url):
        register_secret(url[match.end(1) : match.end()])


def parse_database_url(url: str) -> DatabaseUrl:
    if is_keyword_conninfo(url):
        return _parse_keywords(url)
    _register_url_secrets(url)
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.split("+", 1)[0].lower()
    except ValueError as exc:
        raise InputError(f"database URL {mask_url(url)}: cannot be parsed ({exc})") from None
    if scheme in ("postgresql", "postgres"):
        try:
            port, host = parts.port, parts.hostname
        except ValueError:
            raise InputError(f"database URL {mask_url(url)}: bad port") from None
        return DatabaseUrl(
            raw=url,
            backend="postgresql",
            host=host,
            port=port,
            database=unquote(parts.path.lstrip("/")) or parts.username or "postgres",
        )
    if scheme == "sqlite":
        # sqlite:///relative.db, sqlite:////absolute/path.db
        path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else parts.path
        if not path:
            raise InputError(f"database URL {url}: no file path (use sqlite:///path/to/file.db)")
        return DatabaseUrl(raw=url, backend="sqlite", sqlite_path=Path(path).expanduser())
    if not parts.scheme:
        if "/" in url or url.endswith((".db", ".sqlite", ".sqlite3")):
            raise InputError(f"database URL {url}: a path? use sqlite:///{url}")
        raise InputError(f"database URL (not shown): neither a URL nor key=value ({_USAGE})")
    raise InputError(
        f"database URL {mask_url(url)}: unsupported scheme '{parts.scheme}' ({_USAGE})"
    )


def _parse_keywords(text: str) -> DatabaseUrl:
    """A libpq key=value connection string: a PostgreSQL database."""
    # Register what looks like the password before parsing, so that no error shows it.
    for match in re.finditer(r"password\s*=\s*('(?:\\.|[^'\\])*'?|\S+)", text):
        register_secret(match.group(1))
        register_secret(match.group(1).strip("'"))
    pairs = parse_conninfo(text)
    values = {keyword: value for keyword, value, _ in pairs}
    register_secret(values.get("password"))
    port_text = values.get("port", "")
    return DatabaseUrl(
        raw=text,
        backend="postgresql",
        host=values.get("host") or values.get("hostaddr"),
        port=int(port_text) if port_text.isdigit() else None,
        database=values.get("dbname") or values.get("user") or "postgres",
    )
