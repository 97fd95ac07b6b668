"""Benchmark of `bookrec evaluate`'s algorithm core: every strategy on ~100k interactions.

    python benchmarks/bench_evaluate.py                 # benchmark data, 100k rows, 10 clusters
    python benchmarks/bench_evaluate.py --data demo --users 2000

Runs evaluation.evaluate in this process (no database) on seeded synthetic interactions over
the real goodbooks-10k catalogue (book db id = goodbooks book_id, so content vectors come from
real titles and authors) and prints the total time, the per-strategy train/score times and the
metric table. The command adds loading from the database to these figures.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import sys
import time
from pathlib import Path

import numpy as np

from bookrec.domain import BookText, InteractionArrays
from bookrec.models import STRATEGIES
from bookrec.models.evaluate import evaluate
from bookrec.results import METRICS
from bookrec.settings import Settings
from bookrec.synthetic import SyntheticInteractions, bundled_books_path

GOODBOOKS = Path(__file__).resolve().parents[2] / "shared/data/goodbooks-10k/books.csv"


def goodbooks_texts(n_books: int | None = None) -> list[BookText]:
    """BookText of the goodbooks catalogue (db id = book_id); the first n_books if given."""
    path = GOODBOOKS if GOODBOOKS.is_file() else bundled_books_path()
    opener = gzip.open if path.suffix == ".gz" else open
    books = []
    with opener(path, "rt", encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            year = row["original_publication_year"]
            books.append(
                BookText(
                    book_id=int(row["book_id"]),
                    title=row["title"],
                    authors=row["authors"],
                    description=None,
                    year=int(float(year)) if year else None,
                    language=row["language_code"] or None,
                    tags=[],
                )
            )
    return books[:n_books] if n_books else books


def as_arrays(data: SyntheticInteractions) -> InteractionArrays:
    """The generator's rows with db ids: user = index + 1, book = int(external id)."""
    book_ids = np.array([int(b) for b in data.books], dtype=np.int64)
    return InteractionArrays(
        user_ids=data.user_index.astype(np.int64) + 1,
        book_ids=book_ids[data.book_index],
        events=data.events,
        ratings=data.ratings,
        timestamps=data.timestamps,
    )


def benchmark_data(n_interactions: int, n_users: int, clusters: int, seed: int = 42):
    from bookrec.synthetic import generate_benchmark_interactions

    data = generate_benchmark_interactions(
        n_users=n_users, n_books=10_000, n_interactions=n_interactions, clusters=clusters,
        seed=seed,
    )  # fmt: skip
    return as_arrays(data)


def demo_data(n_users: int, seed: int = 42):
    from bookrec.synthetic import generate_demo_interactions

    return as_arrays(generate_demo_interactions(n_users=n_users, seed=seed))


def print_table(rows: list[dict]) -> None:
    columns = ["strategy", *METRICS, "users_served", "train_seconds", "score_seconds"]
    print(" ".join(f"{c:>13}" for c in columns))
    for row in rows:
        cells = [row[c] if row[c] is not None else float("nan") for c in columns]
        print(" ".join(f"{c:>13.4f}" if isinstance(c, float) else f"{c!s:>13}" for c in cells))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=("benchmark", "demo"), default="benchmark")
    parser.add_argument("--interactions", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--clusters", type=int, default=10)
    parser.add_argument("--split", default="random")
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    if args.data == "demo":
        interactions = demo_data(args.users)
    else:
        interactions = benchmark_data(args.interactions, args.users, args.clusters)
    books = goodbooks_texts()
    prepared = time.perf_counter() - started
    report = evaluate(
        interactions, books, Settings.defaults(), split=args.split,
        strategies=args.strategies.split(","),
    )  # fmt: skip
    if args.json:
        json.dump(report.to_dict(), sys.stdout, indent=2)
        return
    print(f"data: {args.data}, {len(interactions):,} interactions (generated in {prepared:.1f} s)")
    print(f"protocol: {json.dumps(report.protocol)}")
    print(f"evaluate total: {report.seconds:.1f} s")
    print_table(report.rows())


if __name__ == "__main__":
    main()
