"""bookrec ingest interactions: 1M rows (20k users × 10k books, skewed, seeded) into SQLite and
PostgreSQL; rows per second and peak RSS, from CSV and from the same rows as Parquet (typed
columns: string users, int64 books, dictionary events, float ratings, UTC timestamps) and as
JSON lines. Also
the readers alone (no database) on CSV, JSONL and Parquet, and the start-up time of
`bookrec --help`.

Run by hand: python benchmarks/bench_ingest.py [--rows 1000000] [--formats csv,parquet,jsonl]
Targets (2-core machine): PostgreSQL ≥ 150,000 rows/s, SQLite ≥ 100,000 rows/s, peak RSS ≤ 500
MB, Parquet ≥ the CSV rate, `bookrec --help` ≤ 0.5 s.
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
    parser.add_argument("--formats", default="csv,parquet")
    parser.add_argument("--repeat", type=int, default=1, help="Alternating runs per format.")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    from bookrec.synthetic import write_benchmark_csv

    events = OUT / f"interactions-{args.rows}.csv"
    if not events.exists():
        write_benchmark_csv(events, n_interactions=args.rows, seed=42)
    print(f"input: {events.name}, {events.stat().st_size / 1e6:.0f} MB, {args.rows:,} rows")
    files = {"csv": events}
    for fmt, make in (("parquet", _parquet_twin), ("jsonl", _jsonl_twin)):
        if fmt in args.formats:
            files[fmt] = make(events)
            print(f"input: {files[fmt].name}, {files[fmt].stat().st_size / 1e6:.0f} MB")
    formats = args.formats.split(",")
    for fmt in formats:
        _read_only(files[fmt])
    for backend in args.backends.split(","):
        for _ in range(args.repeat):
            for fmt in formats:
                _ingest(backend, fmt, files[fmt])

    walls = []
    for _ in range(5):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "bookrec", "--help"], capture_output=True, check=True)
        walls.append(time.perf_counter() - started)
    print(f"bookrec --help: median {statistics.median(walls):.3f}s wall over 5 runs")


def _ingest(backend: str, fmt: str, path) -> None:
    url = fresh_database(backend, "bookrec_bench_ingest")
    run_bookrec(url, "ingest", "books", str(books_csv()), "--skip-embeddings")
    result = run_bookrec(url, "ingest", "interactions", str(path), "--json")
    inserted = result["json"]["details"]["inserted"]
    print(
        f"{backend:10s} {fmt:7s} {inserted:,} rows in {result['wall']:.1f}s wall"
        f" = {inserted / result['wall']:,.0f} rows/s, peak RSS {result['peak_rss_mb']:.0f} MB"
    )
    again = run_bookrec(url, "ingest", "interactions", str(path), "--json")
    print(
        f"{backend:10s} {fmt:7s} re-ingest (all duplicates) {again['wall']:.1f}s,"
        f" {again['json']['details']['duplicates']:,} duplicates"
    )


def _parquet_twin(events):
    """The benchmark rows as Parquet with typed columns (written once, beside the CSV)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    target = events.with_suffix(".parquet")
    if not target.exists():
        table = pacsv.read_csv(
            events,
            convert_options=pacsv.ConvertOptions(
                column_types={"user_id": pa.string(), "book_id": pa.int64(),
                              "rating": pa.float64(), "timestamp": pa.timestamp("s", "UTC")}
            ),
        )  # fmt: skip
        table = table.set_column(2, "event", table.column("event").dictionary_encode())
        pq.write_table(table, target, row_group_size=256 * 1024)
    return target


def _jsonl_twin(events):
    """The benchmark rows as JSON lines (empty fields left out), written once."""
    import csv
    import json

    target = events.with_suffix(".jsonl")
    if not target.exists():
        with events.open(newline="") as source, target.open("w") as out:
            for row in csv.DictReader(source):
                values = {k: v for k, v in row.items() if v}
                values["book_id"] = int(values["book_id"])
                if "rating" in values:
                    values["rating"] = float(values["rating"])
                out.write(json.dumps(values) + "\n")
    return target


def _read_only(path) -> None:
    """The reader alone, no database: rows per second of parsing and validating."""
    code = (
        "import sys, time; from pathlib import Path;"
        "from bookrec.readers.common import ErrorLog;"
        "from bookrec.readers.interactions import read_interactions;"
        "p = Path(sys.argv[1]); ids = {str(i): i for i in range(1, 20_001)};"
        "t = time.perf_counter(); e = ErrorLog(p);"
        "n = sum(len(b) for b in read_interactions(p, ids, e, time.time()));"
        "print(n, e.count, time.perf_counter() - t)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    ).stdout.split()
    rows, errors, seconds = int(out[0]), int(out[1]), float(out[2])
    print(f"reader only {path.suffix[1:]:7s} {rows:,} rows ({errors} invalid) in {seconds:.2f}s"
          f" = {rows / seconds:,.0f} rows/s")  # fmt: skip


if __name__ == "__main__":
    main()
