"""The same jobs on a real standalone cluster: a master and two workers on 127.0.0.1."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bookrec.algorithms.matrix import k_core

pytestmark = [pytest.mark.spark, pytest.mark.slow]


@pytest.fixture
def cluster_options(standalone_master, tmp_path):
    from bookrec.engines.spark import SparkOptions

    return SparkOptions(
        master=standalone_master, staging=str(tmp_path / "staging"), executor_memory="1g"
    )


def test_als_and_gnn_on_the_cluster(holdout, cluster_options, tmp_path):
    from dataclasses import replace

    from bookrec.engines.spark import fit_als_spark, gnn_vectors_spark

    core = k_core(holdout.full, 2, 2)
    factors = fit_als_spark(
        core.matrix, factors=8, iterations=4, regularization=10.0, alpha=4.0, seed=1,
        options=cluster_options,
    )  # fmt: skip
    assert factors.user_factors.shape == (core.shape[0], 8)
    assert np.isfinite(factors.item_factors).all() and factors.item_factors.any(axis=1).all()
    # Two executors, each walking its share of the start nodes with the shipped bookrec code.
    vectors = gnn_vectors_spark(
        core.matrix, dim=16, walks_per_node=2, options=replace(cluster_options, partitions=4)
    )
    assert vectors.shape == (sum(core.shape), 16) and vectors.any(axis=1).all()
    assert not list((tmp_path / "staging").iterdir())


def test_train_cf_through_the_cluster(cli, standalone_master, tmp_path):
    from bookrec.storage import open_repository
    from tests.planted import write_planted

    books, events = write_planted(tmp_path)
    cli.ok("ingest", "books", str(books))
    cli.ok("ingest", "interactions", str(events))
    env = {
        "BOOKREC_SPARK_MASTER": standalone_master,
        "BOOKREC_SPARK_STAGING": str(tmp_path),
        "BOOKREC_SPARK_EXECUTOR_MEMORY": "1g",
    }
    result = cli("train", "cf", "--engine", "spark", "--factors", "4", "--json", env=env)
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["spark"]["master"] == standalone_master
    repo = open_repository(cli.url)
    try:
        assert repo.load_vectors("cf", "users")[1].shape == (40, 4)
        assert repo.latest_run("cf").parameters["spark"]["master"] == standalone_master
    finally:
        repo.close()
