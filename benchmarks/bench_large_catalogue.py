"""A vector write-back for a catalogue of 2.4M books (the full public Goodreads set) x 256-d on
SQLite and PostgreSQL: it must save (schema v2 failed at ~0.97M: one snapshot value over the
1e9-byte / 1 GB limits) and read back exactly.

Run by hand: python benchmarks/bench_large_catalogue.py [--books 2400000] [--dim 256]
[--backends sqlite,postgresql]
Prints the seconds and peak RSS of inserting the books, of the write-back, of reading the
snapshot back, and the snapshot's chunks. Needs ~15 GB of disk per backend at the defaults.
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from common import OUT, fresh_database

from bookrec.domain import BookRecord
from bookrec.storage import open_repository


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def _timed(label: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    print(f"  {label}: {time.perf_counter() - started:.1f} s, peak RSS {_peak_mb():.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--books", type=int, default=2_400_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    for backend in args.backends.split(","):
        print(f"{backend}: {args.books:,} books x {args.dim}-d")
        url = fresh_database(backend, "bookrec_bench_catalogue")
        repo = open_repository(url)
        batches = (
            [BookRecord(str(i), f"Book {i}") for i in range(start, min(args.books, start + 50_000))]
            for start in range(0, args.books, 50_000)
        )
        with _timed("insert the books"):
            repo.upsert_books(batches)
        ids = np.sort(np.fromiter(repo.book_id_map().values(), dtype=np.int64))
        vectors = np.random.default_rng(0).standard_normal((len(ids), args.dim), np.float32)
        run = repo.start_run("gnn", {"dim": args.dim})
        with _timed("write-back (JSON column + snapshot, one transaction)"):
            repo.replace_vectors("gnn", run, {"n_books": len(ids)}, ids, vectors)
        header = repo.snapshots.headers(["books.gnn_vector"])["books.gnn_vector"]
        print(f"  snapshot: {header.n_rows:,} rows x {header.width} in {header.n_chunks} chunks")
        del vectors
        with _timed("read the snapshot back"):
            read_ids, read = repo.load_vectors("gnn")
        again = np.random.default_rng(0).standard_normal((len(ids), args.dim), np.float32)
        exact = np.array_equal(read_ids, ids) and np.array_equal(read, again)
        print(f"  read back exactly: {exact}; status: {repo.vector_stats('gnn', 'books')}")
        assert repo.runs("gnn")[0].status == "succeeded" and exact
        repo.close()


if __name__ == "__main__":
    main()
