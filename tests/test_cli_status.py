"""bookrec status, config, db and the error edge through the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from bookrec.storage import open_repository
from tests.conftest import Cli

EVENTS = "user_id,book_id,event,rating,timestamp\nu1,1,view,,1767225600\nu2,2,rate,4,1767225601\n"


def _load_small(cli: Cli, books_csv: Path, tmp_path: Path) -> None:
    cli.ok("ingest", "books", str(books_csv))
    (tmp_path / "events.csv").write_text(EVENTS)
    cli.ok("ingest", "interactions", str(tmp_path / "events.csv"))


def test_status_before_schema_reports_and_check_fails(db_url):
    cli = Cli(db_url)
    result = cli("status")
    assert result.exit_code == 0
    assert "no bookrec schema (bookrec db init creates it)" in result.stdout
    assert "schema v-" not in result.stdout and "ready no: 1 warning" in result.stdout
    assert "no bookrec schema: run bookrec db init" in result.stdout
    assert json.loads(cli.ok("status", "--json").stdout)["ready"] is False
    assert cli("status", "--check").exit_code == 3


def _views(cli: Cli, env: dict[str, str] | None = None) -> tuple[bool, bool, int]:
    """Whether text status, status --json and the exit code of status --check say ready."""
    text = cli("status", env=env)
    report = json.loads(cli("status", "--json", env=env).stdout)
    check = cli("status", "--check", env=env).exit_code
    assert ("ready yes" in text.stdout) != ("ready no:" in text.stdout), text.stdout
    return "ready yes" in text.stdout, report["ready"], check


def test_text_json_and_check_agree_on_readiness(cli, books_csv, tmp_path):
    assert _views(cli) == (False, False, 3)  # an empty database
    _load_small(cli, books_csv, tmp_path)
    assert _views(cli) == (False, False, 3)  # no cf or gnn vectors yet
    cli.ok("train", "cf", "--factors", "4", "--min-interactions", "1", "--iterations", "2")
    cli.ok("train", "gnn", "--dim", "8", "--workers", "1")
    assert _views(cli) == (True, True, 0)
    report = json.loads(cli.ok("status", "--json").stdout)
    assert report["warnings"] == [] and all(report["strategies"].values())
    repo = open_repository(cli.url)  # a run that failed (a crash, a database error)
    repo.finish_run(repo.start_run("cf", {}), "failed", error="JobFailedError: boom")
    repo.close()
    assert _views(cli) == (False, False, 3)
    warnings = json.loads(cli("status", "--json").stdout)["warnings"]
    assert any(w.startswith("the last cf run") for w in warnings)


def test_usage_error_records_no_run_and_status_stays_ready(cli, books_csv, tmp_path):
    _load_small(cli, books_csv, tmp_path)
    cli.ok("train", "cf", "--factors", "4", "--min-interactions", "1", "--iterations", "2")
    cli.ok("train", "gnn", "--dim", "8", "--workers", "1")
    for args in (("--engine", "magic"), ("--dim", "0")):
        assert cli("train", "gnn", *args).exit_code == 2
    repo = open_repository(cli.url)
    assert [r.status for r in repo.runs("gnn")] == ["succeeded"]
    repo.close()
    assert _views(cli) == (True, True, 0)


def test_staleness_is_measured_against_the_wall_clock(cli, books_csv, tmp_path):
    _load_small(cli, books_csv, tmp_path)
    cli.ok("train", "cf", "--factors", "4", "--min-interactions", "1", "--iterations", "2")
    cli.ok("train", "gnn", "--dim", "8", "--workers", "1")
    hour_ago = {"BOOKREC_STATUS_MAX_DATA_AGE_HOURS": "1"}
    assert _views(cli, hour_ago) == (True, True, 0)
    # The interactions arrived two hours ago, and nothing since: the pipeline looks dead.
    repo = open_repository(cli.url)
    arrived = repo.counts()["last_arrival_at"]
    earlier = "interval '2 hours'" if repo.backend == "postgresql" else str(2 * 3600)
    repo.conn.execute(f"UPDATE interactions SET created_at = created_at - {earlier}")
    repo.conn.commit()
    repo.close()
    assert _views(cli) == (True, True, 0)  # max_data_age_hours is unset by default
    assert _views(cli, hour_ago) == (False, False, 3)
    report = json.loads(cli("status", "--json", env=hour_ago).stdout)
    assert report["counts"]["last_arrival_at"] < arrived - 7000
    assert report["warnings"] == [
        "no interaction has arrived for 2 h (limit 1 h): is the ingest pipeline running?"
    ]
    # New interactions the vectors do not include yet: stale once they have waited too long.
    (tmp_path / "more.csv").write_text(EVENTS.replace("u1,1,view", "u3,5,like"))
    cli.ok("ingest", "interactions", str(tmp_path / "more.csv"))
    assert _views(cli) == (True, True, 0)
    report = json.loads(cli.ok("status", "--json").stdout)
    assert report["vectors"]["gnn"]["interactions_since_run"] == 1
    assert report["vectors"]["gnn"]["oldest_since_run_at"] >= arrived
    tiny = {"BOOKREC_STATUS_MAX_VECTOR_AGE_HOURS": "0.00001"}
    assert _views(cli, tiny) == (False, False, 3)
    warnings = json.loads(cli("status", "--json", env=tiny).stdout)["warnings"]
    assert sorted(w.split(" vectors miss 1 interactions")[0] for w in warnings) == ["cf", "gnn"]


def test_status_json_counts_coverage_and_readiness(cli, books_csv, tmp_path):
    _load_small(cli, books_csv, tmp_path)
    report = json.loads(cli.ok("status", "--json").stdout)
    assert report["database"]["schema_version"] == 4
    assert report["counts"]["books"] == 10_000 and report["counts"]["interactions"] == 2
    assert report["counts"]["interactions_by_event"] == {
        "view": 1, "click": 0, "like": 0, "rate": 1, "purchase": 0,
    }  # fmt: skip
    assert report["counts"]["first_interaction_at"] == 1767225600
    assert report["vectors"]["cf"]["sides"]["users"]["with_vector"] == 0
    assert report["strategies"] == {
        "popular": True, "cf": False, "gnn": False, "content": True, "hybrid": True,
    }  # fmt: skip
    assert report["vectors"]["content"]["sides"]["books"]["with_vector"] == 10_000
    assert report["ready"] is False
    assert cli("status", "--check").exit_code == 3


def test_status_shows_vector_coverage_run_and_staleness(cli, books_csv, tmp_path):
    _load_small(cli, books_csv, tmp_path)
    repo = open_repository(cli.url)
    arrays = repo.load_interactions()
    run = repo.start_run("cf", {"factors": 3})
    repo.replace_vectors(
        "cf", run, {"max_interaction_id": arrays.max_interaction_id},
        np.unique(arrays.book_ids), np.ones((2, 3), np.float32),
        np.unique(arrays.user_ids), np.ones((2, 3), np.float32),
    )  # fmt: skip
    repo.close()
    (tmp_path / "more.csv").write_text(EVENTS.replace("u1,1,view", "u3,5,like"))
    cli.ok("ingest", "interactions", str(tmp_path / "more.csv"))
    report = json.loads(cli.ok("status", "--json").stdout)
    cf = report["vectors"]["cf"]
    assert cf["sides"]["books"]["with_vector"] == 2 and cf["sides"]["books"]["dimensions"] == [3]
    assert cf["run"]["id"] == run and cf["interactions_since_run"] == 1
    assert report["strategies"]["cf"] is True and report["strategies"]["hybrid"] is True
    text = cli.ok("status").stdout
    assert "users.cf_vector" in text and "2 / 3" in text
    assert cf["snapshot"] is True and report["vectors"]["gnn"]["snapshot"] is False
    assert report["event_counts_snapshot"] is False  # only train cf / gnn store the counts
    assert "from the JSON columns" not in text
    repo = open_repository(cli.url)
    repo.conn.execute("UPDATE books SET cf_embedding = cf_embedding")  # any other writer
    repo.conn.commit()
    repo.close()
    assert json.loads(cli.ok("status", "--json").stdout)["vectors"]["cf"]["snapshot"] is False
    assert "read cf from the JSON columns" in cli.ok("status").stdout


def test_password_never_shown(tmp_path):
    url = "postgresql://bookrec:s3cr3t-pw@127.0.0.1:1/prod"
    cli = Cli(url)
    for args in (("status",), ("status", "--json"), ("config",), ("--debug", "status")):
        result = cli(*args)
        assert "s3cr3t-pw" not in result.stdout + result.stderr, args
    result = cli("status")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: cannot connect to postgresql database 'prod' on 127.0")
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1
    config = cli("config", "--json")
    assert config.exit_code == 0
    rows = {r["setting"]: r for r in json.loads(config.stdout)}
    assert rows["database.url"]["value"] == "postgresql://bookrec:***@127.0.0.1:1/prod"
    assert rows["database.url"]["source"] == "env BOOKREC_DATABASE_URL"


def test_config_sources(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("BOOKREC_CF_FACTORS=32\nBOOKREC_GNN_Q=0.25\n")
    monkeypatch.setenv("BOOKREC_GNN_Q", "2.0")
    cli = Cli(f"sqlite:///{tmp_path / 'x.db'}")
    rows = {r["setting"]: r for r in json.loads(cli.ok("config", "--json").stdout)}
    assert rows["cf.factors"] == {
        "setting": "cf.factors",
        "value": 32,
        "source": ".env BOOKREC_CF_FACTORS",
    }
    assert rows["gnn.q"]["value"] == 2.0 and rows["gnn.q"]["source"] == "env BOOKREC_GNN_Q"
    assert rows["cf.iterations"]["source"] == "default"
    over = Cli(f"sqlite:///{tmp_path / 'x.db'}")(
        "--database-url", "sqlite:///other.db", "config", "--json"
    )
    rows = {r["setting"]: r for r in json.loads(over.stdout)}
    assert rows["database.url"] == {
        "setting": "database.url",
        "value": "sqlite:///other.db",
        "source": "option",
    }


def test_bad_setting_is_a_usage_error(tmp_path):
    cli = Cli(f"sqlite:///{tmp_path / 'x.db'}")
    result = cli("status", env={"BOOKREC_CF_FACTORS": "many"})
    assert result.exit_code == 2 and "bad setting cf.factors" in result.stderr


def test_default_database_is_sqlite_in_user_data_dir(tmp_path):
    from typer.testing import CliRunner

    from bookrec.cli import app

    result = CliRunner().invoke(app, ["db", "init", "--json"])
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "xdg-data" / "bookrec" / "bookrec.db").is_file()


def test_db_upgrade_needs_init_and_is_idempotent(db_url):
    cli = Cli(db_url)
    result = cli("db", "upgrade")
    assert result.exit_code == 3 and "bookrec db init" in result.stderr
    cli.ok("db", "init")
    out = json.loads(cli.ok("db", "upgrade", "--json").stdout)
    assert out["applied"] == [] and out["schema_version"] == 4


def test_version_and_module_entry_point():
    result = subprocess.run(
        [sys.executable, "-m", "bookrec", "--version"], capture_output=True, text=True, check=True
    )
    from bookrec import __version__

    assert result.stdout.strip() == f"bookrec {__version__}"
