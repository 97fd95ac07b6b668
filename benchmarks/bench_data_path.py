"""The training data path at scale: `bookrec train cf` and `bookrec status` at N interactions
(default 10M: 300k users x 200k books, Zipf popularity, heavy-tailed activity) on SQLite and
PostgreSQL, beside a bare implicit fit of the same matrix; optionally the code of another
checkout (--old-src) on a copy of the same data, runs alternating.

Run by hand: python benchmarks/bench_data_path.py [--interactions 1e7] [--users 300000]
[--books 200000] [--backends sqlite,postgresql] [--repeat 2] [--old-src ../old/src] [--reuse]
Prints, per backend and code: wall seconds and peak RSS of each command, train cf's phases,
and the ratios to the bare fit. Targets (issue 16, this 2-core machine): train cf peak RSS
<= 1.5x the bare fit's and wall <= 1.2x its fit time; status <= 1 s and <= 200 MB.
The databases and data files live in benchmarks/out/ (several GB at 10M).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

from common import OUT, POSTGRES_SERVER, run_bookrec

BARE_FIT = """
import json, resource, sys, time
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from threadpoolctl import threadpool_limits

matrix = sp.load_npz(sys.argv[1]).tocsr()
params = json.loads(sys.argv[2])
with threadpool_limits(1, "blas"):
    model = AlternatingLeastSquares(
        factors=params["factors"], iterations=params["iterations"],
        regularization=params["regularization"], alpha=params["alpha"], random_state=42,
    )
    started = time.perf_counter()
    model.fit(matrix, show_progress=False)
    fit = time.perf_counter() - started
print(json.dumps({"fit": fit, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

SAVE_MATRIX = """
import sys
import scipy.sparse as sp
from bookrec.progress import Phases
from bookrec.models.base import training_core
from bookrec.services.training import load_training_data
from bookrec.settings import Settings
from bookrec.storage import open_repository

repo = open_repository(sys.argv[1])
data = load_training_data(
    repo, Settings(), Phases(None), lambda matrix: training_core(matrix, 2, 2)
)
sp.save_npz(sys.argv[2], data.matrix.matrix, compressed=False)
"""


def _data_files(args: argparse.Namespace) -> tuple[str, str]:
    from bookrec.synthetic import write_benchmark_csv

    tag = f"{args.interactions:.0f}-{args.users}x{args.books}"
    events, books = OUT / f"interactions-{tag}.csv", OUT / f"books-{args.books}.csv"
    if not books.exists():
        with books.open("w", encoding="utf-8") as out:
            out.write("external_id,title\n")
            out.writelines(f"{i},Book {i}\n" for i in range(1, args.books + 1))
    if not events.exists():
        write_benchmark_csv(
            events, n_users=args.users, n_books=args.books,
            n_interactions=int(args.interactions), seed=42,
        )  # fmt: skip
    return str(events), str(books)


def _with_code(src: str | None):
    """run_bookrec with PYTHONPATH set to another checkout's src (None: this one)."""

    def run(url: str, *command: str) -> dict:
        saved = os.environ.get("PYTHONPATH")
        if src:
            os.environ["PYTHONPATH"] = src
        try:
            return run_bookrec(url, *command)
        finally:
            if src:
                if saved is None:
                    os.environ.pop("PYTHONPATH")
                else:
                    os.environ["PYTHONPATH"] = saved

    return run


def _url(backend: str, name: str) -> str:
    if backend == "sqlite":
        return f"sqlite:///{OUT / (name + '.db')}"
    return POSTGRES_SERVER.rsplit("/", 1)[0] + "/" + name


def _empty_database(backend: str, name: str, template: str | None = None) -> str:
    """A new database (no schema; or a copy of the template database of the same backend)."""
    if backend == "sqlite":
        for leftover in OUT.glob(f"{name}.db*"):
            leftover.unlink()
        if template:
            shutil.copyfile(OUT / f"{template}.db", OUT / f"{name}.db")
        return _url(backend, name)
    import psycopg

    with psycopg.connect(POSTGRES_SERVER, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        copy = f' TEMPLATE "{template}"' if template else ""
        admin.execute(f'CREATE DATABASE "{name}"{copy}')
    return _url(backend, name)


def _exists(backend: str, name: str) -> bool:
    if backend == "sqlite":
        return (OUT / f"{name}.db").exists()
    import psycopg

    with psycopg.connect(POSTGRES_SERVER, autocommit=True) as admin:
        found = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        return found.fetchone() is not None


def _prepared(backend: str, args: argparse.Namespace, events: str, books: str) -> dict:
    """{label: url} of the databases to compare, each holding the same interactions: loaded
    by the first code (the old one, if given), copied and upgraded for the new one."""
    first = "old" if args.old_src else "new"
    name = f"bookrec_bench_path_{backend}_{first}"
    run = _with_code(args.old_src)
    if args.reuse and _exists(backend, name):
        url = _url(backend, name)
    else:
        url = _empty_database(backend, name)
        run(url, "db", "init")
        started = time.perf_counter()
        run(url, "ingest", "books", books, "--skip-embeddings")
        result = run(url, "ingest", "interactions", events)
        print(
            f"{backend:10s} ingest {time.perf_counter() - started:.0f} s"
            f" (interactions: peak RSS {result['peak_rss_mb']:.0f} MB)"
        )
    urls = {first: url}
    if args.old_src:
        copy = _empty_database(backend, f"bookrec_bench_path_{backend}_new", template=name)
        run_bookrec(copy, "db", "upgrade")
        urls["new"] = copy
    return urls


def _bare_fit(url: str, summary: dict) -> dict:
    matrix = OUT / "bench-data-path-matrix.npz"
    subprocess.run([sys.executable, "-c", SAVE_MATRIX, url, str(matrix)], check=True)
    params = {
        "factors": 128, "iterations": 15, "alpha": 4.0,
        "regularization": summary["regularization"],
    }  # fmt: skip
    timer = shutil.which("time") or "/usr/bin/time"
    started = time.perf_counter()
    proc = subprocess.run(
        [timer, "-v", sys.executable, "-c", BARE_FIT, str(matrix), json.dumps(params)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    wall = time.perf_counter() - started
    matrix.unlink()
    return {**json.loads(proc.stdout), "wall": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interactions", type=float, default=1e7)
    parser.add_argument("--users", type=int, default=300_000)
    parser.add_argument("--books", type=int, default=200_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--old-src", help="src folder of another checkout to compare")
    parser.add_argument("--reuse", action="store_true", help="keep databases already loaded")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    events, books = _data_files(args)
    print(f"load average {os.getloadavg()[0]:.1f}; {args.interactions:,.0f} interactions")
    for backend in args.backends.split(","):
        urls = _prepared(backend, args, events, books)
        codes = {"old": _with_code(args.old_src), "new": _with_code(None)}
        bare = None
        for round_ in range(args.repeat):
            for label, url in urls.items():
                run = codes[label]
                cf = run(url, "train", "cf", "--json")
                status = run(url, "status", "--json")
                summary = cf["json"]
                if bare is None:
                    bare = _bare_fit(urls["new"], summary)
                    print(
                        f"{backend:10s} bare implicit fit of the same matrix:"
                        f" fit {bare['fit']:.1f} s (process {bare['wall']:.1f} s),"
                        f" peak RSS {bare['rss_mb']:.0f} MB"
                    )
                phases = ", ".join(f"{k} {v:.1f}" for k, v in summary["phases"].items())
                print(
                    f"{backend:10s} {label} #{round_ + 1}: train cf {cf['wall']:.1f} s"
                    f" ({cf['wall'] / bare['fit']:.2f}x the bare fit; {phases}),"
                    f" peak RSS {cf['peak_rss_mb']:.0f} MB"
                    f" ({cf['peak_rss_mb'] / bare['rss_mb']:.2f}x);"
                    f" status {status['wall']:.2f} s, {status['peak_rss_mb']:.0f} MB"
                )


if __name__ == "__main__":
    main()
