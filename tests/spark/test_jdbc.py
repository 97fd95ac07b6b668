"""The JDBC hand-off: Spark reads PostgreSQL's interactions in partitions and builds the same
confidence matrix as the built-in engine. Needs the PostgreSQL JDBC jar (Debian:
libpostgresql-jdbc-java, /usr/share/java/postgresql.jar; BOOKREC_TEST_JDBC_JAR elsewhere)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from bookrec.algorithms.matrix import WeightScheme, build_matrix, k_core
from tests.planted import write_planted

JAR = Path(os.environ.get("BOOKREC_TEST_JDBC_JAR", "/usr/share/java/postgresql.jar"))
pytestmark = [
    pytest.mark.spark,
    pytest.mark.postgres,
    pytest.mark.skipif(not JAR.is_file(), reason=f"no PostgreSQL JDBC jar at {JAR}"),
]


@pytest.fixture
def postgres_cli(postgres_server, tmp_path):
    from tests.conftest import Cli, _reset_postgres

    _reset_postgres(postgres_server)
    cli = Cli(postgres_server)
    cli.ok("db", "init")
    books, events = write_planted(tmp_path, users_per_group=30, per_user=10)
    cli.ok("ingest", "books", str(books))
    cli.ok("ingest", "interactions", str(events))
    # Re-ratings and a decayed view: only a pair's latest rating counts.
    (tmp_path / "more.csv").write_text(
        "user_id,book_id,event,rating,timestamp\n"
        "g0-u1,g0-b2,rate,1,2026-06-01T00:00:00\ng0-u1,g0-b2,rate,4,2026-06-02T00:00:00\n"
        "g1-u3,g1-b0,view,,2025-01-01T00:00:00\n"
    )
    cli.ok("ingest", "interactions", str(tmp_path / "more.csv"))
    return cli


@pytest.mark.parametrize("half_life", [None, 30.0])
def test_spark_builds_the_builtin_matrix_over_jdbc(postgres_cli, half_life, tmp_path):
    from bookrec.engines.spark.confidence import confidence_pairs
    from bookrec.engines.spark.handoff import interactions_over_jdbc
    from bookrec.engines.spark.runtime import SparkOptions, spark_session
    from bookrec.storage import open_repository

    repo = open_repository(postgres_cli.url)
    interactions = repo.load_interactions()
    repo.close()
    scheme = WeightScheme(half_life_days=half_life)
    expected = k_core(build_matrix(interactions, scheme), 2, 3)
    options = SparkOptions(master="local[2]", jdbc_jar=str(JAR))
    with spark_session(options) as spark:
        rows = interactions_over_jdbc(
            spark, postgres_cli.url, 3, max_id=interactions.max_interaction_id
        )
        assert rows.rdd.getNumPartitions() == 3
        table = confidence_pairs(
            rows, scheme, min_user_interactions=2, min_book_interactions=3
        ).toArrow()
    users = table.column("user_id").to_numpy()
    books = table.column("book_id").to_numpy()
    got = np.zeros(expected.shape, dtype=np.float32)
    got[expected.user_rows(users), expected.book_columns(books)] = table.column("confidence")
    assert len(users) == expected.nnz
    np.testing.assert_allclose(got, expected.matrix.toarray(), rtol=1e-6)


def test_als_over_jdbc_gives_vectors_of_every_trained_row(postgres_cli):
    from bookrec.engines.spark.als import fit_als_jdbc
    from bookrec.engines.spark.runtime import SparkOptions
    from bookrec.storage import open_repository

    repo = open_repository(postgres_cli.url)
    interactions = repo.load_interactions()
    repo.close()
    core = k_core(build_matrix(interactions), 2, 2)
    timings: dict[str, float] = {}
    user_ids, users, book_ids, books = fit_als_jdbc(
        postgres_cli.url, interactions.max_interaction_id, WeightScheme(), factors=8,
        iterations=5, alpha=4.0, options=SparkOptions(master="local[2]", jdbc_jar=str(JAR)),
        timings=timings,
    )  # fmt: skip
    assert np.array_equal(user_ids, core.user_ids) and np.array_equal(book_ids, core.book_ids)
    assert (
        users.shape == (len(user_ids), 8) and np.isfinite(books).all() and books.any(axis=1).all()
    )
    assert {"start", "matrix", "fit", "collect"} <= set(timings)
