"""Fixtures: a fresh database per test on SQLite and on a real PostgreSQL server.

PostgreSQL tests use BOOKREC_TEST_POSTGRES_URL (default: postgres@127.0.0.1:5432). Each test
session creates its own database and drops it at the end. Where no server answers, the
PostgreSQL tests skip with the reason — unless BOOKREC_TEST_POSTGRES_URL is set explicitly
(as .ci/run does), in which case they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path


def _same_blas_kernels_on_every_machine() -> None:
    """The golden outputs print ALS scores to 3 decimals; OpenBLAS picks its kernels by CPU
    (SkylakeX on an AVX-512 machine, Haswell on an AVX2 one) and ALS carries their rounding
    differences into the second decimal. Tests run the Haswell kernels on any CPU that has
    them. Set before numpy loads OpenBLAS; OPENBLAS_CORETYPE already set wins."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return
    if " avx2 " in flags and " fma " in flags:
        os.environ.setdefault("OPENBLAS_CORETYPE", "Haswell")


_same_blas_kernels_on_every_machine()

import pytest  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
GOODBOOKS = Path(__file__).resolve().parents[2] / "shared" / "data" / "goodbooks-10k"
BUNDLED_BOOKS = Path(__file__).resolve().parents[1] / "src/bookrec/data/goodbooks-10k-books.csv.gz"


def goodbooks_books_csv() -> Path:
    """The real goodbooks-10k books.csv (shared/ beside the checkout, else the bundled copy)."""
    shared = GOODBOOKS / "books.csv"
    return shared if shared.is_file() else BUNDLED_BOOKS


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No developer .env or BOOKREC_* variable leaks into a test."""
    for name in list(os.environ):
        if name.startswith("BOOKREC_") and not name.startswith("BOOKREC_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))


def _server_url() -> tuple[str, bool]:
    url = os.environ.get("BOOKREC_TEST_POSTGRES_URL")
    return (url, True) if url else (DEFAULT_PG, False)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """URL of a database created for this test session (dropped at the end)."""
    import psycopg

    server, required = _server_url()
    try:
        admin = psycopg.connect(server, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        reason = f"no PostgreSQL server at {server}: {str(exc).strip().splitlines()[0]}"
        if required:
            pytest.fail(reason)
        pytest.skip(reason)
    name = f"bookrec_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    base = server.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _reset_postgres(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database (no schema) on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'bookrec.db'}"
    url = request.getfixturevalue("postgres_server")
    _reset_postgres(url)
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'bookrec.db'}"


@pytest.fixture
def repo(db_url: str):
    """An open repository with the schema created."""
    from bookrec.storage import open_repository

    repository = open_repository(db_url, create=True)
    repository.migrate()
    yield repository
    repository.close()


class Cli:
    """Runs the real bookrec commands in-process against one database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.runner = CliRunner()

    def __call__(self, *args: str, env: dict[str, str] | None = None):
        from bookrec.cli import app

        return self.runner.invoke(
            app, ["--quiet", *args], env={"BOOKREC_DATABASE_URL": self.url, **(env or {})}
        )

    def ok(self, *args: str):
        result = self(*args)
        assert result.exit_code == 0, result.output + result.stderr
        return result


@pytest.fixture
def cli(db_url: str) -> Cli:
    """A CLI on an initialised database (both backends)."""
    runner = Cli(db_url)
    runner.ok("db", "init")
    return runner


@pytest.fixture
def books_csv() -> Path:
    return goodbooks_books_csv()
