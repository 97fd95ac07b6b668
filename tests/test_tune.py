"""bookrec tune: the nested split, the budgets, seeded repeats, --json, and --apply / --reset with
the precedence of tuned settings (both backends)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bookrec.domain import InteractionArrays
from bookrec.models.tune import TuneProtocol, nested_split, tune
from bookrec.settings import Settings
from tests.planted import write_planted


def _pairs(matrix, users, catalogue) -> set[tuple[int, int]]:
    coo = matrix.tocoo()
    return set(zip(users[coo.row].tolist(), catalogue[coo.col].tolist(), strict=True))


def _arrays(n_users: int = 120, seed: int = 3) -> InteractionArrays:
    """Demo readers (planted tastes) as the repository hands them over: user = index + 1."""
    from bookrec.synthetic import generate_demo_interactions

    data = generate_demo_interactions(n_users=n_users, seed=seed)
    book_ids = np.array([int(b) for b in data.books], dtype=np.int64)
    return InteractionArrays(
        user_ids=data.user_index.astype(np.int64) + 1, book_ids=book_ids[data.book_index],
        events=data.events, ratings=data.ratings, timestamps=data.timestamps,
    )  # fmt: skip


def _settings() -> Settings:
    """Small gnn, one worker: fast, and seeded runs repeat."""
    return Settings.defaults().with_overrides("gnn", workers=1, dim=16, walks_per_node=4)


def test_nested_split_never_leaks_the_test_holdout():
    data = _arrays()
    nested = nested_split(data, [], TuneProtocol(test_fraction=0.25, seed=5), Settings.defaults())
    test, validation = nested.test, nested.validation
    test_pairs = _pairs(test.relevant, test.users, test.catalogue)
    all_rows = set(zip(data.user_ids.tolist(), data.book_ids.tolist(), strict=True))
    full = validation.full
    trial_training = _pairs(full.matrix, full.user_ids, full.book_ids)
    validation_pairs = _pairs(validation.relevant, validation.users, validation.catalogue)
    assert test_pairs and validation_pairs and trial_training
    assert not test_pairs & trial_training
    assert not test_pairs & validation_pairs
    assert not validation_pairs & trial_training
    # The rest is exactly the trials' training plus the validation pairs (none of it lost).
    outer = _pairs(test.full.matrix, test.full.user_ids, test.full.book_ids)
    assert validation_pairs | trial_training <= outer <= all_rows
    assert not outer & test_pairs
    # One validation pair per user with >= 3 books, and the choice repeats for a seed.
    counts = np.diff(validation.relevant.indptr)
    assert counts.max() == 1
    again = nested_split(data, [], TuneProtocol(test_fraction=0.25, seed=5), Settings.defaults())
    assert _pairs(again.validation.relevant, again.validation.users, again.validation.catalogue) \
        == validation_pairs  # fmt: skip


def test_tune_keeps_the_best_and_repeats_for_a_seed():
    data = _arrays()
    runs = [
        tune(
            data,
            [],
            _settings(),
            strategies=["cf", "gnn", "hybrid"],
            trials=9,
            protocol=TuneProtocol(seed=11),
        )
        for _ in range(2)
    ]
    first, second = (r.to_dict() for r in runs)
    for result in first["results"]:
        result.pop("seconds")
        for trial in result["trials"]:
            trial.pop("seconds")
    for result in second["results"]:
        result.pop("seconds")
        for trial in result["trials"]:
            trial.pop("seconds")
    assert first["results"] == second["results"]
    for result in runs[0].results:
        assert result.validation["tuned"]["ndcg"] >= result.validation["default"]["ndcg"]
        assert result.trials[0].parameters == result.default_parameters
        best = max(t.value for t in result.trials if t.value is not None)
        assert result.validation["tuned"]["ndcg"] == pytest.approx(best)
    assert [r.trials_run for r in runs[0].results] == [3, 3, 3]


def test_tune_honours_the_timeout():
    data = _arrays(150)
    # What one trial per strategy and the test figures cost: below that no budget can go.
    floor = tune(data, [], _settings(), trials=4, protocol=TuneProtocol(seed=2)).seconds
    timeout = 1.5 * floor + 5.0
    report = tune(data, [], _settings(), trials=500, timeout=timeout, protocol=TuneProtocol(seed=2))
    slowest = max(t.seconds for r in report.results for t in r.trials)
    assert report.seconds <= timeout + slowest + 2.0
    assert any(r.stopped == "timeout" for r in report.results)
    assert sum(r.trials_run for r in report.results) > 4


def test_tune_json_apply_reset_and_precedence(cli, tmp_path):
    books, events = write_planted(tmp_path, groups=3, users_per_group=25, per_user=8)
    cli.ok("ingest", "books", str(books), "--skip-embeddings")
    cli.ok("ingest", "interactions", str(events))
    out = json.loads(cli.ok("tune", "--strategies", "cf", "--trials", "4", "--json").stdout)
    assert out["applied"] is False and [r["strategy"] for r in out["results"]] == ["cf"]
    cf = out["results"][0]
    assert cf["trials_run"] == 4 and cf["default_parameters"]["cf.factors"] == 128
    for which in ("validation", "test"):
        assert set(cf[which]) == {"default", "tuned"}
        assert 0.0 <= cf[which]["tuned"]["ndcg"] <= 1.0
    assert _sources(cli)["cf.factors"] == "default"  # not applied

    out = json.loads(
        cli.ok("tune", "--strategies", "cf", "--trials", "4", "--seed", "3", "--apply", "--json")
        .stdout
    )  # fmt: skip
    run, factors = out["run_id"], out["settings"]["cf.factors"]
    assert out["applied"] is True and factors != 128
    sources = _sources(cli)
    assert sources["cf.factors"] == f"tuned (run {run})" and sources["gnn.dim"] == "default"
    assert json.loads(cli.ok("train", "cf", "--json").stdout)["factors"] == factors
    # The environment and the command line beat tuned values; tuned ones beat the defaults.
    env = {"BOOKREC_CF_FACTORS": "7"}
    assert _sources(cli, env)["cf.factors"] == "env BOOKREC_CF_FACTORS"
    trained = cli("train", "cf", "--json", env=env)
    assert trained.exit_code == 0 and json.loads(trained.stdout)["factors"] == 7
    trained = json.loads(cli.ok("train", "cf", "--factors", "5", "--json").stdout)
    assert trained["factors"] == 5
    runs = [r for r in _runs(cli.url) if r.model == "tune"]
    assert [r.status for r in runs] == ["succeeded", "succeeded"]
    assert runs[0].id == run and runs[0].metrics["settings"]["cf.factors"] == factors

    reset = json.loads(cli.ok("tune", "--reset", "--json").stdout)
    assert reset["runs"] == [run] and reset["removed"] == 4
    assert _sources(cli)["cf.factors"] == "default"
    assert json.loads(cli.ok("train", "cf", "--json").stdout)["factors"] == 128


def test_tune_bad_input(cli, tmp_path):
    result = cli("tune", "--strategies", "popular")
    assert result.exit_code == 2 and "unknown strategies" in result.stderr
    assert cli("tune").exit_code == 3  # no interactions yet
    assert cli("tune", "--apply", "--reset").exit_code == 2


def test_tuned_values_replace_defaults_only():
    tuned = {"cf.factors": (32, 4), "cf.alpha": (9.0, 4), "gnn.epochs": (3, 4), "cf.gone": (1, 4)}
    settings = Settings.defaults().with_tuned(tuned)
    assert (settings.cf.factors, settings.cf.alpha, settings.gnn.epochs) == (32, 9.0, 3)
    assert settings.tuned_sources() == {"cf.factors": 4, "cf.alpha": 4, "gnn.epochs": 4}
    # An option given after them wins, and is no longer a tuned value.
    optioned = settings.with_overrides("cf", factors=16)
    assert optioned.cf.factors == 16 and "cf.factors" not in optioned.tuned_sources()
    assert optioned.with_tuned(tuned).cf.factors == 16
    # A value set in code (or by the environment) is never replaced.
    from bookrec.settings import CfSettings

    explicit = Settings.defaults().model_copy(update={"cf": CfSettings(factors=64)})
    assert explicit.with_tuned(tuned).cf.factors == 64


def test_environment_beats_tuned(monkeypatch):
    monkeypatch.setenv("BOOKREC_CF_FACTORS", "12")
    settings = Settings().with_tuned({"cf.factors": (32, 1), "cf.iterations": (3, 1)})
    assert settings.cf.factors == 12 and settings.cf.iterations == 3


def test_api_tune_apply_and_reset(sqlite_url, tmp_path):
    import bookrec

    books, events = write_planted(tmp_path)
    with bookrec.open(sqlite_url, create=True) as db:
        db.init()
        db.ingest_books(books, embed=False)
        db.ingest_interactions(events)
        report = db.tune(strategies=["cf"], trials=3, seed=3, apply=True)
        assert db.settings.cf.factors == report.settings["cf.factors"]
    with bookrec.open(sqlite_url) as db:
        assert db.settings.tuned_sources()["cf.factors"] == report.run_id
        assert db.reset_tuned().removed == 4
        assert db.settings.cf.factors == 128 and db.settings.tuned_sources() == {}


def _sources(cli, env=None) -> dict[str, str]:
    result = cli("config", "--json", env=env)
    assert result.exit_code == 0, result.stderr
    return {row["setting"]: row["source"] for row in json.loads(result.stdout)}


def _runs(url):
    from bookrec.storage import open_repository

    repo = open_repository(url)
    try:
        return repo.runs()
    finally:
        repo.close()
