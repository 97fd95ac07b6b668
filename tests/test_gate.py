"""The quality gate of train cf / train gnn, the hybrid weights it publishes, schema v4."""

from __future__ import annotations

import json

import numpy as np
import pytest

import bookrec
from bookrec.storage import open_repository
from tests.planted import write_planted

SABOTAGE = ("--factors", "2", "--iterations", "1", "--regularization", "1000")


@pytest.fixture
def planted(cli, tmp_path):
    """400 users in 4 taste groups: 40 held-out users, enough for the gate to judge."""
    books, events = write_planted(tmp_path, groups=4, users_per_group=100, per_user=8)
    cli.ok("ingest", "books", str(books), "--skip-embeddings")
    cli.ok("ingest", "interactions", str(events))
    return cli


def _cf_vectors(url):
    with open_repository(url) as repo:
        return repo.load_vectors("cf", "books"), repo.load_vectors("cf", "users")


def _train_cf(cli, *args):
    result = cli("train", "cf", "--factors", "16", *args, "--json")
    return result, (json.loads(result.stdout) if result.exit_code == 0 else None)


def test_gate_rejects_a_sabotaged_cf_run_and_keeps_the_published_vectors(planted):
    first, summary = _train_cf(planted)
    assert first.exit_code == 0, first.output
    gate = summary["gate"]
    assert gate["passed"] and gate["users"] == 40 and gate["published"] is None
    assert gate["candidate"] > gate["popular"]
    again, summary = _train_cf(planted)
    assert again.exit_code == 0 and summary["gate"]["published"] is not None
    assert summary["gate"]["candidate"] >= summary["gate"]["published"] - 0.03
    (book_ids, books), (user_ids, users) = _cf_vectors(planted.url)

    rejected = planted("train", "cf", *SABOTAGE)
    assert rejected.exit_code == 4, rejected.output
    assert "rejected by the quality gate" in rejected.stderr
    (book_ids2, books2), (user_ids2, users2) = _cf_vectors(planted.url)
    np.testing.assert_array_equal(books, books2)
    np.testing.assert_array_equal(users, users2)
    np.testing.assert_array_equal(book_ids, book_ids2)
    np.testing.assert_array_equal(user_ids, user_ids2)
    with open_repository(planted.url) as repo:
        run = repo.runs("cf", limit=1)[0]
        assert run.status == "rejected" and "quality gate" in run.error
        assert run.metrics["gate"]["candidate"] < run.metrics["gate"]["published"]
        assert repo.latest_run("cf").id == run.id - 1  # the last published run
    status = planted("status")
    assert "rejected by the quality gate" in status.stdout
    assert planted("status", "--check").exit_code == 3
    trend = json.loads(planted.ok("status", "--json").stdout)["gate_trend"]["cf"]
    assert [row["status"] for row in trend] == ["rejected", "succeeded", "succeeded"]

    passed, _ = _train_cf(planted)
    assert passed.exit_code == 0
    assert "rejected by the quality gate" not in planted("status").stdout


def test_force_publishes_a_rejected_candidate_and_no_gate_skips_it(planted):
    planted.ok("train", "cf", "--factors", "16")
    forced = json.loads(planted.ok("train", "cf", *SABOTAGE, "--force", "--json").stdout)
    assert not forced["gate"]["passed"] and forced["gate"]["forced"]
    (_, books), _ = _cf_vectors(planted.url)
    assert books.shape[1] == 2
    skipped = json.loads(planted.ok("train", "cf", *SABOTAGE, "--no-gate", "--json").stdout)
    assert skipped["gate"] is None
    with open_repository(planted.url) as repo:
        assert "gate" not in repo.runs("cf", limit=1)[0].metrics


def test_gate_held_out_pairs_are_not_trained_on(planted):
    """The candidate's held-out users' vectors were solved without their held pair: each
    held pair is absent from what the candidate was fitted on, present in the core."""
    from bookrec.algorithms.matrix import build_matrix
    from bookrec.models.gate import gate_split, training_part
    from bookrec.settings import Settings

    with open_repository(planted.url) as repo:
        arrays = repo.load_interactions()
    core = build_matrix(arrays, Settings().weights.scheme())
    split = gate_split(core, Settings().gate)
    training = training_part(core, split)
    assert len(split.rows) == 40
    assert training.matrix.multiply(split.held).nnz == 0
    assert split.held.nnz == 40 and (training.matrix + split.held != core.matrix).nnz == 0


def test_passing_runs_publish_hybrid_weights_that_recommend_uses(planted):
    with bookrec.open(planted.url) as db:
        before = db.hybrid_weights()
    planted.ok("train", "cf", "--factors", "16")
    planted.ok("train", "gnn", "--dim", "16")
    with open_repository(planted.url) as repo:
        table = repo.hybrid_weights()
        runs = repo.runs("gnn", limit=1)
    assert set(table) == {"cf", "gnn", "content", "popular"}
    assert {run_id for _, _, run_id in table.values()} == {runs[0].id}
    assert runs[0].metrics["gate"]["passed"]
    with bookrec.open(planted.url) as db:
        learnt = db.hybrid_weights()
    assert learnt == {name: weight for name, (weight, _, _) in table.items()}
    assert before != learnt or before["cf"] == learnt["cf"]
    assert max(learnt.values()) == 1.0  # the best single part anchors the fusion
    hybrid = json.loads(planted.ok("recommend", "g0-u0", "--json").stdout)
    assert hybrid["strategies_used"]


def test_upgrade_from_v3_keeps_runs_and_artifacts(db_url):
    repo = open_repository(db_url, create=True)
    for migration in repo.migrations()[:3]:
        repo.apply_migration(migration)
    run = repo.start_run("content", {"dim": 8})
    repo.finish_run(run, "succeeded", metrics={"x": 1})
    with repo.dialect.transaction():
        repo.training_runs.add_artifacts(run, {"lsa": b"\x00\x01model"})
    failed = repo.start_run("cf", {})
    repo.finish_run(failed, "failed", error="boom")
    assert [m.version for m in repo.migrate()] == [4, 5]
    assert repo.latest_artifact("content", "lsa") == (run, b"\x00\x01model")
    assert [(r.id, r.status) for r in repo.runs()] == [(failed, "failed"), (run, "succeeded")]
    assert repo.runs()[1].metrics == {"x": 1} and repo.runs()[1].parameters == {"dim": 8}
    rejected = repo.start_run("cf", {})
    repo.finish_run(rejected, "rejected", error="gate")
    assert rejected > failed and repo.runs("cf", limit=1)[0].status == "rejected"
    assert repo.hybrid_weights() == {}
    repo.close()


def test_published_vectors_are_compared_on_a_sample_no_larger_than_theirs(planted):
    fewer = {"BOOKREC_GATE_USERS": "20"}
    _, summary = _train_cf(planted, "--force")
    assert summary["gate"]["users"] == 40
    result = planted("train", "cf", "--factors", "16", "--json", env=fewer)
    gate = json.loads(result.stdout)["gate"]
    assert gate["users"] == 20 and gate["published"] is not None  # 20 of the 40 it held out
    _, summary = _train_cf(planted, "--force")  # 40 users: 20 of them were trained on
    assert summary["gate"]["users"] == 40 and summary["gate"]["published"] is None


def test_a_large_catalogue_holds_out_fewer_users_the_start_of_the_larger_sample(monkeypatch):
    import scipy.sparse as sp

    from bookrec.algorithms.matrix import InteractionMatrix
    from bookrec.models import gate
    from bookrec.settings import GateSettings

    matrix = sp.random(3000, 400, density=0.05, random_state=2, format="csr", dtype=np.float32)
    matrix.data[:] = 1.0
    core = InteractionMatrix(matrix, np.arange(3000) * 3 + 1, np.arange(400) + 1)
    full = gate.gate_split(core, GateSettings(users=200))
    monkeypatch.setattr(gate, "CELL_BUDGET", 400 * 150)
    monkeypatch.setattr(gate, "MIN_BUDGET_USERS", 100)
    budget = gate.gate_split(core, GateSettings(users=200))
    assert len(full.rows) == 200 and len(budget.rows) == 150
    assert set(budget.rows.tolist()) <= set(full.rows.tolist())
    common = budget.rows
    assert (budget.held[common] != full.held[common]).nnz == 0
    monkeypatch.setattr(gate, "CELL_BUDGET", 400 * 10)
    assert len(gate.gate_split(core, GateSettings(users=200)).rows) == 100  # the floor


def test_the_gate_scores_while_the_vectors_are_written_and_a_rejection_rolls_them_back(
    planted, monkeypatch
):
    """The gate runs on a thread beside the write-back: the candidate's vectors are written
    before its verdict is known, and a rejection (or a failure of the gate) rolls them back."""
    import threading

    from bookrec.services import gate as gate_service
    from bookrec.storage.vectors import Vectors

    first, _ = _train_cf(planted)
    assert first.exit_code == 0, first.output
    published = _cf_vectors(planted.url)
    order: list[str] = []
    write_snapshots = Vectors._write_snapshots

    def written(self, *args, **kwargs):
        write_snapshots(self, *args, **kwargs)
        order.append("wrote the vectors")

    measure = gate_service.measure

    def measured(*args, **kwargs):
        figures = measure(*args, **kwargs)
        order.append(f"measured on {threading.current_thread().name}")
        return figures

    monkeypatch.setattr(Vectors, "_write_snapshots", written)
    monkeypatch.setattr(gate_service, "measure", measured)
    rejected = planted("train", "cf", *SABOTAGE)
    assert rejected.exit_code == 4, rejected.output
    assert set(order) == {"wrote the vectors", "measured on bookrec-gate"}
    for (ids, vectors), (ids2, vectors2) in zip(published, _cf_vectors(planted.url), strict=True):
        np.testing.assert_array_equal(ids, ids2)
        np.testing.assert_array_equal(vectors, vectors2)

    def broken(*args, **kwargs):
        raise RuntimeError("the gate broke")

    monkeypatch.setattr(gate_service, "measure", broken)
    failed = planted("train", "cf", "--factors", "16")
    assert failed.exit_code != 0 and "the gate broke" in failed.output
    for (_, vectors), (_, vectors2) in zip(published, _cf_vectors(planted.url), strict=True):
        np.testing.assert_array_equal(vectors, vectors2)
    with open_repository(planted.url) as repo:
        statuses = [run.status for run in repo.runs("cf", limit=3)]
        assert statuses == ["failed", "rejected", "succeeded"]
    assert not [t for t in threading.enumerate() if t.name == "bookrec-gate"]


def test_a_stopped_gate_scores_no_further_batch():
    import threading

    import scipy.sparse as sp

    from bookrec.algorithms.matrix import InteractionMatrix
    from bookrec.models import gate
    from bookrec.models.popular import PopularModel
    from bookrec.settings import GateSettings

    rng = np.random.default_rng(5)
    matrix = sp.csr_matrix((rng.random((300, 50)) < 0.2).astype(np.float32))
    core = InteractionMatrix(matrix, np.arange(300) + 1, np.arange(50) + 1)
    split = gate.gate_split(core, GateSettings(users=30))
    models = {"popular": PopularModel(core.book_ids, np.asarray(matrix.sum(axis=0)).ravel())}
    assert gate.measure(models, split, core, 10).users == 30
    stop = threading.Event()
    stop.set()
    with pytest.raises(gate.Stopped):
        gate.measure(models, split, core, 10, stop=stop)
