"""Hints that name command-line options, added to errors at the command line's edge."""

from __future__ import annotations

from bookrec.errors import (
    BookrecError,
    DatabaseNotEmptyError,
    GateRejectedError,
    InvalidRowsError,
    LockBusyError,
    NoProfileError,
    NotEnoughDataError,
    NoUserVectorError,
    TooManyInvalidRowsError,
)

FLAG_HINTS: dict[type[BookrecError], str] = {
    LockBusyError: "wait for it to finish, or pass --wait",
    NotEnoughDataError: "need more user activity, or lower --min-interactions",
    TooManyInvalidRowsError: "fix the file, or raise --max-errors (0: no limit)",
    InvalidRowsError: "fix the file, or pass --skip-invalid --rejects FILE to load the valid rows",
    DatabaseNotEmptyError: "point --database-url at a new database, or pass --force",
    NoUserVectorError: "run bookrec train cf, or use --strategy hybrid",
    NoProfileError: "use --strategy popular or hybrid",
    GateRejectedError: "check the data and parameters; --force publishes anyway, --no-gate skips",
}


def hint_for(error: BookrecError) -> str | None:
    """The error's own hint, else the option hint of its type."""
    if error.hint:
        return error.hint
    return next((h for kind, h in FLAG_HINTS.items() if isinstance(error, kind)), None)
