"""Developer and CI sessions: plain `nox` (lint, tests, tests_extras) is the test command of
README.md and .ci/run."""

from __future__ import annotations

import os

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["lint", "tests", "tests_extras"]
PYTHON = ["3.11"]


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The test suite on SQLite and PostgreSQL (BOOKREC_TEST_POSTGRES_URL)."""
    session.install("-e", ".[test]")
    session.run("pytest", "-n", "2", "--dist", "loadfile", *session.posargs)


@nox.session(python=PYTHON)
def tests_extras(session: nox.Session) -> None:
    """The optional engines for real: MiniLM content embeddings and the node2vec package."""
    # The CPU build of torch, as README's install section says: from PyTorch's CPU index, or
    # (CI here) the torch-2.13.0+cpu wheel of pip's find-links; a plain `torch` from PyPI is a
    # multi-GB CUDA build. BOOKREC_TEST_TORCH_INDEX names the index (unset: pip's configuration).
    session.install("--upgrade", "pip")
    index = os.environ.get("BOOKREC_TEST_TORCH_INDEX")
    session.install("torch==2.13.0", *(["--index-url", index] if index else []))
    # The extras exactly as README installs them.
    session.install("-e", ".[test,transformers,node2vec]")
    session.run("pytest", "-k", "minilm or node2vec", *session.posargs)


@nox.session(python=PYTHON)
def tests_spark(session: nox.Session) -> None:
    """The Spark engine for real: pyspark (bookrec[spark]) in local[2] and on a standalone
    master with two workers on 127.0.0.1; needs Java 17+. The JDBC tests also need the
    PostgreSQL JDBC jar (Debian: libpostgresql-jdbc-java) and skip without it."""
    session.install("-e", ".[test,spark]")
    session.run(
        "pytest", "-n", "2", "--dist", "loadfile", "tests/spark",
        "tests/test_spark_extra_missing.py", *session.posargs,
        env={"BOOKREC_TEST_SPARK": "1"},
    )  # fmt: skip


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.8")
    session.run("ruff", "check", "src", "tests", "benchmarks", "noxfile.py")
    session.run("ruff", "format", "--check", "src", "tests", "benchmarks", "noxfile.py")
