"""Signals at random moments of real bookrec processes: the short form of benchmarks/chaos.py,
and many Ctrl-Cs during `train gnn`'s skip-gram (it used to end in a segmentation fault)."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bookrec.storage import open_repository

pytestmark = pytest.mark.slow

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _chaos():
    sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location("chaos", BENCHMARKS / "chaos.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["chaos"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def chaos(monkeypatch):
    monkeypatch.setenv("BOOKREC_BENCH_PREFIX", f"test_{os.getpid()}_")
    # SIGINT is ignored in a background job; the bookrec processes must get the default.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield _chaos()
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_signals_at_random_moments_keep_the_invariants(chaos, backend, tmp_path, request):
    if backend == "postgresql":
        request.getfixturevalue("postgres_server")  # skips (or fails in CI) without a server
    lines = []
    kills = dict.fromkeys(chaos.COMMANDS, 2)
    results = chaos.run([backend], list(chaos.COMMANDS), kills, 5_000, seed=3,
                        report=lines.append, folder=tmp_path, keep=False)  # fmt: skip
    failures = [f for tally in results[backend].values() for f in tally.failures]
    assert failures == [], "\n".join(lines)
    assert sum(t.tries for t in results[backend].values()) == 2 * len(chaos.COMMANDS)
    written, found, problems = results["writers"][backend]
    assert problems == [] and written > 0 and found == written, "\n".join(lines)


def _gnn_vectors(url):
    repo = open_repository(url)
    try:
        return repo.load_vectors("gnn")
    finally:
        repo.close()


def _last_gnn_run(url):
    repo = open_repository(url)
    try:
        return repo.latest_run("gnn", status=None)
    finally:
        repo.close()


def test_ctrl_c_and_sigterm_at_random_moments_of_train_gnn_keep_the_vectors(db_url, tmp_path):
    """The regression test of the segmentation fault: Ctrl-C (exit 130) and SIGTERM (143)
    while gensim's workers run."""
    from bookrec.synthetic import write_benchmark_csv

    books = tmp_path / "books.csv"
    books.write_text("external_id,title\n" + "".join(f"{i},Book {i}\n" for i in range(1, 1001)))
    events = tmp_path / "events.csv"
    write_benchmark_csv(events, seed=1, n_users=1000, n_books=1000, n_interactions=20_000)
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    env = {**os.environ, "BOOKREC_DATABASE_URL": db_url, "TMPDIR": str(temporary)}
    base = [sys.executable, "-m", "bookrec", "--quiet"]
    for args in (["db", "init"], ["ingest", "books", str(books)],
                 ["ingest", "interactions", str(events)]):  # fmt: skip
        subprocess.run([*base, *args], env=env, check=True, capture_output=True)
    # The run of the earlier defaults; --force: the gate's verdict is not under test here.
    train = [*base, "train", "gnn", "--dim", "16", "--workers", "2", "--epochs", "2",
             "--walks-per-node", "5", "--walk-length", "20", "--learning-rate", "0.025",
             "--force", "--json"]  # fmt: skip
    started = time.perf_counter()
    first = subprocess.run(train, env=env, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    skipgram = json.loads(first.stdout)["phases"]["skipgram"]
    ids, vectors = _gnn_vectors(db_url)
    rng = random.Random(11)
    exits = []
    for sig in [signal.SIGINT, signal.SIGTERM] * 3:
        # Mostly inside skip-gram, the last seconds of the run before its write.
        delay = rng.uniform(max(0.3, seconds - skipgram - 1), seconds)
        before = _last_gnn_run(db_url)
        proc = subprocess.Popen(train, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip
        time.sleep(delay)
        proc.send_signal(sig)
        _, err = proc.communicate()
        # Known, rare (seen once in 7 runs at load ~10 after the ADBC and shutdown fixes): exit
        # -2 after bookrec had rolled back and printed its error. The vectors and the run are
        # checked below either way; see CHANGELOG.
        handled = "nothing was changed by the unfinished step" in err
        code = 128 + sig if proc.returncode == -sig and handled else proc.returncode
        exits.append(code)
        assert code in (128 + sig, 0), f"at {delay:.2f} s: {proc.returncode} {err}"
        if code:
            what = "interrupted" if sig == signal.SIGINT else "stopped by SIGTERM"
            assert err.strip() == f"error: {what}; nothing was changed by the unfinished step"
            new_ids, new_vectors = _gnn_vectors(db_url)
            assert np.array_equal(new_ids, ids) and np.array_equal(new_vectors, vectors)
            last = _last_gnn_run(db_url)
            if last.id != before.id:  # else the signal came before the run was recorded
                assert last.status == "failed"
                assert last.error == (
                    "KeyboardInterrupt: interrupted"
                    if sig == signal.SIGINT
                    else "Terminated: terminated by SIGTERM"
                )
        else:
            ids, vectors = _gnn_vectors(db_url)
        assert list(temporary.iterdir()) == []
    assert sum(1 for code in exits if code) >= 3, exits
