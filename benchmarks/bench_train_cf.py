"""bookrec train cf end to end on 1M interactions (20k users × 10k books, skewed, seeded) in
SQLite and PostgreSQL: each phase, write-back vectors/s, peak RSS; and, in the same run, a bare
`implicit` fit on the same matrix for comparison.

Run by hand: python benchmarks/bench_train_cf.py [--rows 1000000] [--backends sqlite,postgresql]
[--database bookrec_bench_cf] (the database, or SQLite file, it creates anew: any old one with
that name is dropped)
Targets (2-core machine): end to end ≤ 20 s, write-back ≥ 20,000 vectors/s on PostgreSQL, peak
RSS ≤ 1.5 GB.
"""

from __future__ import annotations

import argparse
import resource
import time

from common import OUT, books_csv, fresh_database, run_bookrec


def bare_fit(url: str) -> tuple[float, float]:
    """Seconds of a bare implicit fit on the same k-core matrix, and peak RSS of this process."""
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    from bookrec.algorithms.matrix import WeightScheme, build_matrix, k_core
    from bookrec.storage import open_repository

    repo = open_repository(url)
    matrix = k_core(build_matrix(repo.load_interactions(), WeightScheme()), 2, 2).matrix
    repo.close()
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(factors=128, iterations=15, random_state=42)
        started = time.perf_counter()
        model.fit(matrix, show_progress=False)
        seconds = time.perf_counter() - started
    return seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--database", default="bookrec_bench_cf")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    from bookrec.synthetic import write_benchmark_csv

    events = OUT / f"interactions-{args.rows}.csv"
    if not events.exists():
        write_benchmark_csv(events, n_interactions=args.rows, seed=42)
    for backend in args.backends.split(","):
        url = fresh_database(backend, args.database)
        run_bookrec(url, "ingest", "books", str(books_csv()), "--skip-embeddings")
        run_bookrec(url, "ingest", "interactions", str(events))
        result = run_bookrec(url, "train", "cf", "--json")
        summary = result["json"]
        phases = ", ".join(f"{k} {v:.2f}s" for k, v in summary["phases"].items())
        print(
            f"{backend:10s} train cf end to end {result['wall']:.1f}s wall ({phases});"
            f" {summary['users']:,} users + {summary['books']:,} books,"
            f" write-back {summary['vectors_per_second']:,} vectors/s,"
            f" peak RSS {result['peak_rss_mb']:.0f} MB"
        )
        again = run_bookrec(url, "train", "cf", "--json")
        print(
            f"{backend:10s} second run (replaces every vector) {again['wall']:.1f}s wall,"
            f" write {again['json']['phases']['write']:.2f}s,"
            f" {again['json']['vectors_per_second']:,} vectors/s"
        )
        seconds, rss = bare_fit(url)
        print(f"{backend:10s} bare implicit fit, same matrix: {seconds:.1f}s (RSS {rss:.0f} MB)")


if __name__ == "__main__":
    main()
