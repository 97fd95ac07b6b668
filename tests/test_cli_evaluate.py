"""bookrec evaluate through the CLI on both backends."""

from __future__ import annotations

import json

from bookrec.storage import open_repository
from tests.planted import write_planted

SMALL = ("--factors", "8", "--dim", "16", "--walk-length", "20", "--epochs", "5")


def _snapshot(url):
    repo = open_repository(url)
    try:
        vectors = {f: repo.load_vectors(f)[1].tobytes() for f in ("cf", "gnn", "content")}
        users = repo.load_vectors("cf", "users")[1].tobytes()
        return vectors, users, [(r.id, r.status, r.finished_at) for r in repo.runs()]
    finally:
        repo.close()


def test_evaluate_reports_every_metric_and_touches_nothing(cli, tmp_path):
    books, events = write_planted(tmp_path, groups=3, users_per_group=25, per_user=8)
    cli.ok("ingest", "books", str(books))
    cli.ok("ingest", "interactions", str(events))
    cli.ok("train", "cf", "--factors", "4")
    before = _snapshot(cli.url)
    result = cli.ok("evaluate", *SMALL, "--regularization", "1", "--json")
    report = json.loads(result.stdout)
    assert report["k"] == 10 and report["protocol"]["method"] == "random"
    rows = {r["strategy"]: r for r in report["results"]}
    assert set(rows) == {"popular", "cf", "gnn", "content", "hybrid"}
    for row in rows.values():
        for metric in ("precision", "recall", "ndcg", "map", "hit_rate", "coverage"):
            assert 0.0 <= row[metric] <= 1.0
    for strategy in ("cf", "gnn", "hybrid"):
        assert rows[strategy]["ndcg"] >= rows["popular"]["ndcg"] + 0.1, strategy
    assert _snapshot(cli.url) == before


def test_evaluate_splits_and_text_output(cli, tmp_path):
    books, events = write_planted(tmp_path)
    cli.ok("ingest", "books", str(books), "--skip-embeddings")
    cli.ok("ingest", "interactions", str(events))
    text = cli.ok(
        "evaluate", "--split", "leave-last", "--strategies", "popular,cf", "--k", "5", *SMALL
    ).stdout
    assert "method: leave-last" in text and "nDCG@5" in text and "popular" in text
    # The planted readers act one after another: a global time cut leaves only new users.
    temporal = cli("evaluate", "--split", "temporal", "--strategies", "cf", *SMALL)
    assert temporal.exit_code == 2
    assert "no user with both training and test interactions" in temporal.stderr


def test_evaluate_bad_input_and_no_data(cli, tmp_path):
    assert cli("evaluate").exit_code == 3
    books, events = write_planted(tmp_path)
    cli.ok("ingest", "books", str(books), "--skip-embeddings")
    cli.ok("ingest", "interactions", str(events))
    result = cli("evaluate", "--split", "sideways")
    assert result.exit_code == 2 and "sideways" in result.stderr
    result = cli("evaluate", "--strategies", "cf,astrology")
    assert result.exit_code == 2 and "astrology" in result.stderr
