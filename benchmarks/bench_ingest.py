"""bookrec ingest interactions: 1M rows (20k users × 10k books, skewed, seeded) into SQLite and
PostgreSQL; rows per second and peak RSS. Also the start-up time of `bookrec --help`.

Run by hand: python benchmarks/bench_ingest.py [--rows 1000000]
Targets (2-core machine): PostgreSQL ≥ 150,000 rows/s, SQLite ≥ 100,000 rows/s, peak RSS ≤ 500
MB, `bookrec --help` ≤ 0.5 s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from common import OUT, books_csv, fresh_database, run_bookrec


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    from bookrec.synthetic import write_benchmark_csv

    events = OUT / f"interactions-{args.rows}.csv"
    if not events.exists():
        write_benchmark_csv(events, n_interactions=args.rows, seed=42)
    print(f"input: {events.name}, {events.stat().st_size / 1e6:.0f} MB, {args.rows:,} rows")

    for backend in args.backends.split(","):
        url = fresh_database(backend, "bookrec_bench_ingest")
        run_bookrec(url, "ingest", "books", str(books_csv()), "--skip-embeddings")
        result = run_bookrec(url, "ingest", "interactions", str(events), "--json")
        inserted = result["json"]["details"]["inserted"]
        print(
            f"{backend:10s} {inserted:,} rows in {result['wall']:.1f}s wall"
            f" = {inserted / result['wall']:,.0f} rows/s, peak RSS {result['peak_rss_mb']:.0f} MB"
        )
        again = run_bookrec(url, "ingest", "interactions", str(events), "--json")
        print(
            f"{backend:10s} re-ingest (all duplicates) {again['wall']:.1f}s,"
            f" {again['json']['details']['duplicates']:,} duplicates"
        )

    walls = []
    for _ in range(5):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "bookrec", "--help"], capture_output=True, check=True)
        walls.append(time.perf_counter() - started)
    print(f"bookrec --help: median {statistics.median(walls):.3f}s wall over 5 runs")


if __name__ == "__main__":
    main()
