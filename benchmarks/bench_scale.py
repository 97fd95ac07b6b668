"""bookrec end to end at scale: generate N interactions with a realistic shape (Zipf book
popularity, heavy-tailed user activity: synthetic.generate_benchmark_interactions) and run
ingest books, ingest interactions, train cf, train gnn, embed, recommend, similar, status and
export vectors on SQLite and PostgreSQL, printing wall, peak RSS and the phases each command
reports in its --json; with several sizes, the per-interaction slopes between them.

Run by hand (long: wrap in `flock -x /tmp/bookrec-bench.lock`):
    python benchmarks/bench_scale.py --interactions 1e6,1e7 [--backends sqlite,postgresql]
        [--gnn-up-to 1e7] [--gnn-above "--epochs 1 --walks-per-node 1"]
        [--users-per 0.03] [--books-per 0.02] [--users 876145 --books 2360655]
Users and books scale with N (default 3% and 2% of N: 10M -> 300k users x 200k books, the
shape of issue 16's measurements), or stay fixed with --users/--books (Goodreads' 876,145 x
2,360,655: then the slopes are per interaction alone, not mixed with the node count).
Data files and SQLite databases go to benchmarks/out/ (BOOKREC_BENCH_PREFIX keeps side-by-side
runs apart); figures to out/bench_scale.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
from common import OUT, fresh_database, run_bookrec

WORDS = 5_000  # the vocabulary of the generated titles (content vectors need words)


def write_data(n: int, users: int, books: int) -> tuple[Path, Path]:
    """books CSV and interactions Parquet of that size (kept in OUT for the next run)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from bookrec.domain import EVENTS
    from bookrec.synthetic.benchmark import generate_benchmark_interactions

    tag = f"{n}-{users}x{books}"
    events_path, books_path = OUT / f"scale-events-{tag}.parquet", OUT / f"scale-books-{books}.csv"
    if not events_path.exists():
        started = time.perf_counter()
        data = generate_benchmark_interactions(
            n_users=users, n_books=books, n_interactions=n, seed=42
        )
        user_names = np.asarray(data.users, dtype=object)
        book_names = np.asarray(data.books, dtype=object)
        part = events_path.with_suffix(".part")
        with pq.ParquetWriter(part, _events_schema(pa)) as writer:
            for start in range(0, n, 2_000_000):
                rows = slice(start, start + 2_000_000)
                writer.write_table(
                    pa.table(
                        {
                            "user_id": pa.array(user_names[data.user_index[rows]], pa.string()),
                            "book_id": pa.array(book_names[data.book_index[rows]], pa.string()),
                            "event": pa.array(np.asarray(EVENTS, object)[data.events[rows]]),
                            "rating": pa.array(data.ratings[rows], pa.float32(), from_pandas=True),
                            "timestamp": pa.array(data.timestamps[rows].astype("datetime64[s]")),
                        }
                    )
                )
        part.rename(events_path)
        print(f"  generated {n:,} interactions in {time.perf_counter() - started:.0f} s")
        if not books_path.exists():
            _write_books(books_path, book_names.tolist())
    return books_path, events_path


def _events_schema(pa):
    return pa.schema(
        [("user_id", pa.string()), ("book_id", pa.string()), ("event", pa.string()),
         ("rating", pa.float32()), ("timestamp", pa.timestamp("s"))]
    )  # fmt: skip


def _write_books(path: Path, names: list[str]) -> None:
    rng = np.random.default_rng(7)
    words = np.array([f"w{i}" for i in range(WORDS)], dtype=object)
    lengths = rng.integers(2, 7, len(names))
    picks = words[rng.zipf(1.3, lengths.sum()) % WORDS]
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    with path.open("w", encoding="utf-8") as out:
        out.write("external_id,title\n")
        for i, name in enumerate(names):
            out.write(f"{name},{' '.join(picks[bounds[i] : bounds[i + 1]])}\n")


def run_backend(backend: str, n: int, args: argparse.Namespace) -> dict:
    users = args.users or int(n * args.users_per)
    books = args.books or int(n * args.books_per)
    books_path, events_path = write_data(n, users, books)
    url = fresh_database(backend, f"bookrec_bench_scale_{n}")
    figures: dict[str, dict] = {}

    def step(name: str, *command: str) -> dict:
        result = run_bookrec(url, *command)
        data = result["json"]
        figures[name] = {
            "wall": round(result["wall"], 2),
            "peak_rss_mb": round(result["peak_rss_mb"] or 0),
            "phases": data.get("phases", {}),
        }
        phases = " ".join(f"{k} {v:.1f}" for k, v in figures[name]["phases"].items())
        print(
            f"  {name:22s} {result['wall']:8.1f} s {result['peak_rss_mb'] or 0:8.0f} MB  {phases}",
            flush=True,
        )
        return data

    print(f"{backend}, {n:,} interactions ({users:,} users x {books:,} books)", flush=True)
    step("ingest books", "ingest", "books", str(books_path), "--skip-embeddings", "--json")
    step("ingest interactions", "ingest", "interactions", str(events_path), "--json")
    step("train cf", "train", "cf", "--force", "--json")
    trains_gnn = n <= args.gnn_up_to or args.gnn_above is not None
    if n <= args.gnn_up_to:
        step("train gnn", "train", "gnn", "--force", "--json")
    elif args.gnn_above is not None:  # its memory at this size, at a cost that fits a session
        options = args.gnn_above.split()
        step("train gnn", "train", "gnn", "--force", *options, "--json")
        figures["train gnn"]["options"] = options
    else:
        print(f"  train gnn skipped (over --gnn-up-to {args.gnn_up_to:,.0f})")
    step("embed", "embed", "--json")
    step("status", "status", "--json")
    walls = []
    for user in _first_users(url, 3):
        step("recommend", "recommend", user, "--json")
        walls.append(figures["recommend"]["wall"])
    figures["recommend"]["wall"] = round(statistics.median(walls), 3)
    figures["recommend"]["walls"] = walls
    step("similar", "similar", "1", "--space", "cf", "--json")
    target = OUT / f"scale-{backend}-{n}-cf.parquet"
    exported = step("export cf books", "export", "vectors", "--family", "cf", str(target), "--json")
    figures["export cf books"]["vectors_per_second"] = exported.get("vectors_per_second")
    target.unlink(missing_ok=True)
    if trains_gnn:
        target = OUT / f"scale-{backend}-{n}-gnn.parquet"
        exported = step("export gnn books", "export", "vectors", "--family", "gnn", str(target),
                        "--json")  # fmt: skip
        figures["export gnn books"]["vectors_per_second"] = exported.get("vectors_per_second")
        target.unlink(missing_ok=True)
    figures["disk_mb"] = _database_mb(backend, url)
    print(f"  database size          {figures['disk_mb']:,.0f} MB", flush=True)
    return {"backend": backend, "interactions": n, "users": users, "books": books, **figures}


def _first_users(url: str, n: int) -> list[str]:
    from bookrec.storage import open_repository

    repo = open_repository(url)
    try:
        rows = repo.conn.execute(f"SELECT external_id FROM users ORDER BY id LIMIT {n}")
        return [r[0] for r in rows.fetchall()]
    finally:
        repo.close()


def _database_mb(backend: str, url: str) -> float:
    if backend == "sqlite":
        path = Path(url.removeprefix("sqlite:///"))
        return sum(p.stat().st_size for p in path.parent.glob(path.name + "*")) / 1e6
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute("SELECT pg_database_size(current_database())").fetchone()[0] / 1e6


def print_slopes(results: list[dict]) -> None:
    """Per command: seconds and MB per million interactions between the smallest and largest
    size of each backend."""
    for backend in sorted({r["backend"] for r in results}):
        runs = sorted(
            (r for r in results if r["backend"] == backend), key=lambda r: r["interactions"]
        )
        if len(runs) < 2:
            continue
        small, large = runs[0], runs[-1]
        millions = (large["interactions"] - small["interactions"]) / 1e6
        print(f"{backend}: slopes {small['interactions']:,} -> {large['interactions']:,}")
        for name, figures in large.items():
            if not isinstance(figures, dict) or name not in small:
                continue
            wall = (figures["wall"] - small[name]["wall"]) / millions
            rss = (figures["peak_rss_mb"] - small[name]["peak_rss_mb"]) / millions
            print(f"  {name:22s} {wall:8.2f} s / M  {rss:8.1f} MB / M")
        disk = (large["disk_mb"] - small["disk_mb"]) / millions
        print(f"  {'database size':22s} {disk:8.1f} MB / M")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interactions", default="1e6", help="comma-separated sizes")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--gnn-up-to", type=float, default=1e7, help="skip train gnn above")
    parser.add_argument(
        "--gnn-above", metavar="OPTIONS", default=None,
        help='train gnn over --gnn-up-to too, with these options (e.g. "--epochs 1")',
    )  # fmt: skip
    parser.add_argument("--users-per", type=float, default=0.03)
    parser.add_argument("--books-per", type=float, default=0.02)
    parser.add_argument(
        "--users", type=int, default=0, help="a fixed number of users at every size"
    )
    parser.add_argument(
        "--books", type=int, default=0, help="a fixed number of books at every size"
    )
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    results_path = OUT / "bench_scale.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else []
    for n in (int(float(s)) for s in args.interactions.split(",")):
        for backend in args.backends.split(","):
            result = run_backend(backend, n, args)
            results = [r for r in results if (r["backend"], r["interactions"]) != (backend, n)]
            results.append(result)
            results_path.write_text(json.dumps(results, indent=1))
    print_slopes(results)


if __name__ == "__main__":
    main()
