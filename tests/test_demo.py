"""bookrec demo: the whole workflow, and the planted taste it shows."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bookrec.storage import open_repository
from tests.conftest import Cli

ROOT = Path(__file__).resolve().parents[1]
# Smaller models keep these end-to-end runs quick; the demo's defaults are what users get.
FAST = {"BOOKREC_GNN_DIM": "32", "BOOKREC_GNN_WALKS_PER_NODE": "4", "BOOKREC_CF_FACTORS": "32"}


def _vector_counts(report):
    return {
        family: min(side["with_vector"] for side in info["sides"].values())
        for family, info in report["vectors"].items()
    }


def test_demo_fills_a_database_and_refuses_a_used_one(db_url):
    cli = Cli(db_url)
    result = cli("demo", "--users", "60", "--json", env=FAST)
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert "CC BY-SA 4.0" in out["attribution"] and "SYNTHETIC" in out["synthetic"]
    assert out["steps"]["books"] == 10_000
    assert all(count > 0 for count in _vector_counts(out["status"]).values())
    assert out["status"]["strategies"]["hybrid"] is True
    user = next(iter(out["recommendations"]))
    assert set(out["recommendations"][user]) == {"hybrid", "cf", "gnn", "content", "popular"}
    assert out["similar"]["2"]["content"][0]["title"].startswith("Harry Potter")

    again = cli("demo", "--users", "60")
    assert again.exit_code == 2 and "already holds data" in again.stderr
    assert "--force" in again.stderr
    forced = cli("demo", "--users", "60", "--force", "--json", env=FAST)
    assert forced.exit_code == 0, forced.stderr


@pytest.mark.slow
def test_demo_at_its_defaults_on_a_sqlite_file(tmp_path):
    """Regression: the streamed read of the training data once opened the database with a
    second copy of SQLite in the same process (ADBC's driver), which broke the first one's
    WAL index: `bookrec demo --users 300` died of SIGBUS (exit 135) at train gnn's commit."""
    result = Cli(f"sqlite:///{tmp_path / 'demo.db'}")("demo", "--users", "300", "--json")
    assert result.exit_code == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["status"]["ready"] is True


def test_demo_text_output_names_the_licence(tmp_path):
    result = Cli(f"sqlite:///{tmp_path / 'demo.db'}")("demo", "--users", "40", env=FAST)
    assert result.exit_code == 0, result.stderr
    assert "goodbooks-10k by Zygmunt Zając, CC BY-SA 4.0" in result.stdout
    assert "answers popular, cf, gnn, content, hybrid" in result.stdout
    assert "ready yes" in result.stdout
    assert "hybrid recommendations for u00001" in result.stdout


def test_cf_recommendations_favour_the_planted_authors(tmp_path):
    from bookrec.synthetic import generate_demo_interactions, read_book_catalog

    users = 300
    cli = Cli(f"sqlite:///{tmp_path / 'taste.db'}")
    result = cli("demo", "--users", str(users), "--seed", "5", "--json", env=FAST)
    assert result.exit_code == 0, result.stderr
    truth = generate_demo_interactions(read_book_catalog(), n_users=users, seed=5)
    repo = open_repository(cli.url)
    book_ids, books = repo.load_vectors("cf", "books")
    external = {b.id: b.external_id for b in repo.book_summaries(book_ids.tolist())}
    all_books = np.asarray(truth.books)
    popular_order = np.argsort(-np.bincount(truth.book_index, minlength=len(all_books)))
    hits_cf, hits_popular, counted = 0, 0, 0
    for index, user in enumerate(truth.users):
        vector = repo.load_vector("cf", "users", repo.find_user(user))
        if vector is None:
            continue
        seen = set(all_books[truth.book_index[truth.user_index == index]].tolist())
        favourites = set(truth.tastes[index].book_ids) - seen
        ranked = [external[int(i)] for i in book_ids[np.argsort(-(books @ vector))]]
        top = [b for b in ranked if b not in seen][:10]
        popular = [all_books[i] for i in popular_order if all_books[i] not in seen][:10]
        hits_cf += len(favourites & set(top))
        hits_popular += len(favourites & set(popular))
        counted += 10
    repo.close()
    assert counted >= 10 * 250
    assert hits_cf / counted >= 0.15 and hits_cf >= 5 * hits_popular


@pytest.mark.slow
def test_fresh_install_runs_the_demo_offline(tmp_path):
    """pip install . into a new virtual environment, then the demo with no network."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-n", "true"]).returncode:
        pytest.skip("needs unshare -n (a network namespace) to cut the network")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, str(ROOT)], check=True, timeout=900)
    home = tmp_path / "home"
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8"}
    run = subprocess.run(
        ["unshare", "-n", str(venv / "bin" / "bookrec"), "demo", "--users", "60"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "answers popular, cf, gnn, content, hybrid" in run.stdout
    assert "ready yes" in run.stdout
    database = home / ".local" / "share" / "bookrec" / "bookrec.db"
    assert database.is_file()
    status = subprocess.run(
        [str(venv / "bin" / "bookrec"), "status", "--check", "--json"],
        env=env, cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    report = json.loads(status.stdout)
    assert all(count > 0 for count in _vector_counts(report).values())
    assert os.path.samefile(report["database"]["url"].removeprefix("sqlite:///"), database)
