"""Faults at the storage layer (issue 13): lock files that outlive their run, a SQLite URL in a
directory that does not exist, runs whose process was killed. SQLite and PostgreSQL alike."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from bookrec.errors import LockBusyError
from bookrec.storage import open_repository
from tests.conftest import Cli


def _lock_files(url: str) -> list[str]:
    if not url.startswith("sqlite"):
        return []
    folder = Path(url.removeprefix("sqlite:///")).parent
    return sorted(p.name for p in folder.glob("*.lock"))


def _advisory_locks(repo) -> int:
    if repo.backend != "postgresql":
        return 0
    sql = (
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database ="
        " (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    return repo.conn.execute(sql).fetchone()[0]


def test_locks_leave_nothing_behind(db_url, repo):
    repo.migrate()
    with repo.training_lock("cf"):
        assert repo.dialect.lock_is_held("train-cf")
    assert not repo.dialect.lock_is_held("train-cf")
    assert _lock_files(db_url) == [] and _advisory_locks(repo) == 0


def test_a_waiter_takes_over_a_lock_whose_file_was_removed(db_url, repo):
    """The holder removes the lock file as it lets go; a process already waiting on that file
    must not then hold a lock nobody else sees: it locks the path's new file instead."""
    others = [open_repository(db_url) for _ in range(2)]
    waiter, third = others
    events: list[str] = []
    holding = threading.Event()
    release = threading.Event()

    def wait_then_hold() -> None:
        with waiter.training_lock("cf", wait=True, on_wait=lambda: events.append("waiting")):
            events.append("holding")
            holding.set()
            release.wait(10)

    with repo.training_lock("cf"):
        thread = threading.Thread(target=wait_then_hold)
        thread.start()
        while "waiting" not in events:
            threading.Event().wait(0.01)
    assert holding.wait(10)
    with pytest.raises(LockBusyError) as busy, third.training_lock("cf"):
        pass
    assert (busy.value.lock, busy.value.where) == ("train cf", third.url.where)
    assert busy.value.message == f"another bookrec train cf is running on {third.url.where}"
    release.set()
    thread.join()
    with third.training_lock("cf"):
        pass
    assert events == ["waiting", "holding"]
    assert _lock_files(db_url) == []
    for other in others:
        other.close()


KILLED_RUN = """
import os, signal, sys
from bookrec.storage import open_repository
repo = open_repository(sys.argv[1])
lock = repo.training_lock("cf")
lock.__enter__()
run = repo.start_run("cf", {"factors": 4})
print(run, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def _killed_run(url: str) -> int:
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, url], capture_output=True, text=True, check=False
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    return int(proc.stdout)


def test_a_killed_run_shows_as_died_and_the_next_run_marks_it_failed(db_url, repo):
    killed = _killed_run(db_url)
    (run,) = repo.runs("cf")
    assert (run.id, run.status) == (killed, "died")
    assert "ended before the run finished" in run.error
    assert repo.latest_run("cf", status=None).status == "died"
    status = json.loads(Cli(db_url).ok("status", "--json").stdout)
    assert status["vectors"]["cf"]["last_attempt"]["status"] == "died"
    # While a live run holds the lock, its row is running; the dead one is failed from then on.
    with repo.training_lock("cf"):
        live = repo.start_run("cf", {})
        runs = {r.id: r for r in repo.runs("cf")}
        assert runs[live].status == "running"
        assert runs[killed].status == "failed" and "ended before" in runs[killed].error
        repo.finish_run(live, "succeeded")
    assert [r.status for r in repo.runs("cf")] == ["succeeded", "failed"]
    assert _lock_files(db_url) == []  # the killed one's file, removed by the next holder


def test_a_run_of_another_model_is_not_marked(db_url, repo):
    killed = _killed_run(db_url)
    with repo.training_lock("gnn"):
        pass
    assert {r.id: r.status for r in repo.runs()} == {killed: "died"}


def test_db_init_does_not_create_a_missing_directory(tmp_path):
    missing = tmp_path / "no" / "such" / "dir"
    result = Cli(f"sqlite:///{missing / 'x.db'}")("db", "init")
    assert result.exit_code == 2
    assert f"the directory {missing} does not exist" in result.stderr
    assert not (tmp_path / "no").exists()


def test_db_init_creates_the_embedded_default_directory(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from bookrec.cli import app

    data_home = tmp_path / "fresh-data-home"
    monkeypatch.setenv("XDG_DATA_HOME", str(data_home))
    result = CliRunner().invoke(app, ["--quiet", "db", "init"])
    assert result.exit_code == 0, result.output
    assert (data_home / "bookrec" / "bookrec.db").is_file()
    assert sorted(os.listdir(data_home / "bookrec"))[0] == "bookrec.db"
    assert not any(name.endswith(".lock") for name in os.listdir(data_home / "bookrec"))


def test_status_after_training_answers_from_aggregates(db_url, repo, tmp_path):
    """No statement of status reads every interaction or every JSON vector once a training
    run recorded what it wrote (issue 16: 13 s and 1.8 GB at 10M interactions before)."""
    from bookrec.services.status import collect_status
    from bookrec.settings import Settings

    cli = Cli(db_url)
    lines = ["user_id,book_id,event,rating,timestamp"]
    lines += [f"u{i % 40},{1 + i % 30},view,,{1_700_000_000 + i}" for i in range(400)]
    (tmp_path / "books.csv").write_text(
        "external_id,title,authors\n"
        + "".join(f"{i},Book {i} of the {i % 7}th kind,Author {i % 5}\n" for i in range(1, 31))
    )
    (tmp_path / "events.csv").write_text("\n".join(lines) + "\n")
    cli.ok("ingest", "books", str(tmp_path / "books.csv"))  # embeds them, too
    cli.ok("ingest", "interactions", str(tmp_path / "events.csv"))
    cli.ok("train", "cf", "--factors", "4", "--iterations", "2")
    cli.ok("train", "gnn", "--dim", "8")
    scanned = collect_status(repo, Settings()).to_dict()

    statements: list[str] = []
    execute = repo.dialect.execute

    def recording(sql, params=()):
        statements.append(sql)
        return execute(sql, params)

    repo.dialect.execute = recording
    report = collect_status(repo, Settings()).to_dict()
    full_scans = [
        s for s in statements
        if "_array_length" in s or ("FROM interactions" in s and "WHERE id >" not in s
                                    and "max(id)" not in s
                                        and "ORDER BY id DESC LIMIT 1" not in s)
    ]  # fmt: skip
    assert full_scans == []
    assert report["vectors"]["cf"]["sides"]["users"]["with_vector"] == 40
    assert report["vectors"]["gnn"]["sides"]["books"]["dimensions"] == [8]
    assert report["counts"] == scanned["counts"] and report["vectors"] == scanned["vectors"]
