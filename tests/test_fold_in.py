"""bookrec train cf --fold-in / train gnn --fold-in on both backends."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bookrec.storage import open_repository
from tests.planted import write_planted

T0 = 1_767_225_600 + 86_400 * 30  # after every planted interaction


@pytest.fixture
def trained(cli, tmp_path):
    books, events = write_planted(tmp_path)
    cli.ok("ingest", "books", str(books), "--skip-embeddings")
    cli.ok("ingest", "interactions", str(events))
    cli.ok("train", "cf", "--factors", "8", "--regularization", "1")
    return cli


def _events(cli, tmp_path, rows: list[str], name: str = "more.csv", later: int = 0) -> None:
    """Interactions "user,book,event,rating" after the planted ones (`later` seconds more)."""
    path = tmp_path / name
    lines = [
        f"{u},{b},{e},{r},{T0 + later + i}"
        for i, (u, b, e, r) in enumerate(r.split(",") for r in rows)
    ]
    path.write_text("user_id,book_id,event,rating,timestamp\n" + "\n".join(lines) + "\n")
    cli.ok("ingest", "interactions", str(path))


def _state(url: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    repo = open_repository(url)
    try:
        found = {side: repo.load_vectors("cf", side) for side in ("books", "users")}
        found["gnn"] = repo.load_vectors("gnn", "books")
        found["json_books"] = repo.vectors.load_json(["cf"], "books")["cf"]
        return found
    finally:
        repo.close()


def _row(ids_vectors, row_id):
    ids, vectors = ids_vectors
    at = np.flatnonzero(ids == row_id)
    return vectors[at[0]] if len(at) else None


def _same_except(before, after, changed: set[int]) -> None:
    """Every row but the changed ones kept its vector, bit for bit."""
    ids_b, vec_b = before
    ids_a, vec_a = after
    keep = ~np.isin(ids_b, list(changed))
    at = np.searchsorted(ids_a, ids_b[keep])
    assert np.array_equal(ids_a[at], ids_b[keep])
    assert np.array_equal(vec_a[at], vec_b[keep])


def _ids(url, *, users=(), books=()):
    repo = open_repository(url)
    try:
        return [repo.find_user(u) for u in users], [repo.find_book(b) for b in books]
    finally:
        repo.close()


def test_without_a_full_run_fold_in_is_refused_with_exit_3(cli):
    for model in ("cf", "gnn"):
        result = cli("train", model, "--fold-in")
        assert result.exit_code == 3, result.output
        assert f"cannot fold into the {model} vectors" in result.stderr
        assert f"bookrec train {model}" in result.stderr
    repo = open_repository(cli.url)
    assert repo.runs() == []  # no run recorded
    repo.close()


def test_fold_in_options_of_the_full_run_are_refused(trained):
    result = trained("train", "cf", "--fold-in", "--factors", "4")
    assert result.exit_code == 2 and "--factors" in result.stderr


def test_new_and_changed_users_match_implicit_and_nothing_else_changes(trained, tmp_path):
    from implicit.cpu.als import AlternatingLeastSquares

    from bookrec.algorithms.matrix import WeightScheme, build_matrix

    before = _state(trained.url)
    _events(
        trained, tmp_path,
        ["new-u,g0-b1,like,", "new-u,g0-b2,purchase,", "new-u,g0-b3,rate,5",
         "g1-u0,g0-b4,like,", "g1-u0,g0-b5,like,"],
    )  # fmt: skip
    result = json.loads(trained.ok("train", "cf", "--fold-in", "--json").stdout)
    assert result["model"] == "cf-fold-in" and result["changed_users"] == 2
    assert result["users"] == 2 and result["books"] == 0
    (new_u, changed_u), _ = _ids(trained.url, users=["new-u", "g1-u0"])
    after = _state(trained.url)
    _same_except(before["users"], after["users"], {new_u, changed_u})
    assert np.array_equal(before["books"][1], after["books"][1])
    assert not np.array_equal(_row(before["users"], changed_u), _row(after["users"], changed_u))

    repo = open_repository(trained.url)
    base = repo.latest_run("cf")
    run = repo.latest_run("cf-fold-in")
    assert run.parameters["base_run_id"] == base.id and run.n_users == 2
    # implicit's own recalculate_user on the same book factors and parameters
    book_ids, book_vectors = after["books"]
    als = AlternatingLeastSquares(
        factors=8, regularization=base.parameters["regularization_used"],
        alpha=base.parameters["alpha"], dtype=np.float32,
    )  # fmt: skip
    als.item_factors = np.array(book_vectors)  # a writable copy
    als.user_factors = np.zeros((1, 8), np.float32)
    for user in (new_u, changed_u):
        rows = build_matrix(
            repo.load_interactions(user), WeightScheme(), user_ids=np.array([user]),
            book_ids=book_ids,
        )  # fmt: skip
        expected = als.recalculate_user(0, rows.matrix)
        got = _row(after["users"], user)
        cosine = got @ expected.ravel() / (np.linalg.norm(got) * np.linalg.norm(expected))
        assert cosine >= 0.999
    repo.close()
    recommended = json.loads(trained.ok("recommend", "new-u", "--strategy", "cf", "--json").stdout)[
        "recommendations"
    ]
    assert all(r["book"].startswith("g0-") for r in recommended[:3])
    # nothing new: a second fold-in writes no row
    again = json.loads(trained.ok("train", "cf", "--fold-in", "--json").stdout)
    assert again["changed_users"] == 0 and again["watermark"] == result["max_interaction_id"]


def test_only_low_ratings_give_no_vector(trained, tmp_path):
    _events(
        trained, tmp_path, ["grumpy,g0-b1,rate,1", "grumpy,g0-b2,rate,2", "grumpy,g0-b3,rate,2"]
    )
    result = json.loads(trained.ok("train", "cf", "--fold-in", "--json").stdout)
    assert result["changed_users"] == 1 and result["users"] == 0
    (grumpy,), _ = _ids(trained.url, users=["grumpy"])
    assert _row(_state(trained.url)["users"], grumpy) is None
    assert trained("recommend", "grumpy", "--strategy", "cf").exit_code == 3
    trained.ok("recommend", "grumpy")  # the fallbacks answer


def test_a_user_whose_likes_turn_to_low_ratings_loses_the_vector(trained, tmp_path):
    repo = open_repository(trained.url)
    user = repo.find_user("g0-u0")
    books = np.unique(repo.load_interactions(user).book_ids)
    summaries = {s.id: s.external_id for s in repo.book_summaries(books.tolist())}
    repo.close()
    # rate is a state but the other events accumulate: only a user with only ratings can
    # lose every weighted pair, so give a rating-only user a vector first
    _events(trained, tmp_path, [f"rater,{summaries[b]},rate,5" for b in books[:4]], "a.csv")
    trained.ok("train", "cf", "--fold-in")
    (rater,), _ = _ids(trained.url, users=["rater"])
    assert _row(_state(trained.url)["users"], rater) is not None
    _events(trained, tmp_path, [f"rater,{summaries[b]},rate,1" for b in books[:4]], "b.csv", 100)
    result = json.loads(trained.ok("train", "cf", "--fold-in", "--json").stdout)
    assert result["users_cleared"] == 1
    assert _row(_state(trained.url)["users"], rater) is None
    status = json.loads(trained.ok("status", "--json").stdout)
    users = status["vectors"]["cf"]["sides"]["users"]
    assert users["with_vector"] == 40  # the header kept in step: back to the planted 40


def test_new_book_gets_cf_and_gnn_vectors_and_snapshots_follow(trained, tmp_path):
    trained.ok("train", "gnn", "--dim", "16", "--walks-per-node", "5")
    new = tmp_path / "new_books.csv"
    new.write_text("external_id,title\ng0-new,Group0 saga new part\n")
    trained.ok("ingest", "books", str(new), "--skip-embeddings")
    before = _state(trained.url)
    readers = [f"g0-u{u}" for u in range(6)]
    _events(trained, tmp_path, [f"{u},g0-new,like," for u in readers])
    cf = json.loads(trained.ok("train", "cf", "--fold-in", "--json").stdout)
    assert cf["new_books"] == 1 and cf["books"] == 1 and cf["users"] == 6
    gnn = json.loads(trained.ok("train", "gnn", "--fold-in", "--json").stdout)
    assert gnn["model"] == "gnn-fold-in" and gnn["books"] == 1
    _, (book,) = _ids(trained.url, books=["g0-new"])
    after = _state(trained.url)
    assert _row(after["books"], book) is not None and _row(after["gnn"], book) is not None
    _same_except(before["books"], after["books"], {book})
    _same_except(before["gnn"], after["gnn"], {book})
    # the snapshot recommend reads is the JSON column the serving API reads
    assert np.array_equal(after["books"][0], after["json_books"][0])
    assert np.allclose(after["books"][1], after["json_books"][1], atol=1e-6)
    repo = open_repository(trained.url)
    assert {"books.cf_embedding", "books.gnn_vector"} <= repo.snapshot_names()
    repo.close()
    for space in ("cf", "gnn"):
        similar = json.loads(trained.ok("similar", "g0-new", "--space", space, "--json").stdout)[
            "similar"
        ]
        assert sum(b["book"].startswith("g0-") for b in similar[:5]) >= 4, space


def test_status_counts_what_waits_and_check_flags_it(trained, tmp_path):
    status = json.loads(trained.ok("status", "--json").stdout)
    assert status["vectors"]["cf"]["fold_in"]["users"] == 0
    assert status["vectors"]["gnn"]["fold_in"] is None  # no gnn run yet
    new = tmp_path / "new_books.csv"
    new.write_text("external_id,title\nfresh,Fresh\n")
    trained.ok("ingest", "books", str(new), "--skip-embeddings")
    _events(trained, tmp_path, ["a,fresh,like,", "b,fresh,like,", "g0-u1,g0-b9,view,"])
    status = json.loads(trained.ok("status", "--json").stdout)
    backlog = status["vectors"]["cf"]["fold_in"]
    assert (backlog["users"], backlog["books"], backlog["interactions"]) == (3, 1, 3)
    assert backlog["oldest_at"] is not None
    env = {"BOOKREC_STATUS_MAX_FOLD_IN_AGE_HOURS": "0.000001"}
    checked = trained("status", "--check", env=env)
    assert checked.exit_code != 0 and "fold-in" in checked.output + checked.stderr
    trained.ok("train", "cf", "--fold-in")
    status = json.loads(trained.ok("status", "--json").stdout)
    assert status["vectors"]["cf"]["fold_in"]["users"] == 0


def test_fold_in_and_full_run_share_the_lock(trained):
    repo = open_repository(trained.url)
    with repo.training_lock("cf"):
        result = trained("train", "cf", "--fold-in")
        assert result.exit_code == 1
        assert "another bookrec train cf is running" in result.stderr
    repo.close()


def test_fold_in_into_a_replaced_run_is_refused(trained, tmp_path):
    from bookrec.errors import BaseRunReplacedError

    _events(trained, tmp_path, ["new-u,g0-b1,like,", "new-u,g0-b2,like,"])
    repo = open_repository(trained.url)
    old_base = repo.latest_run("cf").id
    repo.close()
    trained.ok("train", "cf", "--factors", "8", "--regularization", "1", "--seed", "5")
    before = _state(trained.url)
    repo = open_repository(trained.url)
    run_id = repo.start_run("cf-fold-in", {"base_run_id": old_base})
    user = repo.find_user("new-u")
    with pytest.raises(BaseRunReplacedError, match="replaced"):
        repo.write_fold_in(
            "cf", "cf", old_base, run_id, {}, sides=[("users", np.array([user]), np.ones((1, 8)))]
        )
    repo.close()
    after = _state(trained.url)
    assert np.array_equal(before["users"][1], after["users"][1])


class ExplodingDisplay:
    """Fails the write phase half-way, like a crash after some rows were written."""

    def start(self, name, total):
        return name

    def update(self, task, done, total):
        if task == "write" and total and done >= total / 2:
            raise KeyboardInterrupt

    def stop(self, task):
        pass


def test_interrupted_fold_in_leaves_every_vector_as_it_was(trained, tmp_path):
    import bookrec
    from bookrec.storage import postgres, sqlite

    _events(trained, tmp_path, [f"n{u},g0-b{b},like," for u in range(30) for b in range(3)])
    before = _state(trained.url)
    for module in (postgres, sqlite):
        module.VECTOR_CHUNK = 5
    try:
        with (
            bookrec.open(trained.url, display=ExplodingDisplay()) as db,
            pytest.raises(KeyboardInterrupt),
        ):
            db.fold_in_cf()
    finally:
        for module in (postgres, sqlite):
            module.VECTOR_CHUNK = 5000
    after = _state(trained.url)
    for key in ("books", "users"):
        assert np.array_equal(before[key][0], after[key][0])
        assert np.array_equal(before[key][1], after[key][1])
    repo = open_repository(trained.url)
    run = repo.runs("cf-fold-in")[0]
    assert run.status == "failed" and "interrupted" in run.error
    repo.close()
    status = json.loads(trained.ok("status", "--json").stdout)
    assert status["vectors"]["cf"]["fold_in"]["users"] == 30  # still waiting


def test_irreproducible_base_run_is_refused(trained):
    repo = open_repository(trained.url)
    run = repo.latest_run("cf")
    d = repo.dialect
    with d.transaction():
        d.execute(
            f"UPDATE training_runs SET parameters = {d.param} WHERE id = {d.param}",
            (d.json_param({**run.parameters, "engine": "spark"}), run.id),
        )
    repo.close()
    result = trained("train", "cf", "--fold-in")
    assert result.exit_code == 3 and "spark" in result.stderr
