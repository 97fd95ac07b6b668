"""bookrec recommend / similar wall time (start-up included) over the 10k goodbooks books, and
bookrec evaluate with all strategies on 100k interactions, both through the real command.

Run by hand: python benchmarks/bench_recommend.py [--backends sqlite,postgresql]
Targets: recommend for one user ≤ 0.5 s wall including start-up; evaluate on 100k ≤ 2 min.
"""

from __future__ import annotations

import argparse
import statistics

from common import OUT, books_csv, fresh_database, run_bookrec


def median_wall(url: str, *args: str, runs: int = 5) -> float:
    return statistics.median(run_bookrec(url, *args)["wall"] for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    for backend in args.backends.split(","):
        url = fresh_database(backend, "bookrec_bench_recommend")
        demo = run_bookrec(url, "demo", "--force", "--users", "2000", "--json")
        interactions = demo["json"]["steps"]["interactions"]["inserted"]
        print(
            f"{backend:10s} demo with 2,000 users ({interactions:,} interactions): "
            f"{demo['wall']:.1f}s wall, peak RSS {demo['peak_rss_mb']:.0f} MB"
        )
        for strategy in ("hybrid", "cf", "gnn", "content", "popular"):
            wall = median_wall(url, "recommend", "u00001", "--strategy", strategy)
            print(
                f"{backend:10s} recommend --strategy {strategy:8s} {wall:.3f}s wall (median of 5)"
            )
        for space in ("content", "cf", "gnn"):
            wall = median_wall(url, "similar", "2", "--space", space)
            print(f"{backend:10s} similar --space {space:8s} {wall:.3f}s wall (median of 5)")

    url = fresh_database("sqlite", "bookrec_bench_evaluate")
    from bookrec.synthetic import write_benchmark_csv

    events = OUT / "evaluate-100k.csv"
    write_benchmark_csv(
        events, n_users=2_000, n_books=10_000, n_interactions=100_000, seed=7, clusters=10
    )
    run_bookrec(url, "ingest", "books", str(books_csv()))
    run_bookrec(url, "ingest", "interactions", str(events))
    result = run_bookrec(url, "evaluate", "--json")
    print(
        f"evaluate, all strategies, 100k interactions: {result['wall']:.1f}s wall,"
        f" peak RSS {result['peak_rss_mb']:.0f} MB"
    )
    for row in result["json"]["results"]:
        print(
            f"  {row['strategy']:8s} nDCG@10 {row['ndcg']:.4f}  P@10 {row['precision']:.4f}"
            f"  R@10 {row['recall']:.4f}  MAP@10 {row['map']:.4f}  HR@10 {row['hit_rate']:.4f}"
            f"  coverage {row['coverage']:.4f}  train {row['train_seconds']:.1f}s"
        )


if __name__ == "__main__":
    main()
