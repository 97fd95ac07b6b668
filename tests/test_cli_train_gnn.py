"""bookrec train gnn end to end on both backends."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from bookrec.storage import open_repository
from tests.planted import write_planted

FAST = (
    "--dim",
    "16",
    "--walk-length",
    "20",
    "--walks-per-node",
    "10",
    "--epochs",
    "5",
    "--workers",
    "1",
)


@pytest.fixture
def planted(cli, tmp_path):
    books, events = write_planted(tmp_path)
    cli.ok("ingest", "books", str(books))
    cli.ok("ingest", "interactions", str(events))
    (tmp_path / "extra.csv").write_text("external_id,title\nlonely,Nobody Reads Me\n")
    cli.ok("ingest", "books", str(tmp_path / "extra.csv"))
    return cli


def _gnn(url):
    repo = open_repository(url)
    try:
        ids, vectors = repo.load_vectors("gnn")
        external = {s.id: s.external_id for s in repo.book_summaries(ids.tolist())}
        return ids, vectors, external, repo.latest_run("gnn"), repo.find_book("lonely")
    finally:
        repo.close()


def test_train_gnn_writes_book_vectors_of_the_planted_groups(planted):
    summary = json.loads(planted.ok("train", "gnn", *FAST, "--json").stdout)
    assert summary["books"] == 30 and summary["dim"] == 16 and summary["engine"] == "builtin"
    assert {"graph", "walks", "skipgram", "write"} <= set(summary["phases"])
    assert summary["walk_steps_per_second"] > 0
    ids, vectors, external, run, lonely = _gnn(planted.url)
    assert vectors.shape == (30, 16) and lonely not in ids
    assert run.id == summary["run_id"] and run.parameters["dim"] == 16 and run.n_books == 30
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    similar = unit @ unit.T
    np.fill_diagonal(similar, -np.inf)
    groups = np.array([external[i].split("-")[0] for i in ids.tolist()])
    nearest = np.argsort(-similar, axis=1)[:, :5]
    assert (groups[nearest] == groups[:, None]).mean() >= 0.9
    status = json.loads(planted.ok("status", "--json").stdout)
    assert status["vectors"]["gnn"]["sides"]["books"]["with_vector"] == 30
    assert status["strategies"]["gnn"] is True


def test_seeded_runs_repeat(planted):
    planted.ok("train", "gnn", *FAST, "--seed", "5")
    first = _gnn(planted.url)[1]
    planted.ok("train", "gnn", *FAST, "--seed", "5")
    assert np.array_equal(first, _gnn(planted.url)[1])


def test_empty_graph_and_too_few_books(planted, db_url, tmp_path):
    from tests.conftest import Cli

    empty = Cli(f"sqlite:///{tmp_path / 'empty.db'}")
    empty.ok("db", "init")
    result = empty("train", "gnn")
    assert result.exit_code == 3 and "No interactions found" in result.stderr
    result = planted("train", "gnn", "--min-interactions", "1000")
    assert result.exit_code == 3 and "Not enough users/items" in result.stderr


@pytest.mark.skipif(
    importlib.util.find_spec("node2vec") is not None, reason="the node2vec extra is installed"
)
def test_node2vec_engine_without_extra_names_it(planted):
    result = planted("train", "gnn", "--engine", "node2vec")
    assert result.exit_code == 2
    assert 'pip install "bookrec[node2vec]"' in result.stderr
    repo = open_repository(planted.url)
    assert repo.latest_run("gnn", status=None) is None  # a usage error is no failed run
    repo.close()
    status = json.loads(planted.ok("status", "--json").stdout)
    assert not any("gnn run" in warning for warning in status["warnings"])


def test_bad_engine_is_a_usage_error(planted):
    result = planted("train", "gnn", "--engine", "magic")
    assert result.exit_code == 2 and "gnn.engine (--engine)" in result.stderr


@pytest.mark.extras
@pytest.mark.skipif(importlib.util.find_spec("node2vec") is None, reason="needs bookrec[node2vec]")
def test_node2vec_engine_writes_the_same_columns(planted):
    summary = json.loads(planted.ok("train", "gnn", *FAST, "--engine", "node2vec", "--json").stdout)
    assert summary["engine"] == "node2vec"
    ids, vectors, _, run, lonely = _gnn(planted.url)
    assert (
        vectors.shape == (30, 16) and lonely not in ids and run.parameters["engine"] == "node2vec"
    )


def test_learning_rate_option_is_the_runs_parameter_and_moves_the_vectors(planted):
    planted.ok("train", "gnn", *FAST, "--learning-rate", "1e-9", "--workers", "1", "--force")
    _, frozen, _, run, _ = _gnn(planted.url)
    assert run.parameters["learning_rate"] == 1e-9
    assert np.abs(frozen).max() < 1.1 / 16  # about where gensim starts them: ±1 / dim
    planted.ok("train", "gnn", *FAST, "--workers", "1", "--force")
    _, trained, _, run, _ = _gnn(planted.url)
    assert run.parameters["learning_rate"] == 0.15 and np.abs(trained).max() > 2 / 16
