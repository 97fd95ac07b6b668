"""Time the algorithm side of `bookrec train cf` on a skewed synthetic 1M-interaction data set.

Run by hand: python benchmarks/bench_als_fit.py [--users 20000 --books 10000 --interactions 1e6]
Prints the time of build_matrix, k_core(2, 2), fit_als (defaults) and a bare implicit fit on
the same matrix, and the peak RSS after each step.
"""

from __future__ import annotations

import argparse
import importlib
import os
import resource
import time

import numpy as np

from bookrec.algorithms.cf import fit_als
from bookrec.algorithms.matrix import build_matrix, k_core
from bookrec.domain import EVENT_CODES, InteractionArrays

EVENT_MIX = {"view": 0.45, "click": 0.25, "like": 0.1, "rate": 0.15, "purchase": 0.05}
TWO_YEARS = 2 * 365 * 86_400


def synthetic(users: int, books: int, n: int, seed: int = 0) -> InteractionArrays:
    """Zipf-like book popularity (exponent 0.9), lognormal user activity, a mix of events."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, books + 1) ** 0.9
    activity = rng.lognormal(0.0, 1.0, users)
    events = rng.choice(
        [EVENT_CODES[e] for e in EVENT_MIX], size=n, p=list(EVENT_MIX.values())
    ).astype(np.int8)
    ratings = np.where(events == EVENT_CODES["rate"], rng.integers(1, 6, n), np.nan).astype(
        np.float32
    )
    return InteractionArrays(
        user_ids=1 + rng.choice(users, size=n, p=activity / activity.sum()).astype(np.int64),
        book_ids=1
        + rng.permutation(books)[rng.choice(books, size=n, p=popularity / popularity.sum())],
        events=events,
        ratings=ratings,
        timestamps=1_700_000_000 + rng.integers(0, TWO_YEARS, n),
    )


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(label: str, fn):
    start, cpu_start = time.perf_counter(), time.process_time()
    result = fn()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    print(f"{label:<30} {wall:6.2f} s wall {cpu:6.2f} s CPU   peak RSS {peak_rss_mib():5.0f} MiB")
    return result


def bare_implicit_fit(matrix) -> None:
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(factors=128, iterations=15, random_state=42)
        model.fit(matrix, show_progress=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--books", type=int, default=10_000)
    parser.add_argument("--interactions", type=float, default=1e6)
    args = parser.parse_args()

    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"peak RSS at start {peak_rss_mib():.0f} MiB")
    data = timed(
        "generate synthetic data", lambda: synthetic(args.users, args.books, int(args.interactions))
    )
    m = timed("build_matrix", lambda: build_matrix(data))
    print(
        f"  matrix {m.shape[0]} x {m.shape[1]}, {m.nnz} nonzero pairs from {len(data)} interactions"
    )
    core = timed("k_core(2, 2)", lambda: k_core(m, 2, 2))
    print(f"  core {core.shape[0]} x {core.shape[1]}, {core.nnz} nonzero pairs")
    timed("import implicit", lambda: importlib.import_module("implicit.cpu.als"))
    timed("fit_als (128 factors, 15 it.)", lambda: fit_als(core.matrix))
    timed("bare implicit fit (same)", lambda: bare_implicit_fit(core.matrix))
    timed("fit_als again", lambda: fit_als(core.matrix))


if __name__ == "__main__":
    main()
