"""Helpers of the benchmark scripts: fresh databases, timed bookrec subprocesses, peak RSS."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"
POSTGRES_SERVER = os.environ.get(
    "BOOKREC_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
BOOKREC = [sys.executable, "-m", "bookrec", "--quiet"]


def fresh_database(backend: str, name: str, *, init: bool = True) -> str:
    """URL of a new, empty database of the backend (schema created unless not `init`).
    BOOKREC_BENCH_PREFIX, if set, is put before the name, so that benchmarks run side by side
    do not share a database."""
    name = os.environ.get("BOOKREC_BENCH_PREFIX", "") + name
    if backend == "sqlite":
        path = OUT / f"{name}.db"
        for leftover in OUT.glob(f"{name}.db*"):
            leftover.unlink()
        url = f"sqlite:///{path}"
    else:
        import psycopg

        with psycopg.connect(POSTGRES_SERVER, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}"')
        url = POSTGRES_SERVER.rsplit("/", 1)[0] + "/" + name
    if init:
        run_bookrec(url, "db", "init")
    return url


def run_bookrec(url: str, *args: str) -> dict:
    """Run bookrec in a subprocess under /usr/bin/time -v: wall seconds, peak RSS, JSON output."""
    env = {**os.environ, "BOOKREC_DATABASE_URL": url}
    # An installed bookrec has its bytecode compiled (pip and pipx do it); without this, a
    # developer shell with PYTHONDONTWRITEBYTECODE would time the compiler on every run.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    command = [*BOOKREC, *args]
    timer = shutil.which("time") or "/usr/bin/time"
    started = time.perf_counter()
    proc = subprocess.run(
        [timer, "-v", *command], env=env, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"bookrec {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    try:
        data = json.loads(proc.stdout) if "--json" in args else {}
    except json.JSONDecodeError:
        data = {}
    return {"wall": wall, "peak_rss_mb": int(peak.group(1)) / 1024 if peak else None, "json": data}


def books_csv() -> Path:
    shared = Path(__file__).resolve().parents[2] / "shared/data/goodbooks-10k/books.csv"
    if shared.is_file():
        return shared
    from bookrec.synthetic import bundled_books_path

    return bundled_books_path()
