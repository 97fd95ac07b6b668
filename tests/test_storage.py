"""The repository contract, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bookrec.domain import EVENTS, BookEventCounts, BookRecord, InteractionBatch
from bookrec.errors import LockBusyError, SchemaOutdatedError
from bookrec.storage import open_repository


def _books(repo, n=3):
    repo.upsert_books([[BookRecord(str(i), f"Book {i}", authors=f"Author {i}") for i in range(n)]])
    return repo.book_id_map()


def _interactions(repo, rows):
    with repo.interaction_loader() as loader:
        loader.add(InteractionBatch.from_rows(rows))
    return loader.result


def test_migrate_is_idempotent_and_versioned(db_url):
    repo = open_repository(db_url, create=True)
    assert repo.schema_version() is None
    applied = repo.migrate()
    assert [m.version for m in applied] == [1, 2, 3, 4, 5]
    assert repo.schema_version() == repo.latest_schema_version() == 5
    assert repo.migrate() == []
    repo.close()


def test_upgrade_from_v1_keeps_data(db_url):
    repo = open_repository(db_url, create=True)
    repo.apply_migration(repo.migrations()[0])
    _books(repo, 2)
    with pytest.raises(SchemaOutdatedError):
        repo.require_schema()
    assert [m.version for m in repo.migrate()] == [2, 3, 4, 5]
    repo.require_schema()
    assert len(repo.book_id_map()) == 2
    repo.close()


def test_upsert_books_inserts_updates_and_leaves_unchanged(repo):
    first = repo.upsert_books([[BookRecord("a", "A"), BookRecord("b", "B")]])
    assert len(first.inserted) == 2 and first.updated == [] and first.unchanged == 0
    ids = repo.book_id_map()
    again = repo.upsert_books([[BookRecord("a", "A"), BookRecord("b", "B v2")]])
    assert again.inserted == [] and again.updated == [ids["b"]] and again.unchanged == 1
    texts = {t.book_id: t.title for t in repo.book_texts()}
    assert texts == {ids["a"]: "A", ids["b"]: "B v2"}


def test_changed_text_clears_content_embedding_only_of_that_book(repo):
    ids = _books(repo, 2)
    run = repo.start_run("content", {})
    vectors = np.ones((2, 3), dtype=np.float32)
    repo.replace_vectors("content", run, {}, np.array([ids["0"], ids["1"]]), vectors)
    repo.upsert_books([[BookRecord("0", "Book 0 renamed", authors="Author 0")]])
    assert repo.books_without_vector("content") == [ids["0"]]


def test_interactions_are_deduplicated_and_users_created(repo):
    ids = _books(repo)
    rows = [
        ("u1", ids["0"], "view", None, 1_700_000_000.0),
        ("u1", ids["1"], "rate", 4.0, 1_700_000_000.5),
        ("u2", ids["1"], "click", None, 1_700_000_001.0),
    ]
    first = _interactions(repo, rows)
    assert (first.inserted, first.duplicates, first.new_users) == (3, 0, 2)
    second = _interactions(repo, [*rows, ("u3", ids["2"], "like", None, 1_700_000_002.0)])
    assert (second.inserted, second.duplicates, second.new_users) == (1, 3, 1)
    counts = repo.counts()
    assert counts["interactions"] == 4 and counts["users"] == 3
    assert counts["interactions_by_event"]["rate"] == 1
    arrays = repo.load_interactions()
    assert len(arrays) == 4 and arrays.max_interaction_id == counts["max_interaction_id"]
    rated = arrays.events == 3
    assert arrays.ratings[rated].tolist() == [4.0] and np.isnan(arrays.ratings[~rated]).all()


def test_of_duplicates_within_a_load_the_first_wins(repo):
    ids = _books(repo)
    # Many rows around the duplicates so that a sort has something to reorder.
    noise = [(f"u{i}", ids[str(i % 3)], "view", None, float(i)) for i in range(200)]
    ratings = [5.0, 1.0, 3.0]
    duplicates = [("u7", ids["1"], "rate", r, 42.0) for r in ratings]
    result = _interactions(repo, [*noise[:100], *duplicates, *noise[100:]])
    assert (result.inserted, result.duplicates) == (201, 2)
    arrays = repo.load_interactions()
    rated = arrays.events == 3
    assert arrays.ratings[rated].tolist() == [5.0]


def _ratings_by_key(repo):
    arrays = repo.load_interactions()
    keys = zip(
        arrays.user_ids.tolist(), arrays.book_ids.tolist(), arrays.timestamps.tolist(), strict=True
    )
    return dict(zip(keys, arrays.ratings.tolist(), strict=True))


def test_of_duplicates_across_batches_of_a_load_the_first_wins(repo):
    """The second batch repeats events of users the first batch created (new readers' rows
    take the PostgreSQL loader's direct path) and of users that existed before the load."""
    ids = _books(repo)
    _interactions(repo, [("old", ids["0"], "rate", 2.0, 10.0)])
    first = [("new", ids["0"], "rate", 5.0, 10.0), ("old", ids["1"], "rate", 4.0, 10.0)]
    again = [(u, b, e, 1.0, t) for u, b, e, _, t in first] + [("old", ids["0"], "rate", 1.0, 10.0)]
    with repo.interaction_loader() as loader:
        loader.add(InteractionBatch.from_rows(first))
        loader.add(InteractionBatch.from_rows([*again, ("new", ids["2"], "rate", 3.0, 11.0)]))
        result = loader.commit()
    assert (result.rows, result.inserted, result.duplicates, result.new_users) == (6, 3, 3, 1)
    new, old = repo.find_user("new"), repo.find_user("old")
    assert _ratings_by_key(repo) == {
        (old, ids["0"], 10): 2.0, (new, ids["0"], 10): 5.0, (old, ids["1"], 10): 4.0,
        (new, ids["2"], 11): 3.0,
    }  # fmt: skip


def test_interaction_loader_refuses_books_that_do_not_exist(repo):
    ids = _books(repo)
    with (
        pytest.raises(Exception, match="book"),  # JobFailedError, or a foreign key violation
        repo.interaction_loader() as loader,
    ):
        loader.add(InteractionBatch.from_rows([("u1", ids["0"], "view", None, 1.0)]))
        loader.add(InteractionBatch.from_rows([("u2", 999_999, "view", None, 2.0)]))
    assert repo.counts()["interactions"] == 0 and repo.counts()["users"] == 0


class Abandon(Exception):
    pass


def test_an_interaction_load_is_one_transaction_that_a_with_block_ends(repo):
    ids = _books(repo)
    row = ("u1", ids["0"], "view", None, 1_700_000_000.0)
    loader = repo.interaction_loader()  # opens nothing yet: another writer may go first
    assert _interactions(repo, [("u0", ids["1"], "view", None, 1.0)]).inserted == 1
    with pytest.raises(RuntimeError, match="with block"):
        loader.add(InteractionBatch.from_rows([row]))
    with pytest.raises(Abandon), loader:  # an exception rolls the load back
        loader.add(InteractionBatch.from_rows([row]))
        raise Abandon
    with repo.interaction_loader() as loader:  # so does rollback()
        loader.add(InteractionBatch.from_rows([row]))
        loader.rollback()
    assert (repo.counts()["interactions"], repo.counts()["users"]) == (1, 1)
    with repo.interaction_loader() as loader:  # leaving the block commits
        loader.add(InteractionBatch.from_rows([row]))
    assert loader.result.inserted == 1 and repo.counts()["interactions"] == 2
    with pytest.raises(RuntimeError, match="with block"):
        loader.commit()
    assert _interactions(repo, [row]).duplicates == 1


def test_replace_vectors_clears_rows_outside_the_run(repo):
    ids = _books(repo)
    _interactions(repo, [("u1", ids["0"], "view", None, 1.0), ("u2", ids["1"], "view", None, 1.0)])
    users = np.array([repo.find_user("u1"), repo.find_user("u2")])
    all_books = np.array(sorted(ids.values()))
    run = repo.start_run("cf", {"factors": 4})
    repo.replace_vectors(
        "cf", run, {"n_users": 2}, all_books, np.full((3, 4), 0.5, np.float32),
        users, np.full((2, 4), 0.25, np.float32),
    )  # fmt: skip
    run2 = repo.start_run("cf", {"factors": 2})
    repo.replace_vectors(
        "cf", run2, {}, all_books[:1], np.array([[1.5, -2.25]], np.float32),
        users[:1], np.array([[0.125, 3.0]], np.float32),
    )  # fmt: skip
    book_ids, book_vectors = repo.load_vectors("cf", "books")
    assert book_ids.tolist() == [all_books[0]] and book_vectors.tolist() == [[1.5, -2.25]]
    stats = repo.vector_stats("cf", "users")
    assert (stats.with_vector, stats.dimensions) == (1, {2: 1})
    latest = repo.latest_run("cf")
    assert latest.id == run2 and latest.status == "succeeded"


def test_failed_vector_write_leaves_old_vectors_and_no_partial_new_ones(repo):
    ids = _books(repo, 3)
    books = np.array(sorted(ids.values()))
    old = np.arange(9, dtype=np.float32).reshape(3, 3)
    repo.replace_vectors("gnn", repo.start_run("gnn", {}), {}, books, old)
    run = repo.start_run("gnn", {})

    def explode(done, total):
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        repo.replace_vectors(
            "gnn", run, {}, books[:2], np.zeros((2, 3), np.float32), on_progress=explode
        )
    kept_ids, kept = repo.load_vectors("gnn")
    assert kept_ids.tolist() == books.tolist() and np.array_equal(kept, old)
    assert repo.runs("gnn")[0].status == "died"  # its caller did not record the failure


def test_results_given_as_functions_are_asked_for_once_the_vectors_are_written(repo):
    """run_result and hybrid_weights may be functions (a gate still scoring): called after the
    vectors are written, in the write's transaction; an error one raises rolls it all back."""
    ids = _books(repo, 3)
    books = np.array(sorted(ids.values()))
    old = np.arange(9, dtype=np.float32).reshape(3, 3)
    first = repo.start_run("gnn", {})
    repo.replace_vectors("gnn", first, {}, books, old, hybrid_weights={"gnn": (1.0, 1.5)})
    asked: list[str] = []

    def weights():
        asked.append("weights")
        assert repo.vector_stats("gnn", "books").with_vector == 3  # written by now
        return {"gnn": (0.5, 1.5), "popular": (0.25, None)}

    def rejected():
        asked.append("result")
        raise RuntimeError("rejected")

    with pytest.raises(RuntimeError, match="rejected"):
        repo.replace_vectors(
            "gnn", repo.start_run("gnn", {}), rejected, books, old * 2, hybrid_weights=weights
        )
    assert asked == ["weights", "result"]
    assert np.array_equal(repo.load_vectors("gnn")[1], old)
    assert repo.hybrid_weights() == {"gnn": (1.0, 1.5, first)}
    passing = repo.start_run("gnn", {})
    repo.replace_vectors(
        "gnn", passing, lambda: {"n_books": 3}, books, old * 3, hybrid_weights=weights
    )
    assert np.array_equal(repo.load_vectors("gnn")[1], old * 3)
    assert repo.hybrid_weights()["popular"] == (0.25, None, passing)
    assert repo.latest_run("gnn").id == passing


def test_repeated_ids_are_refused(repo):
    ids = _books(repo, 2)
    books = np.array([ids["0"], ids["1"], ids["0"]])
    with pytest.raises(Exception, match="1 ids repeat"):
        repo.replace_vectors(
            "gnn", repo.start_run("gnn", {}), {}, books, np.ones((3, 2), np.float32)
        )
    assert repo.vector_stats("gnn", "books").with_vector == 0


def test_nan_vectors_are_refused(repo):
    ids = _books(repo, 1)
    bad = np.array([[np.nan, 1.0]], dtype=np.float32)
    with pytest.raises(Exception, match="NaN"):
        repo.replace_vectors("gnn", repo.start_run("gnn", {}), {}, np.array([ids["0"]]), bad)
    assert repo.vector_stats("gnn", "books").with_vector == 0


def test_training_lock_excludes_a_second_holder(db_url, repo):
    other = open_repository(db_url)
    with repo.training_lock("cf"):
        with (
            pytest.raises(LockBusyError, match="another bookrec train cf"),
            other.training_lock("cf"),
        ):
            pass
        with other.training_lock("gnn"):
            pass
    with other.training_lock("cf"):
        pass
    other.close()


def test_runs_and_artifacts(repo):
    _books(repo, 1)
    run = repo.start_run("content", {"model": "lsa"})
    repo.replace_vectors(
        "content", run, {"n_books": 1}, np.array(list(repo.book_id_map().values())),
        np.ones((1, 2), np.float32), artifacts={"lsa": b"\x00model\xff"},
    )  # fmt: skip
    assert repo.latest_artifact("content", "lsa") == (run, b"\x00model\xff")
    failed = repo.start_run("content", {})
    repo.finish_run(failed, "failed", error="boom", phases={"fit": 1.5})
    runs = repo.runs("content")
    assert [r.status for r in runs] == ["failed", "succeeded"]
    assert runs[0].error == "boom" and runs[0].phases == {"fit": 1.5}
    assert repo.latest_run("content").id == run


def _count_table(counts):
    """{(book, event, rating or None): count} of a BookEventCounts, repeated keys added up."""
    table: dict = {}
    for b, e, r, n in zip(
        counts.book_ids.tolist(), counts.events.tolist(), counts.ratings.tolist(),
        counts.counts.tolist(), strict=True,
    ):  # fmt: skip
        key = (b, e, None if np.isnan(r) else r)
        table[key] = table.get(key, 0) + n
    return table


def test_load_vector_and_book_event_counts(repo):
    ids = _books(repo, 2)
    _interactions(
        repo,
        [
            ("u1", ids["0"], "view", None, 100.0),
            ("u2", ids["0"], "view", None, 200.0),
            ("u1", ids["0"], "rate", 5.0, 300.0),
            ("u2", ids["0"], "rate", 1.0, 300.0),
            ("u1", ids["1"], "like", None, 400.0),
        ],
    )
    b0, b1 = ids["0"], ids["1"]
    every = {(b0, 0, None): 2, (b0, 3, 5.0): 1, (b0, 3, 1.0): 1, (b1, 2, None): 1}
    assert _count_table(repo.book_event_counts()) == every
    recent = {(b0, 3, 5.0): 1, (b0, 3, 1.0): 1, (b1, 2, None): 1}
    assert _count_table(repo.book_event_counts(since=250.0)) == recent
    user = repo.find_user("u1")
    assert repo.load_vector("cf", "users", user) is None
    run = repo.start_run("cf", {})
    repo.replace_vectors(
        "cf", run, {}, np.array([ids["0"]]), np.ones((1, 2), np.float32),
        np.array([user]), np.array([[0.5, -1.25]], np.float32),
    )  # fmt: skip
    assert repo.load_vector("cf", "users", user).tolist() == [0.5, -1.25]


def _snapshot_names(repo):
    return {r[0] for r in repo.conn.execute("SELECT name FROM snapshots").fetchall()}


def test_snapshots_match_the_columns_and_die_with_any_other_write(repo):
    ids = _books(repo, 3)
    books = np.array(sorted(ids.values()))
    vectors = np.array([[0.1, -2.5], [3.25, 1e-7], [-0.3, 7.0]], dtype=np.float32)
    repo.replace_vectors("gnn", repo.start_run("gnn", {}), {}, books[::-1], vectors[::-1])
    assert "books.gnn_vector" in _snapshot_names(repo)
    snap_ids, snap = repo.load_vectors("gnn")
    json_ids, from_json = repo.vectors.load_json(["gnn"], "books")["gnn"]
    assert snap_ids.tolist() == json_ids.tolist() == books.tolist()
    assert np.array_equal(snap, from_json) and np.array_equal(snap, vectors)
    assert not snap.flags.writeable  # a view of the fetched bytes

    # Any other writer of the column (here plain SQL) drops the snapshot: readers see the change.
    repo.conn.execute(f"UPDATE books SET gnn_vector = NULL WHERE id = {books[0]}")
    repo.conn.commit()
    assert "books.gnn_vector" not in _snapshot_names(repo)
    json_ids, from_json = repo.load_vectors("gnn")
    assert json_ids.tolist() == books[1:].tolist()
    assert not json_ids.flags.writeable and not from_json.flags.writeable  # the same contract

    # A partial update (embed of new books) rebuilds the snapshot from the columns.
    repo.replace_vectors("content", repo.start_run("content", {}), {}, books[:2], vectors[:2])
    run = repo.start_run("content", {})
    repo.update_vectors("content", run, {}, books[2:], vectors[2:] * 2)
    assert "books.content_embedding" in _snapshot_names(repo)
    got_ids, got = repo.load_vectors("content")
    assert got_ids.tolist() == books.tolist()
    assert np.array_equal(got, np.vstack([vectors[:2], vectors[2:] * 2]))

    # Loading the same books again changes nothing, so the snapshot stays; changing a book's
    # text clears its content vector and so the snapshot.
    repo.upsert_books([[BookRecord(str(i), f"Book {i}", authors=f"Author {i}") for i in range(3)]])
    assert "books.content_embedding" in _snapshot_names(repo)
    repo.upsert_books([[BookRecord("0", "A new title")]])
    assert "books.content_embedding" not in _snapshot_names(repo)
    assert repo.load_vectors("content")[0].tolist() == books[1:].tolist()


def test_event_counts_snapshot_plus_what_arrived_after_it(repo):
    from bookrec.algorithms.scoring import count_book_events

    ids = _books(repo, 2)
    b0, b1 = ids["0"], ids["1"]
    _interactions(repo, [("u1", b0, "view", None, 1.0), ("u2", b0, "rate", 4.0, 2.0)])
    counts = count_book_events(repo.load_interactions())
    repo.replace_vectors(
        "gnn", repo.start_run("gnn", {}), {}, np.array([b0, b1]), np.ones((2, 2), np.float32),
        event_counts=lambda: counts,  # or the counts themselves
    )  # fmt: skip
    assert "book_event_counts" in _snapshot_names(repo)
    # Rows the snapshot holds are not counted twice; rows after it are added.
    _interactions(repo, [("u3", b1, "like", None, 3.0), ("u1", b0, "view", None, 4.0)])
    expected = {(b0, 0, None): 2, (b0, 3, 4.0): 1, (b1, 2, None): 1}
    assert _count_table(repo.book_event_counts()) == expected
    # Deleting interactions (here a user's, by cascade) drops the snapshot: still exact.
    repo.conn.execute("DELETE FROM users WHERE external_id = 'u2'")
    repo.conn.commit()
    assert "book_event_counts" not in _snapshot_names(repo)
    assert _count_table(repo.book_event_counts()) == {(b0, 0, None): 2, (b1, 2, None): 1}


def test_sqlite_without_json1_loads_the_same(sqlite_url, monkeypatch):
    """SQLite before 3.38 may lack the JSON functions: executemany does the same job."""
    import bookrec.storage.sqlite as sqlite_backend

    monkeypatch.setattr(sqlite_backend, "_has_json", lambda conn: False)
    repo = open_repository(sqlite_url, create=True)
    repo.migrate()
    ids = _books(repo)
    rows = [("u1", ids["0"], "rate", 4.0, 5.0), ("u1", ids["0"], "rate", 2.0, 5.0)]
    result = _interactions(repo, [*rows, ("u2", ids["1"], "view", None, 6.0)])
    assert (result.inserted, result.duplicates, result.new_users) == (2, 1, 2)
    arrays = repo.load_interactions()
    assert arrays.ratings[arrays.events == 3].tolist() == [4.0]
    assert np.isnan(arrays.ratings[arrays.events == 0]).all()
    repo.close()


def _random_batch(rng, book_ids, n):
    return InteractionBatch(
        users=[f"u{u}" for u in rng.integers(0, 50_000, n)],
        book_ids=rng.choice(book_ids, n),
        events=rng.integers(0, len(EVENTS), n).astype(np.int8),
        ratings=np.full(n, np.nan),
        timestamps=rng.integers(1_600_000_000, 1_700_000_000, n).astype(np.float64),
    )


def _bytes_written() -> int:
    with open("/proc/self/io") as io:
        return next(int(line.split()[1]) for line in io if line.startswith("wchar"))


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs Linux's /proc/self/io")
def test_sqlite_batches_do_not_journal_the_pages_they_change(sqlite_url):
    """A multi-row INSERT reading json_each kept a statement journal of every index page it
    changed: ~40 bytes per stored row for every batch (4 GB a batch at 100M rows)."""
    repo = open_repository(sqlite_url, create=True)
    repo.migrate()
    book_ids = np.array(list(_books(repo, 20_000).values()))
    rng = np.random.default_rng(0)
    with repo.interaction_loader() as loader:
        for _ in range(5):
            loader.add(_random_batch(rng, book_ids, 60_000))
    with repo.interaction_loader() as loader:
        before = _bytes_written()
        for _ in range(3):
            loader.add(_random_batch(rng, book_ids, 60_000))
        written = _bytes_written() - before  # before the commit writes the WAL
    assert loader.result.inserted == 180_000
    # Measured: 3.0 MB for the three batches (the stage's journal); 43 MB with the old insert.
    assert written < 12_000_000, written
    repo.close()


def test_sqlite_loader_restores_the_connection_pragmas(sqlite_url):
    repo = open_repository(sqlite_url, create=True)
    repo.migrate()
    ids = _books(repo)
    before = [
        repo.conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("foreign_keys", "temp_store")
    ]
    _interactions(repo, [("u1", ids["0"], "view", None, 1.0)])
    loader = repo.interaction_loader()
    loader.rollback()
    after = [repo.conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("foreign_keys", "temp_store")]
    assert after == before == [1, 2]
    repo.close()


def test_sqlite_reads_through_a_memory_map(sqlite_url):
    repo = open_repository(sqlite_url, create=True)
    try:
        assert repo.conn.execute("PRAGMA mmap_size").fetchone()[0] >= 256 << 20
    finally:
        repo.close()


def test_vector_families_from_snapshots_and_columns_in_one_call(repo):
    books = np.array(sorted(_books(repo, 3).values()))
    gnn = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype=np.float32)
    content = gnn[:2] * -1
    repo.replace_vectors("gnn", repo.start_run("gnn", {}), {}, books, gnn)
    repo.replace_vectors("content", repo.start_run("content", {}), {}, books[:2], content)
    repo.conn.execute("DELETE FROM snapshots WHERE name = 'books.content_embedding'")
    repo.conn.commit()
    loaded = repo.load_vector_families(["content", "gnn", "cf"])
    assert list(loaded) == ["content", "gnn", "cf"]
    assert loaded["gnn"][0].tolist() == books.tolist() and np.array_equal(loaded["gnn"][1], gnn)
    assert loaded["content"][0].tolist() == books[:2].tolist()
    assert np.array_equal(loaded["content"][1], content)
    assert len(loaded["cf"][0]) == 0


# -- streamed interactions, chunked snapshots, what status reads (schema v3) -----------------


def _plain_arrays(repo):
    """The interactions as the database gives them row by row (the pre-stream reading)."""
    d = repo.dialect
    rows = repo.conn.execute(
        f"SELECT user_id, book_id, event, rating, {d.epoch('occurred_at')} FROM interactions"
        " ORDER BY id"
    ).fetchall()
    return rows


def test_stream_gives_compact_chunks_in_id_order_that_load_interactions_joins(repo):
    ids = _books(repo, 3)
    stamps = [-1.5, 0.0, 1.25, 1_700_000_000.999, 1_767_225_600.9999996, 2.0, 3.0]
    rows = [
        (f"u{i % 3}", ids[str(i % 3)], ("view", "rate", "like")[i % 3],
         4.5 if i % 3 == 1 else None, t)
        for i, t in enumerate(stamps)
    ]  # fmt: skip
    _interactions(repo, rows)
    plain = _plain_arrays(repo)
    with repo.interactions.stream(chunk_rows=2) as stream:
        chunks = list(stream)
    assert [len(c) for c in chunks] == [2, 2, 2, 1] or sum(len(c) for c in chunks) == 7
    arrays = repo.load_interactions()
    assert arrays.user_ids.dtype == arrays.book_ids.dtype == np.int32
    assert (arrays.events.dtype, arrays.ratings.dtype, arrays.timestamps.dtype) == (
        np.int8, np.float32, np.int64,
    )  # fmt: skip
    assert arrays.user_ids.tolist() == [r[0] for r in plain]
    assert arrays.book_ids.tolist() == [r[1] for r in plain]
    assert [EVENTS[e] for e in arrays.events] == [r[2] for r in plain]
    assert np.array_equal(
        arrays.ratings,
        np.array([np.nan if r[3] is None else r[3] for r in plain], np.float32),
        equal_nan=True,
    )
    assert arrays.timestamps.tolist() == [int(np.floor(r[4])) for r in plain]
    assert np.concatenate([c.timestamps for c in chunks]).tolist() == arrays.timestamps.tolist()
    assert stream.rows == 7 and stream.max_interaction_id == arrays.max_interaction_id
    epochs = [r[4] for r in plain]
    assert (stream.totals.first_at, stream.totals.last_at) == (min(epochs), max(epochs))
    assert stream.totals.by_event.tolist() == [3, 0, 2, 2, 0]  # view, like, rate
    one = repo.load_interactions(repo.find_user("u1"))
    assert one.user_ids.tolist() == [repo.find_user("u1")] * 2
    assert one.ratings.tolist() == [4.5, 4.5]


def test_stream_newest_uses_the_recorded_totals_and_what_came_after(repo):
    from bookrec.algorithms.matrix import BookEventCounter

    ids = _books(repo, 2)
    _interactions(
        repo, [("u1", ids["0"], "view", None, 100.75), ("u2", ids["1"], "like", None, 50.0)]
    )
    with repo.interaction_stream() as stream:
        assert stream.newest() == 100.0  # no totals yet: from the table
        counter = BookEventCounter()
        for chunk in stream:
            counter.add(chunk)
    totals = stream.totals
    counts = counter.counts(stream.max_interaction_id, totals.first_at, totals.last_at)
    books = np.array(sorted(ids.values()))
    run = repo.start_run("gnn", {})
    repo.replace_vectors("gnn", run, {}, books, np.ones((2, 2), np.float32), event_counts=counts)
    assert "interaction_totals" in repo.snapshot_names()
    _interactions(repo, [("u3", ids["0"], "view", None, 75.0)])
    with repo.interaction_stream() as stream:
        assert stream.newest() == 100.0
    _interactions(repo, [("u3", ids["0"], "view", None, 300.5)])
    with repo.interaction_stream() as stream:
        assert stream.newest() == 300.0


def _scanned_counts(repo):
    """counts() as it is without any recorded totals (a full scan)."""
    repo.snapshots.delete("interaction_totals")
    return repo.counts()


def test_counts_from_recorded_totals_equal_a_scan(repo):
    ids = _books(repo, 3)
    _interactions(
        repo,
        [("u1", ids["0"], "view", None, 10.5), ("u1", ids["1"], "rate", 4.0, 20.0),
         ("u2", ids["2"], "purchase", None, 5.25)],
    )  # fmt: skip
    from bookrec.models.base import training_core
    from bookrec.progress import Phases
    from bookrec.services.training import load_training_data
    from bookrec.settings import Settings

    data = load_training_data(
        repo, Settings(), Phases(None), lambda matrix: training_core(matrix, 1, 1)
    )
    run = repo.start_run("gnn", {})
    books = data.matrix.book_ids
    repo.replace_vectors(
        "gnn", run, {}, books, np.ones((len(books), 2), np.float32),
        event_counts=data.interactions.event_counts,
    )  # fmt: skip
    assert {"interaction_totals", "book_event_counts"} <= repo.snapshot_names()
    _interactions(repo, [("u3", ids["0"], "like", None, 1.0), ("u3", ids["1"], "rate", 2.0, 99.0)])
    recorded = repo.counts()
    assert "interaction_totals" in repo.snapshot_names()
    assert recorded == _scanned_counts(repo)
    assert recorded["interactions_by_event"] == {
        "view": 1, "click": 0, "like": 1, "rate": 2, "purchase": 1,
    }  # fmt: skip
    assert (recorded["first_interaction_at"], recorded["last_interaction_at"]) == (1.0, 99.0)


def test_totals_die_with_a_changed_or_deleted_interaction(repo):
    ids = _books(repo, 2)
    _interactions(
        repo, [("u1", ids["0"], "view", None, 10.0), ("u2", ids["1"], "view", None, 20.0)]
    )
    counts = BookEventCounts(
        np.array([ids["0"], ids["1"]]), np.array([0, 0], np.int8), np.full(2, np.nan, np.float32),
        np.array([1, 1]), repo.counts()["max_interaction_id"], 10.0, 20.0,
    )  # fmt: skip
    books = np.array(sorted(ids.values()))
    at = "to_timestamp({})" if repo.backend == "postgresql" else "{}"
    for change in (
        f"UPDATE interactions SET occurred_at = {at.format(30)}"
        f" WHERE occurred_at = {at.format(20)}",
        f"DELETE FROM interactions WHERE occurred_at = {at.format(10)}",
    ):
        repo.replace_vectors(
            "gnn", repo.start_run("gnn", {}), {}, books, np.ones((2, 2), np.float32),
            event_counts=counts,
        )  # fmt: skip
        assert "interaction_totals" in repo.snapshot_names()
        repo.conn.execute(change)
        repo.conn.commit()
        assert "interaction_totals" not in repo.snapshot_names()
        assert "book_event_counts" not in repo.snapshot_names()
    assert repo.counts()["first_interaction_at"] == 30.0


def test_vector_stats_from_the_write_equal_a_scan_until_another_writer(repo):
    ids = _books(repo, 3)
    _interactions(repo, [("u1", ids["0"], "view", None, 1.0), ("u2", ids["1"], "view", None, 1.0)])
    users = np.array([repo.find_user("u1"), repo.find_user("u2")])
    books = np.array(sorted(ids.values()))
    repo.replace_vectors(
        "cf", repo.start_run("cf", {}), {}, books[:2], np.ones((2, 4), np.float32),
        users, np.ones((2, 4), np.float32),
    )  # fmt: skip
    assert {"books.cf_embedding", "users.cf_vector"} <= repo.snapshot_names()
    recorded = [repo.vector_stats("cf", side) for side in ("books", "users")]
    assert [(s.rows, s.with_vector, s.dimensions) for s in recorded] == [
        (3, 2, {4: 2}), (2, 2, {4: 2}),
    ]  # fmt: skip
    for name in ("books.cf_embedding", "users.cf_vector"):
        repo.snapshots.delete(name)
    assert [repo.vector_stats("cf", side) for side in ("books", "users")] == recorded
    repo.replace_vectors(
        "cf", repo.start_run("cf", {}), {}, books[:2], np.ones((2, 4), np.float32),
        users, np.ones((2, 4), np.float32),
    )  # fmt: skip
    # Another writer (the API, by hand) changes a user's vector: the header goes, status counts.
    repo.conn.execute(f"UPDATE users SET cf_vector = '[1, 2]' WHERE id = {users[0]}")
    repo.conn.commit()
    assert "users.cf_vector" not in repo.snapshot_names()
    stats = repo.vector_stats("cf", "users")
    assert (stats.with_vector, stats.dimensions) == (2, {2: 1, 4: 1})


def test_snapshots_of_many_chunks_read_back_whole(repo, monkeypatch):
    import bookrec.storage.snapshots as snapshots

    monkeypatch.setattr(snapshots, "CHUNK_BYTES", 100)  # 3 rows of 8 floats a chunk
    repo.upsert_books([[BookRecord(str(i), f"Book {i}") for i in range(50)]])
    books = np.array(sorted(repo.book_id_map().values()))
    vectors = np.random.default_rng(1).normal(size=(50, 8)).astype(np.float32)
    order = np.random.default_rng(2).permutation(50)
    repo.replace_vectors("gnn", repo.start_run("gnn", {}), {}, books[order], vectors[order])
    header = repo.snapshots.headers(["books.gnn_vector"])["books.gnn_vector"]
    assert (header.n_rows, header.width, header.n_chunks) == (50, 8, 17)
    ids, got = repo.load_vectors("gnn")
    assert ids.tolist() == books.tolist() and np.array_equal(got, vectors)
    assert not got.flags.writeable and not ids.flags.writeable
    assert repo.vector_stats("gnn", "books").dimensions == {8: 50}
    # A chunk gone (by hand): the snapshot is incomplete and not used; the columns answer.
    repo.conn.execute("DELETE FROM snapshot_chunks WHERE name = 'books.gnn_vector' AND chunk = 5")
    repo.conn.commit()
    assert repo.snapshots.read(["books.gnn_vector"], np.float32) == {}
    ids, got = repo.load_vectors("gnn")
    assert ids.tolist() == books.tolist() and np.array_equal(got, vectors)


def test_upgrade_from_v2_keeps_snapshots_and_their_triggers(db_url):
    repo = open_repository(db_url, create=True)
    for migration in repo.migrations()[:2]:
        repo.apply_migration(migration)
    ids = _books(repo, 2)
    books = np.array(sorted(ids.values()))
    vectors = np.array([[1.5, -2.0], [0.25, 8.0]], np.float32)
    for book, vector in zip(books.tolist(), vectors, strict=True):
        text = "[" + ", ".join(str(float(v)) for v in vector) + "]"
        repo.conn.execute(f"UPDATE books SET gnn_vector = '{text}' WHERE id = {book}")
    p = repo.dialect.param
    repo.conn.execute(
        "INSERT INTO snapshots (name, n_rows, width, ids, data, max_interaction_id)"
        f" VALUES ('books.gnn_vector', 2, 2, {p}, {p}, NULL)",
        (books.astype("<i8").tobytes(), (vectors * 2).astype("<f4").tobytes()),
    )  # v2's one-value snapshot (here doubled, to tell it from the columns)
    repo.conn.commit()
    assert [m.version for m in repo.migrate()] == [3, 4, 5]
    ids_read, from_snapshot = repo.load_vectors("gnn")
    assert ids_read.tolist() == books.tolist() and np.array_equal(from_snapshot, vectors * 2)
    repo.conn.execute(f"UPDATE books SET gnn_vector = NULL WHERE id = {books[0]}")
    repo.conn.commit()
    assert repo.snapshot_names() == set()
    assert repo.conn.execute("SELECT count(*) FROM snapshot_chunks").fetchone()[0] == 0
    ids_read, from_columns = repo.load_vectors("gnn")
    assert ids_read.tolist() == books[1:].tolist() and np.array_equal(from_columns, vectors[1:])
    repo.close()


def test_prefetched_items_come_in_order_errors_reach_the_caller_and_stopping_closes():
    from bookrec.storage.interactions import prefetched

    closed = []

    def source(n, fail_at=None):
        try:
            for i in range(n):
                if i == fail_at:
                    raise ValueError(f"item {i}")
                yield i
        finally:
            closed.append(n)

    assert list(prefetched(source(5))) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="item 2"):
        list(prefetched(source(5, fail_at=2)))
    early = prefetched(source(1000))
    assert [next(early), next(early)] == [0, 1]
    early.close()
    assert closed == [5, 5, 1000]


def test_snapshot_chunks_read_as_row_blocks_are_the_whole_snapshot(repo, monkeypatch):
    """recommend reads a snapshot's chunks as row blocks, not joined: the same rows."""
    import bookrec.storage.snapshots as snapshots

    monkeypatch.setattr(snapshots, "CHUNK_BYTES", 4 * 4 * 3)  # 3 rows of 4-d per chunk
    repo.upsert_books([[BookRecord(str(i), f"Book {i}") for i in range(10)]])
    ids = np.sort(np.fromiter(repo.book_id_map().values(), dtype=np.int64))
    vectors = np.random.default_rng(1).standard_normal((10, 4)).astype(np.float32)
    repo.replace_vectors("gnn", repo.start_run("gnn", {}), {}, ids, vectors)
    whole_ids, whole = repo.load_vectors("gnn")
    block_ids, blocks = repo.load_vector_families(["gnn"], as_blocks=True)["gnn"]
    assert [len(b) for b in blocks] == [3, 3, 3, 1]
    np.testing.assert_array_equal(block_ids, whole_ids)
    np.testing.assert_array_equal(np.concatenate(blocks), whole)
    np.testing.assert_array_equal(whole, vectors)
    json_ids, json_blocks = repo.load_vector_families(["content"], as_blocks=True)["content"]
    assert len(json_ids) == 0 and len(json_blocks) == 1


def test_sqlite_wal_shrinks_back_after_a_large_load(sqlite_url, monkeypatch):
    import bookrec.storage.sqlite as sqlite_backend

    monkeypatch.setattr(sqlite_backend, "WAL_LIMIT_BYTES", 256 << 10)
    repo = open_repository(sqlite_url, create=True)
    repo.migrate()
    other = open_repository(sqlite_url)  # keeps the WAL from being deleted at close
    ids = _books(repo)
    rows = [(f"u{i}", ids[str(i % 3)], "view", None, float(i)) for i in range(30_000)]
    _interactions(repo, rows)
    wal = Path(sqlite_url.removeprefix("sqlite:///") + "-wal")
    assert wal.stat().st_size > 1 << 20
    repo.start_run("cf", {})  # the next write starts the log again, truncated to the limit
    assert wal.stat().st_size <= 256 << 10
    other.close()
    repo.close()
