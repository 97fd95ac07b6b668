"""bookrec train gnn end to end (database load, graph, walks, skip-gram, write-back) for the
built-in engine and `--engine node2vec` (needs bookrec[node2vec]), on seeded skewed
interactions with planted clusters; quality = share of each book's 10 nearest books (cosine of
the stored gnn vectors) from its own cluster.

Run by hand: python benchmarks/bench_train_gnn.py [--sizes 100k,1M] [--backend sqlite]
The node2vec package runs at 100k only: at 1M its transition tables outgrow memory and time
(see bench_gnn.py).
"""

from __future__ import annotations

import argparse
import importlib.util

import numpy as np
from common import OUT, fresh_database, run_bookrec

SIZES = {
    "100k": dict(n_users=2_000, n_books=5_000, n_interactions=100_000, clusters=10),
    "1M": dict(n_users=20_000, n_books=10_000, n_interactions=1_000_000, clusters=20),
}
SETTINGS = ["--dim", "128", "--walk-length", "30", "--walks-per-node", "10", "--window", "5"]
SETTINGS += ["--p", "1", "--q", "0.5", "--epochs", "1"]


def books_file(n_books: int):
    path = OUT / f"books-{n_books}.csv"
    if not path.exists():
        lines = ["external_id,title"] + [f"{i},Book {i}" for i in range(1, n_books + 1)]
        path.write_text("\n".join(lines) + "\n")
    return path


def quality(url: str, book_groups: np.ndarray) -> float:
    from bookrec.storage import open_repository

    repo = open_repository(url)
    ids, vectors = repo.load_vectors("gnn")
    external = {b.id: int(b.external_id) for b in repo.book_summaries(ids.tolist())}
    repo.close()
    groups = book_groups[np.array([external[i] - 1 for i in ids.tolist()])]
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    hits = 0
    for start in range(0, len(unit), 2000):
        block = unit[start : start + 2000] @ unit.T
        for row in range(len(block)):
            block[row, start + row] = -np.inf
        nearest = np.argpartition(-block, 10, axis=1)[:, :10]
        hits += int((groups[nearest] == groups[start : start + len(block), None]).sum())
    return hits / (10 * len(unit))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100k,1M")
    parser.add_argument("--backend", default="sqlite")
    parser.add_argument(
        "--sample", help="skip-gram down-sampling for both engines (default: bookrec's)"
    )
    args = parser.parse_args()
    settings = [*SETTINGS, *(["--sample", args.sample] if args.sample else [])]
    OUT.mkdir(exist_ok=True)
    from bookrec.synthetic import write_benchmark_csv

    has_package = importlib.util.find_spec("node2vec") is not None
    for size in args.sizes.split(","):
        spec = SIZES[size]
        events = OUT / f"clustered-{size}.csv"
        data = write_benchmark_csv(events, seed=42, **spec)
        url = fresh_database(args.backend, f"bookrec_bench_gnn_{size.lower()}")
        run_bookrec(url, "ingest", "books", str(books_file(spec["n_books"])), "--skip-embeddings")
        run_bookrec(url, "ingest", "interactions", str(events))
        engines = ["builtin"] + (["node2vec"] if has_package and size == "100k" else [])
        for engine in engines:
            result = run_bookrec(url, "train", "gnn", *settings, "--engine", engine, "--json")
            summary = result["json"]
            phases = ", ".join(f"{k} {v:.2f}s" for k, v in summary["phases"].items())
            rates = ""
            if engine == "builtin":
                rates = (
                    f"; {summary['walk_steps_per_second']:,} walk steps/s,"
                    f" {summary['skipgram_tokens_per_second']:,} skip-gram tokens/s"
                )
            print(
                f"{size} {engine:8s} {result['wall']:.1f}s wall ({phases}){rates};"
                f" peak RSS {result['peak_rss_mb']:.0f} MB;"
                f" quality {quality(url, np.asarray(data.book_groups)):.3f}"
            )


if __name__ == "__main__":
    main()
