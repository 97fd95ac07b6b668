"""bookrec train cf end to end on both backends."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bookrec.storage import open_repository
from tests.planted import write_planted


@pytest.fixture
def planted(cli, tmp_path):
    books, events = write_planted(tmp_path)
    cli.ok("ingest", "books", str(books))
    cli.ok("ingest", "interactions", str(events))
    extra = tmp_path / "extra_books.csv"
    extra.write_text("external_id,title\nlonely,Nobody Reads Me\n")
    cli.ok("ingest", "books", str(extra))
    return cli


def _vectors(url, side):
    repo = open_repository(url)
    try:
        return repo.load_vectors("cf", side)
    finally:
        repo.close()


def test_train_cf_writes_vectors_run_and_status(planted):
    summary = json.loads(planted.ok("train", "cf", "--factors", "16", "--json").stdout)
    assert summary["users"] == 40 and summary["books"] == 30 and summary["factors"] == 16
    assert set(summary["phases"]) == {"load", "filter", "fit", "write"}
    book_ids, book_vectors = _vectors(planted.url, "books")
    _, user_vectors = _vectors(planted.url, "users")
    assert book_vectors.shape == (30, 16) and user_vectors.shape == (40, 16)
    repo = open_repository(planted.url)
    assert repo.find_book("lonely") not in book_ids  # never read: NULL
    run = repo.latest_run("cf")
    assert run.id == summary["run_id"] and run.parameters["factors"] == 16
    assert (run.n_users, run.n_books) == (40, 30) and "write" in run.phases
    repo.close()
    status = json.loads(planted.ok("status", "--json").stdout)
    cf = status["vectors"]["cf"]
    assert cf["sides"]["books"]["with_vector"] == 30 and cf["sides"]["books"]["dimensions"] == [16]
    assert cf["sides"]["users"]["with_vector"] == 40 and cf["interactions_since_run"] == 0


def test_planted_groups_recommend_their_own_books(planted):
    # A tiny catalogue needs strong regularization (implicit's 0.01 suits millions of rows).
    planted.ok("train", "cf", "--factors", "8", "--iterations", "20", "--regularization", "1")
    repo = open_repository(planted.url)
    user_ids, users = repo.load_vectors("cf", "users")
    book_ids, books = repo.load_vectors("cf", "books")
    external = {s.id: s.external_id for s in repo.book_summaries(book_ids.tolist())}
    interactions = repo.load_interactions()
    group_of_user = {repo.find_user(f"g{g}-u{u}"): f"g{g}" for g in range(2) for u in range(20)}
    repo.close()
    seen = set(zip(interactions.user_ids.tolist(), interactions.book_ids.tolist(), strict=True))
    in_group = []
    for row, uid in enumerate(user_ids.tolist()):
        scores = books @ users[row]
        ranked = [book_ids[i] for i in np.argsort(-scores) if (uid, book_ids[i]) not in seen][:3]
        in_group += [external[b].startswith(group_of_user[uid]) for b in ranked]
        assert external[ranked[0]].startswith(group_of_user[uid])
    assert np.mean(in_group) >= 0.9


def test_same_seed_same_vectors_and_retrain_replaces(planted):
    planted.ok("train", "cf", "--factors", "8", "--seed", "3")
    first = _vectors(planted.url, "users")[1]
    planted.ok("train", "cf", "--factors", "8", "--seed", "3")
    assert np.array_equal(first, _vectors(planted.url, "users")[1])
    planted.ok("train", "cf", "--factors", "4", "--min-interactions", "5")
    ids, vectors = _vectors(planted.url, "books")
    assert vectors.shape[1] == 4 and len(ids) < 30  # k-core dropped books, no 8-d leftovers


def test_no_interactions_found(cli):
    result = cli("train", "cf")
    assert result.exit_code == 3
    assert "No interactions found" in result.stderr
    repo = open_repository(cli.url)
    assert repo.runs() == []
    repo.close()


def test_not_enough_users_items(planted):
    planted.ok("train", "cf", "--factors", "4")
    before = _vectors(planted.url, "books")
    result = planted("train", "cf", "--min-interactions", "50")
    assert result.exit_code == 3
    assert "Not enough users/items" in result.stderr and "--min-interactions" in result.stderr
    after = _vectors(planted.url, "books")
    assert np.array_equal(before[1], after[1])


class ExplodingDisplay:
    """Fails the write phase after half of its rows, like a crash mid-way."""

    def start(self, name, total):
        return name

    def update(self, task, done, total):
        if task == "write" and total and done >= total / 2:
            raise RuntimeError("injected failure during write-back")

    def stop(self, task):
        pass


def test_failure_during_write_back_keeps_old_vectors(planted):
    import bookrec

    planted.ok("train", "cf", "--factors", "8")
    old_books = _vectors(planted.url, "books")
    old_users = _vectors(planted.url, "users")
    # Rows are written in chunks of 5000: make the write phase report per row group.
    from bookrec.storage import postgres, sqlite

    for module in (postgres, sqlite):
        module.VECTOR_CHUNK = 10
    try:
        with (
            bookrec.open(planted.url, display=ExplodingDisplay()) as db,
            pytest.raises(RuntimeError, match="injected"),
        ):
            db.train_cf(factors=4)
    finally:
        for module in (postgres, sqlite):
            module.VECTOR_CHUNK = 5000
    repo = open_repository(planted.url)
    run = repo.runs("cf")[0]
    assert run.status == "failed" and "injected failure" in run.error
    repo.close()
    new_books, new_users = _vectors(planted.url, "books"), _vectors(planted.url, "users")
    assert np.array_equal(old_books[0], new_books[0]) and np.array_equal(old_books[1], new_books[1])
    assert np.array_equal(old_users[1], new_users[1])
    status = json.loads(planted.ok("status", "--json").stdout)
    assert any("failed" in w for w in status["warnings"])


def test_second_training_is_refused_while_one_runs(planted):
    repo = open_repository(planted.url)
    with repo.training_lock("cf"):
        result = planted("train", "cf")
        assert result.exit_code == 1
        assert "another bookrec train cf is running" in result.stderr
        assert "--wait" in result.stderr
    repo.close()
    planted.ok("train", "cf", "--factors", "4")
