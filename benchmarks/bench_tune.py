"""`bookrec tune --timeout 300` on a realistic rating set (run by hand, under the bench lock).

    flock -x /tmp/bookrec-bench.lock python benchmarks/bench_tune.py \
        --data /work/data/rs/ml100k-like-1 --timeout 300 \
        --database-url postgresql://postgres@127.0.0.1:5432/bench_tune

Loads books.csv and ratings.csv of the set into a fresh database (the URL's, or a SQLite file
in a temporary directory; a PostgreSQL database must exist and is emptied), runs the tune the
command runs (`Bookrec.tune`, random split, test fraction 0.25, k 10) and prints per strategy
nDCG@10 of the current (default) and the tuned settings on validation and on the test holdout,
the trials and seconds, and the tune's wall time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import bookrec


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, action="append")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--strategies", default="cf,gnn,content,hybrid")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args(argv)
    for data in args.data:
        with tempfile.TemporaryDirectory() as folder:
            url = args.database_url or f"sqlite:///{Path(folder) / 'bench.db'}"
            _reset(url)
            with bookrec.open(url, create=True) as db:
                db.init()
                db.ingest_books(data / "books.csv", embed=True)
                db.ingest_interactions(data / "ratings.csv")
                started = time.perf_counter()
                report = db.tune(
                    strategies=args.strategies.split(","), trials=args.trials,
                    timeout=args.timeout, k=10, test_fraction=0.25, seed=args.seed,
                )  # fmt: skip
                wall = time.perf_counter() - started
        print(f"# {data.name}: tune --timeout {args.timeout:g}, wall {wall:.1f}s")
        print(f"{'strategy':10} {'val default':>12} {'val tuned':>10} {'test default':>13} "
              f"{'test tuned':>11} {'trials':>7} {'seconds':>8} stopped")  # fmt: skip
        for r in report.results:
            print(
                f"{r.strategy:10} {r.validation['default']['ndcg']:12.4f} "
                f"{r.validation['tuned']['ndcg']:10.4f} {r.test['default']['ndcg']:13.4f} "
                f"{r.test['tuned']['ndcg']:11.4f} {r.trials_run:7d} {r.seconds:8.1f} {r.stopped}"
            )
        print(f"{'popular':10} {report.popular['validation']['ndcg']:12.4f} {'':10} "
              f"{report.popular['test']['ndcg']:13.4f}")  # fmt: skip
        for r in report.results:
            changed = {k: v for k, v in r.tuned_parameters.items() if v != r.default_parameters[k]}
            print(f"  {r.strategy}: {changed or 'defaults kept'}")


def _reset(url: str) -> None:
    if url.startswith("postgresql"):
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DROP SCHEMA public CASCADE")
            conn.execute("CREATE SCHEMA public")


if __name__ == "__main__":
    main()
