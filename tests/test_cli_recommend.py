"""bookrec recommend and similar through the CLI on both backends."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bookrec.storage import open_repository
from tests.planted import write_planted

GNN = ("--dim", "16", "--walk-length", "20", "--walks-per-node", "10", "--epochs", "5")


@pytest.fixture
def trained(cli, tmp_path):
    books, events = write_planted(tmp_path)
    cli.ok("ingest", "books", str(books))  # content vectors too
    cli.ok("ingest", "interactions", str(events))
    cli.ok("train", "cf", "--factors", "8", "--regularization", "1")
    cli.ok("train", "gnn", *GNN, "--workers", "1")
    return cli


def _recommend(cli, *args):
    return json.loads(cli.ok("recommend", *args, "--json").stdout)


def _seen(url, user):
    repo = open_repository(url)
    try:
        history = repo.load_interactions(repo.find_user(user))
        return {b.external_id for b in repo.book_summaries(sorted(set(history.book_ids.tolist())))}
    finally:
        repo.close()


@pytest.mark.parametrize("strategy", ["hybrid", "cf", "gnn", "content", "popular"])
def test_every_strategy_excludes_seen_books(trained, strategy):
    result = _recommend(trained, "g0-u3", "--strategy", strategy, "--k", "5")
    books = [r["book"] for r in result["recommendations"]]
    assert len(books) == 5 and not set(books) & _seen(trained.url, "g0-u3")
    assert result["excluded_seen"] == len(_seen(trained.url, "g0-u3"))
    if strategy != "popular":
        assert books[0].startswith("g0-")  # the reader's own group comes first


def test_hybrid_names_contributing_strategies_and_include_seen(trained):
    result = _recommend(trained, "g1-u0", "--k", "3")
    assert result["strategies_used"] == ["cf", "gnn", "content"]  # popular weighs 0 by default
    assert all(r["strategies"] for r in result["recommendations"])
    seen = _seen(trained.url, "g1-u0")
    with_seen = _recommend(trained, "g1-u0", "--k", "15", "--include-seen")
    assert seen & {r["book"] for r in with_seen["recommendations"]}
    text = trained.ok("recommend", "g1-u0", "--k", "3").stdout
    assert "hybrid recommendations for g1-u0" in text and "Group1 saga" in text


def test_new_user_without_cf_vector_falls_back(trained, tmp_path):
    (tmp_path / "new.csv").write_text(
        "user_id,book_id,event,rating,timestamp\nnewbie,g1-b0,like,,\nnewbie,g1-b1,purchase,,\n"
    )
    trained.ok("ingest", "interactions", str(tmp_path / "new.csv"))
    result = _recommend(trained, "newbie", "--k", "5")
    assert "cf" not in result["strategies_used"] and "gnn" in result["strategies_used"]
    assert [r["book"][:2] for r in result["recommendations"]].count("g1") >= 4
    error = trained("recommend", "newbie", "--strategy", "cf")
    assert error.exit_code == 3 and "no cf vector" in error.stderr and "train cf" in error.stderr


def test_user_with_no_usable_interactions_gets_popular(trained, tmp_path):
    # A 1-star rating weighs nothing: no profile for gnn/content, no cf vector.
    (tmp_path / "low.csv").write_text(
        "user_id,book_id,event,rating,timestamp\ngrumpy,g0-b0,rate,1,\n"
    )
    trained.ok("ingest", "interactions", str(tmp_path / "low.csv"))
    result = _recommend(trained, "grumpy", "--k", "3")
    assert result["strategies_used"] == ["popular"]
    assert len(result["recommendations"]) == 3
    error = trained("recommend", "grumpy", "--strategy", "gnn")
    assert error.exit_code == 3 and "no interactions to build a gnn profile" in error.stderr


def test_unknown_user_and_missing_vectors(cli, tmp_path):
    books, events = write_planted(tmp_path)
    cli.ok("ingest", "books", str(books), "--skip-embeddings")
    cli.ok("ingest", "interactions", str(events))
    result = cli("recommend", "nobody")
    assert result.exit_code == 2 and "unknown user 'nobody'" in result.stderr
    for strategy, command in (("cf", "train cf"), ("gnn", "train gnn"), ("content", "embed")):
        result = cli("recommend", "g0-u0", "--strategy", strategy)
        assert result.exit_code == 3, strategy
        assert f"no {strategy} vectors yet (run bookrec {command})" in result.stderr
    popular = _recommend(cli, "g0-u0", "--strategy", "hybrid")
    assert popular["strategies_used"] == ["popular"]


def test_books_without_any_vector_are_in_the_catalogue(trained, tmp_path):
    """Every book counts, not only those with vectors (which can stand in for the book list
    only when there is one for every book): with popularity in the hybrid, a bestseller that
    no training has seen yet comes first."""
    (tmp_path / "new.csv").write_text("external_id,title\nbestseller,Everyone reads it\n")
    trained.ok("ingest", "books", str(tmp_path / "new.csv"), "--skip-embeddings")
    readers = [f"g{g}-u{u}" for g in (0, 1) for u in range(20) if (g, u) != (0, 3)]
    rows = "".join(f"{r},bestseller,{e},,\n" for r in readers for e in ("purchase", "like"))
    (tmp_path / "reads.csv").write_text("user_id,book_id,event,rating,timestamp\n" + rows)
    trained.ok("ingest", "interactions", str(tmp_path / "reads.csv"))
    result = trained("recommend", "g0-u3", "--json", env={"BOOKREC_HYBRID_POPULAR": "100"})
    assert result.exit_code == 0, result.stderr
    first = json.loads(result.stdout)["recommendations"][0]
    assert first["book"] == "bestseller" and first["strategies"] == ["popular"]


def test_similar_in_each_space(trained):
    for space in ("content", "cf", "gnn"):
        result = json.loads(trained.ok("similar", "g0-b1", "--space", space, "--json").stdout)
        books = [r["book"] for r in result["similar"]]
        assert len(books) == 10 and "g0-b1" not in books
        assert sum(b.startswith("g0-") for b in books) >= 8, space
    text = trained.ok("similar", "g1-b2", "--k", "3").stdout
    assert "books similar to Group1 saga part 2 (content)" in text


def test_similar_errors(trained, tmp_path):
    result = trained("similar", "nope")
    assert result.exit_code == 2 and "unknown book 'nope'" in result.stderr
    (tmp_path / "lonely.csv").write_text("external_id,title\nlonely,Unread\n")
    trained.ok("ingest", "books", str(tmp_path / "lonely.csv"))
    result = trained("similar", "lonely", "--space", "cf")
    assert result.exit_code == 3 and "has no cf vector" in result.stderr
    result = trained("similar", "g0-b1", "--space", "words")
    assert result.exit_code == 2 and "unknown space" in result.stderr


def test_answers_from_snapshots_equal_answers_from_the_columns(trained, tmp_path):
    """Training stores binary snapshots that recommend reads; without them (dropped here, as
    any other writer's change would) the JSON columns give the very same answers, including
    interactions that arrived after the training."""
    (tmp_path / "late.csv").write_text(
        "user,book,event\ng0-u3,g1-b2,purchase\nnewbie,g1-b1,like\n", encoding="utf-8"
    )
    trained.ok("ingest", "interactions", str(tmp_path / "late.csv"))
    queries = [
        (user, "--strategy", strategy)
        for user in ("g0-u3", "newbie")
        for strategy in ("hybrid", "gnn", "content", "popular")
    ]
    with_snapshots = [_recommend(trained, *q) for q in queries]
    similar = json.loads(trained.ok("similar", "g0-b1", "--space", "gnn", "--json").stdout)
    repo = open_repository(trained.url)
    try:
        names = {r[0] for r in repo.conn.execute("SELECT name FROM snapshots").fetchall()}
        assert names == {
            "books.cf_embedding", "books.gnn_vector", "books.content_embedding",
            "book_event_counts", "users.cf_vector", "interaction_totals",
        }  # fmt: skip
        repo.conn.execute("DELETE FROM snapshots")
        repo.conn.commit()
    finally:
        repo.close()
    assert [_recommend(trained, *q) for q in queries] == with_snapshots
    assert json.loads(trained.ok("similar", "g0-b1", "--space", "gnn", "--json").stdout) == similar


PROCESS_STATE = """
import atexit, gc, json, os, sys

def report():
    import threadpoolctl

    blas = [p["num_threads"] for p in threadpoolctl.threadpool_info()
            if p["internal_api"] == "openblas"]
    state = {"gc": gc.isenabled(), "blas": blas, "env": os.environ.get("OPENBLAS_NUM_THREADS")}
    sys.stderr.write("STATE " + json.dumps(state) + "\\n")

atexit.register(report)
from bookrec.cli import main
sys.argv = ["bookrec", *sys.argv[1:]]
main()
"""


def _process_state(*args: str) -> dict:
    """The cyclic GC and OpenBLAS threads at the exit of a `bookrec` process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENBLAS_", "OMP_"))}
    run = subprocess.run(
        [sys.executable, "-c", PROCESS_STATE, *args], capture_output=True, text=True, env=env
    )
    line = next(x for x in run.stderr.splitlines() if x.startswith("STATE "))
    return json.loads(line.removeprefix("STATE "))


def test_quick_commands_run_without_cyclic_gc_and_on_one_blas_thread(tmp_path):
    url = f"sqlite:///{tmp_path / 'absent.db'}"  # exits 3, after the start-up being tested
    for command in (["recommend", "u1"], ["similar", "b1"]):
        assert _process_state("--database-url", url, *command) == {
            "gc": False, "blas": [1], "env": "1"
        }, command  # fmt: skip
    training = _process_state("--database-url", url, "train", "cf")
    assert training["gc"] is True and training["env"] is None
