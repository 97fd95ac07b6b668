"""The one error family bookrec raises on purpose, each with its documented exit code.

Exit codes: 0 ok, 1 the job failed, 2 bad usage or bad input, 3 not ready, 4 the quality
gate rejected a training run (nothing was replaced).

Errors carry what went wrong as fields; a `hint` names what to run. Hints that name command-line
options are added by the command layer (`bookrec.commands.hints`), so that the Python API never
tells its callers to "pass --wait".
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_NOT_READY = 3
EXIT_REJECTED = 4

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

    def __init__(self, lock: str, where: str) -> None:
        super().__init__(f"another bookrec {lock} is running on {where}")
        self.lock = lock
        self.where = where


class InputError(BookrecError):
    """Bad input file or bad option value."""

    exit_code = EXIT_BAD_INPUT


class InvalidRowsError(InputError):
    """Rows of an input file failed validation, so nothing was written."""

    def __init__(self, file: str, count: int, what: str, details: list[str]) -> None:
        super().__init__(
            f"{file}: {count:,} invalid {what}{'s' if count != 1 else ''}, nothing written",
            details=details,
        )
        self.file = file
        self.count = count


class TooManyInvalidRowsError(InputError):
    """Reading stopped at the limit of invalid rows (max_errors), so nothing was written."""

    def __init__(self, file: str, unit: str, line: int, count: int, details: list[str]) -> None:
        super().__init__(
            f"{file}: stopped reading at {unit} {line:,} after {count:,} invalid rows,"
            " nothing written",
            details=details,
        )
        self.file = file
        self.line = line
        self.count = count


class EmptySplitError(InputError):
    def __init__(self) -> None:
        super().__init__("the split left no user with both training and test interactions")


class DatabaseNotEmptyError(InputError):
    """The demo refuses a database that already holds data."""

    def __init__(self, where: str, books: int, interactions: int) -> None:
        super().__init__(
            f"{where} already holds data ({books:,} books, {interactions:,} interactions);"
            " the demo would mix synthetic data into it"
        )
        self.where = where


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


class NoInteractionsError(NotReadyError):
    def __init__(self) -> None:
        super().__init__(
            "No interactions found",
            hint="users need to interact with books first: bookrec ingest interactions FILE",
        )


class NotEnoughDataError(NotReadyError):
    """The guide's "Not enough users/items": fewer than 2 users or books keep enough
    interactions for a model's k-core."""

    def __init__(
        self, *, users: int, books: int, min_user_interactions: int, min_book_interactions: int
    ) -> None:
        super().__init__(
            f"Not enough users/items: {users} users and {books} books have enough interactions"
            f" (at least {min_user_interactions} per user and {min_book_interactions} per"
            " book); 2 of each are needed"
        )
        self.users = users
        self.books = books


class NoUserVectorError(NotReadyError):
    """A strategy asked for by name has no vector of this user."""

    def __init__(self, family: str, reason: str) -> None:
        super().__init__(f"this user has no {family} vector ({reason})")
        self.family = family


class NoProfileError(NotReadyError):
    """A strategy asked for by name needs interactions this user does not have."""

    def __init__(self, family: str) -> None:
        super().__init__(f"this user has no interactions to build a {family} profile from")
        self.family = family


class SchemaMissingError(NotReadyError):
    def __init__(self, message: str = "the database has no bookrec schema") -> None:
        super().__init__(message, hint="run: bookrec db init")


class SchemaOutdatedError(NotReadyError):
    def __init__(self, current: int, latest: int) -> None:
        super().__init__(
            f"the database schema is at version {current}, this bookrec needs {latest}",
            hint="run: bookrec db upgrade",
        )


class NoBaseRunError(NotReadyError):
    """A fold-in needs a finished full run of its model to fold into (exit 3)."""

    def __init__(self, model: str, reason: str) -> None:
        super().__init__(
            f"cannot fold into the {model} vectors: {reason}",
            hint=f"run a full training first: bookrec train {model}",
        )
        self.model = model
        self.reason = reason


class BaseRunReplacedError(JobFailedError):
    """The run a fold-in solved against was replaced before the fold-in could write."""

    def __init__(self, model: str, base_run_id: int, latest_run_id: int | None) -> None:
        super().__init__(
            f"the {model} vectors of run {base_run_id} were replaced by run {latest_run_id}"
            " while the fold-in solved against them; nothing written",
            hint=f"run the fold-in again: bookrec train {model} --fold-in",
        )
        self.base_run_id = base_run_id
        self.latest_run_id = latest_run_id


class GateRejectedError(BookrecError):
    """The quality gate rejected the candidate of a training run: its vectors were not
    written, the run is recorded as `rejected` with the held-out figures."""

    exit_code = EXIT_REJECTED

    def __init__(self, model: str, run_id: int, reason: str) -> None:
        super().__init__(
            f"train {model} run {run_id} rejected by the quality gate: {reason};"
            " the published vectors were kept",
        )
        self.model = model
        self.run_id = run_id
        self.reason = reason
