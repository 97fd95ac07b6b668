"""`bookrec train cf|gnn --engine spark` end to end in local[2], on both backends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from bookrec.storage import open_repository
from tests.planted import write_planted

pytestmark = pytest.mark.spark
GNN_FAST = ("--dim", "16", "--walks-per-node", "10", "--epochs", "5")


@pytest.fixture
def planted(cli, tmp_path):
    books, events = write_planted(tmp_path)
    cli.ok("ingest", "books", str(books))
    cli.ok("ingest", "interactions", str(events))
    (tmp_path / "extra.csv").write_text("external_id,title\nlonely,Nobody Reads Me\n")
    cli.ok("ingest", "books", str(tmp_path / "extra.csv"))
    return cli


@pytest.fixture
def spark_env(tmp_path):
    staging = tmp_path / "staging"
    staging.mkdir()
    return {"BOOKREC_SPARK_MASTER": "local[2]", "BOOKREC_SPARK_STAGING": str(staging)}


def _ok(cli, env, *args):
    result = cli(*args, env=env)
    assert result.exit_code == 0, result.output + result.stderr
    return json.loads(result.stdout)


def test_train_cf_spark_writes_vectors_and_a_run_naming_the_engine(planted, spark_env, tmp_path):
    args = ("train", "cf", "--engine", "spark", "--factors", "8", "--iterations", "10")
    summary = _ok(planted, spark_env, *args, "--regularization", "1", "--json")
    assert summary["engine"] == "spark" and summary["spark"]["master"] == "local[2]"
    assert set(summary["spark"]["seconds"]) == {"start", "stage", "read", "fit", "collect", "stop"}
    assert summary["spark"]["mllib"]["alpha"] == 4.0
    repo = open_repository(planted.url)
    try:
        book_ids, books = repo.load_vectors("cf", "books")
        user_ids, users = repo.load_vectors("cf", "users")
        run = repo.latest_run("cf")
        lonely = repo.find_book("lonely")
        external = {s.id: s.external_id for s in repo.book_summaries(book_ids.tolist())}
        group_of = {repo.find_user(f"g{g}-u{u}"): f"g{g}" for g in range(2) for u in range(20)}
    finally:
        repo.close()
    assert books.shape == (30, 8) and users.shape == (40, 8) and lonely not in book_ids
    assert run.id == summary["run_id"] and run.parameters["engine"] == "spark"
    assert run.parameters["spark"]["master"] == "local[2]"
    # The planted groups: each user's best-scored book is of their own group.
    best = book_ids[np.argmax(users @ books.T, axis=1)]
    assert all(external[b].startswith(group_of[u]) for u, b in zip(user_ids, best, strict=True))
    assert not list((tmp_path / "staging").iterdir())


def test_train_gnn_spark_writes_book_vectors(planted, spark_env):
    summary = _ok(planted, spark_env, "train", "gnn", "--engine", "spark", *GNN_FAST, "--json")
    assert summary["engine"] == "spark" and summary["spark"]["skipgram"] == "mllib"
    assert {"start", "walks", "skipgram"} <= set(summary["spark"]["seconds"])
    repo = open_repository(planted.url)
    try:
        ids, vectors = repo.load_vectors("gnn")
        run = repo.latest_run("gnn")
        lonely = repo.find_book("lonely")
        external = {s.id: s.external_id for s in repo.book_summaries(ids.tolist())}
    finally:
        repo.close()
    assert vectors.shape == (30, 16) and lonely not in ids and run.parameters["engine"] == "spark"
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    group = np.array([external[i][:2] for i in ids])
    assert np.mean(group[np.argmax(similarity, axis=1)] == group) >= 0.9


def test_missing_java_is_a_usage_error(planted, spark_env, tmp_path):
    result = planted("train", "cf", "--engine", "spark", env={**spark_env, "JAVA_HOME": "/nope"})
    assert result.exit_code == 2
    assert "JAVA_HOME is /nope" in result.stderr
    no_java = {**spark_env, "JAVA_HOME": "", "PATH": str(tmp_path)}
    os.environ.pop("JAVA_HOME", None)
    result = planted("train", "gnn", "--engine", "spark", env=no_java)
    assert result.exit_code == 2 and "needs a Java runtime" in result.stderr


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_spark_and_keeps_the_old_vectors(planted, spark_env, signum):
    planted.ok("train", "cf", "--factors", "8")  # the built-in engine's vectors
    repo = open_repository(planted.url)
    _, before = repo.load_vectors("cf", "users")
    repo.close()
    env = {**os.environ, **spark_env, "BOOKREC_DATABASE_URL": planted.url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bookrec", "--quiet", "train", "cf", "--engine", "spark",
         "--factors", "8", "--iterations", "2000"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    jvm = []
    while not jvm and time.monotonic() < deadline and proc.poll() is None:
        jvm = _children(proc.pid)
        time.sleep(0.2)
    assert jvm, "no Spark driver JVM started"
    time.sleep(45)  # the session is up (up to 40 s on a loaded machine) and fitting
    assert proc.poll() is None
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 128 + signum, stderr
    what = "interrupted" if signum == signal.SIGINT else "stopped by SIGTERM"
    assert f"error: {what}; nothing was changed" in stderr
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in jvm) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in jvm)  # the driver JVM went with the session
    repo = open_repository(planted.url)
    try:
        _, after = repo.load_vectors("cf", "users")
        failed = repo.latest_run("cf", status="failed")
    finally:
        repo.close()
    assert np.array_equal(before, after)
    assert failed is not None and failed.error == (
        "KeyboardInterrupt: interrupted"
        if signum == signal.SIGINT
        else "Terminated: terminated by SIGTERM"
    )
