"""The one error family bookrec raises on purpose, each with its documented exit code.

Exit codes: 0 ok, 1 the job failed, 2 bad usage or bad input, 3 not ready.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_NOT_READY = 3

_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a secret (a database password) so that no message ever shows it."""
    if value and len(value) >= 1:
        _secrets.add(value)


def scrub(text: str) -> str:
    """Replace every registered secret in text with ***."""
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


class BookrecError(Exception):
    """An expected failure: one line for the user and an exit code."""

    exit_code = EXIT_FAILED

    def __init__(
        self, message: str, *, hint: str | None = None, details: list[str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details or []


class JobFailedError(BookrecError):
    exit_code = EXIT_FAILED


class DatabaseUnavailableError(BookrecError):
    exit_code = EXIT_FAILED


class LockBusyError(BookrecError):
    """Another bookrec process holds the lock `lock` ("train cf", "migrate") of the database
    `where` (a DatabaseUrl.where)."""

    exit_code = EXIT_FAILED

    def __init__(
        self, lock: str, where: str, *, hint: str | None = "wait for it to finish, or pass --wait"
    ) -> None:
        super().__init__(f"another bookrec {lock} is running on {where}", hint=hint)
        self.lock = lock
        self.where = where


class InputError(BookrecError):
    """Bad input file or bad option value."""

    exit_code = EXIT_BAD_INPUT


class MissingExtraError(BookrecError):
    exit_code = EXIT_BAD_INPUT

    def __init__(self, extra: str, what: str) -> None:
        super().__init__(
            f"{what} needs the optional extra '{extra}': pip install \"bookrec[{extra}]\""
            " (with pipx: see the README's install section)"
        )
        self.extra = extra


class NotReadyError(BookrecError):
    """The data or the schema is not there yet (no interactions, no vectors, no schema)."""

    exit_code = EXIT_NOT_READY


class SchemaMissingError(NotReadyError):
    def __init__(self, message: str = "the database has no bookrec schema") -> None:
        super().__init__(message, hint="run: bookrec db init")


class SchemaOutdatedError(NotReadyError):
    def __init__(self, current: int, latest: int) -> None:
        super().__init__(
            f"the database schema is at version {current}, this bookrec needs {latest}",
            hint="run: bookrec db upgrade",
        )
