"""The public Python API (`bookrec.open()`) on both backends: the same jobs as the commands,
typed results, errors without command-line hints, settings only when given."""

from __future__ import annotations

import json

import numpy as np
import pytest

import bookrec
from bookrec import results
from bookrec.errors import (
    LockBusyError,
    NotEnoughDataError,
    NoUserVectorError,
    SchemaMissingError,
)
from tests.planted import write_planted

GNN = {"dim": 16, "walk_length": 20, "walks_per_node": 10, "epochs": 5, "workers": 1}


@pytest.fixture
def planted_files(tmp_path):
    return write_planted(tmp_path)


@pytest.fixture
def trained(db_url, planted_files):
    books, events = planted_files
    with bookrec.open(db_url, create=True) as db:
        db.init()
        db.ingest_books(books)
        db.ingest_interactions(events)
        db.train_cf(factors=8, regularization=1.0)
        db.train_gnn(**GNN)
    return db_url


def test_the_whole_workflow_returns_typed_results(db_url, planted_files):
    books, events = planted_files
    with bookrec.open(db_url, create=True) as db:
        migrated = db.init()
        assert isinstance(migrated, results.MigrationResult)
        assert migrated.schema_version_before is None and migrated.applied
        loaded = db.ingest_books(books)
        assert isinstance(loaded, results.BookIngestResult)
        assert (loaded.inserted, loaded.updated, loaded.unchanged) == (30, 0, 0)
        assert isinstance(loaded.embeddings, results.EmbedResult)
        assert loaded.embeddings.embedded == 30
        events_loaded = db.ingest_interactions(events)
        assert isinstance(events_loaded, results.InteractionIngestResult)
        assert events_loaded.inserted == events_loaded.rows_read == 440
        cf = db.train_cf(factors=8, regularization=1.0)
        assert isinstance(cf, results.TrainCfResult)
        assert (cf.users, cf.books, cf.factors) == (40, 30, 8)
        gnn = db.train_gnn(**GNN)
        assert isinstance(gnn, results.TrainGnnResult) and gnn.dim == 16
        answer = db.recommend("g0-u3", k=5)
        assert isinstance(answer, results.Recommendations)
        assert answer.strategies_used == ("cf", "gnn", "content")
        assert len(answer.recommendations) == 5
        assert all(r.book.startswith("g0-") for r in answer.recommendations[:3])
        near = db.similar("g0-b1", space="gnn", k=3)
        assert isinstance(near, results.SimilarBooks) and len(near.similar) == 3
        report = db.evaluate(k=5, strategies=("popular", "cf"))
        assert isinstance(report, results.EvaluationReport)
        assert [r.strategy for r in report.results] == ["popular", "cf"]
        health = db.status()
        assert isinstance(health, results.StatusReport)
        assert health.vectors["cf"].sides["users"].with_vector == 40


def test_results_are_what_the_commands_print_as_json(trained, tmp_path):
    from tests.conftest import Cli

    cli = Cli(trained)
    with bookrec.open(trained) as db:
        through_api = db.recommend("g1-u2", strategy="hybrid").to_dict()
        status = db.status().to_dict()
    assert json.loads(cli.ok("recommend", "g1-u2", "--json").stdout) == through_api
    printed = json.loads(cli.ok("status", "--json").stdout)
    assert printed["vectors"] == status["vectors"] and printed["counts"] == status["counts"]


def test_the_same_seed_gives_the_same_vectors(trained):
    from bookrec.storage import open_repository

    def stored():
        repo = open_repository(trained)
        try:
            return repo.load_vectors("cf", "users")[1].copy(), repo.load_vectors("gnn")[1].copy()
        finally:
            repo.close()

    before = stored()
    with bookrec.open(trained) as db:
        db.train_cf(factors=8, regularization=1.0)
        db.train_gnn(**GNN)
    after = stored()
    assert np.array_equal(before[0], after[0]) and np.array_equal(before[1], after[1])


def test_settings_are_the_defaults_unless_given(db_url, monkeypatch, planted_files):
    monkeypatch.setenv("BOOKREC_CF_FACTORS", "6")
    books, events = planted_files
    with bookrec.open(db_url, create=True) as db:
        assert db.settings.cf.factors == 128  # the environment is not read
        db.init()
        db.ingest_books(books, embed=False)
        db.ingest_interactions(events)
    with bookrec.open(db_url, bookrec.Settings()) as db:
        assert db.train_cf().factors == 6  # unless asked: Settings() reads it
    with bookrec.open(db_url, bookrec.Settings().with_overrides("cf", factors=5)) as db:
        assert db.train_cf(factors=4).factors == 4  # a call's own override wins


def test_errors_carry_fields_and_no_command_line_hints(db_url, planted_files):
    with bookrec.open(db_url, create=True) as db, pytest.raises(SchemaMissingError):
        db.train_cf()
    books, events = planted_files
    with bookrec.open(db_url, create=True) as db:
        db.init()
        db.ingest_books(books, embed=False)
        db.ingest_interactions(events)
        with pytest.raises(NotEnoughDataError) as too_few:
            db.train_cf(min_interactions=100)
        assert (too_few.value.users, too_few.value.books) == (0, 0)
        assert too_few.value.hint is None  # "lower --min-interactions" is the CLI's to add
        db.train_cf(factors=4)
        newbie = planted_files[1].with_name("newbie.csv")
        newbie.write_text("user_id,book_id,event\nnewbie,g0-b1,like\n")
        db.ingest_interactions(newbie)
        with pytest.raises(NoUserVectorError) as no_vector:
            db.recommend("newbie", strategy="cf")
        assert no_vector.value.family == "cf" and no_vector.value.exit_code == 3
        with (
            db.repo.training_lock("cf"),
            bookrec.open(db_url) as other,
            pytest.raises(LockBusyError) as busy,
        ):
            other.train_cf()
        assert busy.value.lock == "train cf" and "--wait" not in str(busy.value)


def test_the_public_names():
    assert set(bookrec.__all__) == {"Bookrec", "Settings", "__version__", "open"}
    assert bookrec.open is bookrec.api.open
    with pytest.raises(AttributeError):
        _ = bookrec.nothing_here


def test_the_readme_example_runs(tmp_path, planted_files, capsys, monkeypatch):
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Python API", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    books, events = planted_files
    monkeypatch.chdir(tmp_path)
    books.rename(tmp_path / "books.csv")
    events.rename(tmp_path / "events.csv")
    exec(compile(code.replace('"u42"', '"g0-u3"'), "README.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "40" and len(printed) >= 6
