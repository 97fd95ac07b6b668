"""What a newcomer hit (issue 13): settings, option placement, --json errors, --wait, --k."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from bookrec.storage import open_repository
from tests.conftest import Cli
from tests.planted import write_planted


@pytest.fixture
def planted(cli, tmp_path):
    books, events = write_planted(tmp_path)
    cli.ok("ingest", "books", str(books))
    cli.ok("ingest", "interactions", str(events))
    return cli


def test_bad_setting_names_the_variable_and_the_env_file_line(tmp_path):
    cli = Cli(f"sqlite:///{tmp_path / 'x.db'}")
    result = cli("status", env={"BOOKREC_CF_FACTORS": "abc"})
    assert result.exit_code == 2
    assert result.stderr.startswith("error: bad setting cf.factors (BOOKREC_CF_FACTORS='abc'): ")
    (tmp_path / ".env").write_text("# settings\nBOOKREC_GNN_DIM=16\nBOOKREC_CF_FACTORS=abc\n")
    result = cli("status")
    assert result.exit_code == 2
    assert "bad setting cf.factors (.env line 3: BOOKREC_CF_FACTORS=abc): " in result.stderr


def test_unknown_variables_are_warned_about_with_the_nearest_setting(tmp_path):
    (tmp_path / ".env").write_text("BOOKREC_GNN_DIMM=16\n")
    cli = Cli(f"sqlite:///{tmp_path / 'x.db'}")
    env = {"BOOKREC_CF_FATORS": "64", "BOOKREC_NOTHING_LIKE_IT": "1", "BOOKREC_TEST_X": "1"}
    result = cli("status", env=env)
    assert result.exit_code == 0
    assert result.stderr.splitlines() == [
        "warning: environment variable BOOKREC_CF_FATORS is not a bookrec setting;"
        " did you mean BOOKREC_CF_FACTORS?",
        "warning: .env line 1: BOOKREC_GNN_DIMM is not a bookrec setting;"
        " did you mean BOOKREC_GNN_DIM?",
        "warning: environment variable BOOKREC_NOTHING_LIKE_IT is not a bookrec setting"
        " (bookrec config lists them)",
    ]


def test_global_options_after_the_command(db_url, tmp_path):
    other = Cli(f"sqlite:///{tmp_path / 'unused.db'}")
    result = other("status", "--json", "--database-url", db_url, "-q", "--debug")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["database"]["backend"] == db_url.split(":")[0]


def test_json_callers_get_the_error_on_stdout(planted):
    result = planted("recommend", "nobody", "--json")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: unknown user 'nobody'")
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "InputError" and error["exit_code"] == 2
    assert error["message"] == "unknown user 'nobody'" and "ingest interactions" in error["hint"]
    assert planted("recommend", "nobody").stdout == ""  # text callers: stderr only
    result = planted("train", "gnn", "--min-interactions", "1000", "--json")
    assert result.exit_code == 3
    assert json.loads(result.stdout)["error"]["type"] == "NotEnoughDataError"


def test_debug_output_does_not_suggest_debug(sqlite_url):
    cli = Cli(sqlite_url)
    cli.ok("db", "init")
    repo = open_repository(sqlite_url)
    repo.conn.execute("DROP TABLE training_runs")  # something bookrec does not expect
    repo.close()
    plain = cli("status")
    assert plain.exit_code == 1 and "(run with --debug for the traceback)" in plain.stderr
    debug = cli("--debug", "status")
    assert debug.exit_code == 1 and "Traceback" in debug.stderr
    assert "run with --debug" not in debug.stderr


def test_k_beyond_the_catalogue_returns_what_there_is_and_says_so(planted):
    result = planted("recommend", "g0-u1", "--k", "100000", "--strategy", "popular")
    assert result.exit_code == 0
    shown = result.stderr.strip()
    report = json.loads(
        planted.ok("recommend", "g0-u1", "--k", "100000", "--strategy", "popular", "--json").stdout
    )
    n = len(report["recommendations"])
    assert report["k"] == 100000 and report["rankable"] == n and 0 < n < 30
    assert (
        shown
        == f"{n:,} of the 100,000 asked for: there are no more books popular can rank for g0-u1"
    )
    assert planted.ok("recommend", "g0-u1", "--k", "3").stderr == ""


def test_wait_says_that_it_waits(planted):
    repo = open_repository(planted.url)
    env = {**os.environ, "BOOKREC_DATABASE_URL": planted.url}
    command = [sys.executable, "-m", "bookrec", "train", "cf", "--wait", "--min-interactions", "1"]
    with repo.training_lock("cf"):
        proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)  # fmt: skip
        watchdog = threading.Timer(120, proc.kill)
        watchdog.start()
        first = proc.stderr.readline()  # the lock is held until it says something
        watchdog.cancel()
    _, err = proc.communicate(timeout=120)
    repo.close()
    assert proc.returncode == 0, first + err
    assert first.startswith("waiting for the other bookrec train cf on ")
    quiet = subprocess.run([*command, "--quiet"], env=env, capture_output=True, text=True)
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_a_signal_before_the_command_runs_exits_quietly(sqlite_url):
    """SIGTERM while the command line is parsed: no traceback, exit 143."""
    env = {**os.environ, "BOOKREC_DATABASE_URL": sqlite_url}
    code = (
        "import os, signal, sys; sys.argv = ['bookrec', 'status'];"
        "from bookrec import interrupts; interrupts.install(); os.kill(os.getpid(), signal.SIGTERM)"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == 143 and proc.stderr == ""


AT_TEARDOWN = """
import os, sys, time, types


class Teardown:
    def __del__(self, write=os.write, sleep=time.sleep):
        write(1, b"teardown\\n")
        sleep(1)


from bookrec.cli import main

sys.argv = ["bookrec", "--version"]
try:
    main()
finally:
    # A module of its own (made after main() froze the GC's objects): deleted, and its object
    # with it, as the interpreter tears its modules down.
    sys.modules["teardown"] = types.ModuleType("teardown")
    sys.modules["teardown"].keep = Teardown()
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_the_interpreter_shuts_down_leaves_the_exit_status(signum):
    """Python gives a handled signal its default action back before it tears modules down: a
    Ctrl-C then killed the process (exit -2) after its output and its error line."""
    proc = subprocess.Popen([sys.executable, "-c", AT_TEARDOWN], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    lines = []
    while (line := proc.stdout.readline()) and line != "teardown\n":
        lines.append(line)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert line == "teardown\n", (lines, err)
    assert proc.returncode == 0 and err == "", (proc.returncode, err)
    assert lines[0].startswith("bookrec")


def test_sigterm_is_an_interrupt_inside_a_command():
    from bookrec import interrupts

    previous = {signum: signal.getsignal(signum) for signum in interrupts.HANDLED}
    for signum in interrupts.HANDLED:
        signal.signal(signum, signal.SIG_DFL)
    interrupts.install()
    threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM)).start()
    try:
        with pytest.raises(interrupts.Terminated) as raised, interrupts.command():
            time.sleep(5)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    assert interrupts.exit_code(raised.value) == 143
    assert isinstance(raised.value, KeyboardInterrupt)  # unwinds like Ctrl-C


def test_a_signal_after_the_commit_point_is_noted_and_does_not_interrupt():
    """A Ctrl-C right after a write's commit must not report the committed changes as not made
    (nor mark a succeeded run failed): from the commit point on, a signal is only noted."""
    import os
    import signal
    import time

    from bookrec import interrupts

    previous = {signum: signal.getsignal(signum) for signum in interrupts.HANDLED}
    try:
        for signum in interrupts.HANDLED:
            signal.signal(signum, interrupts._raise)
        with interrupts.command():
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(1)
            interrupts.commit_point()
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
        assert interrupts.late_signal() == signal.SIGTERM
        with interrupts.command():  # the next command starts interruptible again
            assert interrupts.late_signal() is None
            with pytest.raises(interrupts.Terminated):
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(1)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def test_an_error_a_library_makes_of_an_interrupt_is_reported_as_the_interrupt(monkeypatch):
    """A Ctrl-C while a C extension initialises surfaces as "ImportError: initialization
    failed"; the command still ends as interrupted (130), not as an unexpected error (1)."""
    import signal

    from typer.testing import CliRunner

    from bookrec import cli, interrupts

    def status(*args, **kwargs):
        interrupts._raised = signal.SIGINT  # what the handler records as it raises
        raise ImportError("initialization failed")

    monkeypatch.setattr("bookrec.services.status.collect_status", status)
    result = CliRunner().invoke(cli.app, ["status"])
    assert result.exit_code == 130, result.output
    assert "interrupted; nothing was changed" in result.output
