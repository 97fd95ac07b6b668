"""Benchmark of `bookrec train gnn` algorithms: built-in walks + skip-gram vs node2vec package.

    python benchmarks/bench_gnn.py                      # 100k and 1M, both engines
    python benchmarks/bench_gnn.py --sizes 100k --engines builtin

Each (size, engine) runs in its own subprocess so that peak memory is measured apart (the
resident size of the process and its children, sampled every 50 ms, and the process's own
peak). The data are seeded, skewed synthetic interactions with planted clusters; quality is the
share of each book's 10 nearest books (cosine) that come from its own cluster. Figures cover
graph build, walks and skip-gram, not the database write-back of the command.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

SIZES = {
    "100k": dict(n_users=2_000, n_books=5_000, n_interactions=100_000, n_clusters=10),
    "1M": dict(n_users=20_000, n_books=10_000, n_interactions=1_000_000, n_clusters=20),
}
SETTINGS = dict(dim=128, walk_length=30, walks_per_node=10, window=5, p=1.0, q=0.5, epochs=1)
NOISE = 0.1
EVENT_STRENGTHS = np.array([1.0, 2.0, 4.0, 6.0, 10.0], dtype=np.float32)
EVENT_SHARES = np.array([0.4, 0.3, 0.15, 0.1, 0.05])
TIMEOUT_SECONDS = 1800
MEMORY_LIMIT_BYTES = 12 * 2**30


@dataclass
class Data:
    weights: sp.csr_matrix
    book_cluster: np.ndarray


def make_data(n_users: int, n_books: int, n_interactions: int, n_clusters: int, seed=7) -> Data:
    """Users and books in planted clusters; skewed activity and popularity; 10% noise."""
    rng = np.random.default_rng(seed)
    user_cluster = rng.integers(0, n_clusters, n_users)
    book_cluster = rng.integers(0, n_clusters, n_books)
    activity = rng.lognormal(0.0, 1.0, n_users)
    popularity = 1.0 / (1.0 + rng.permutation(n_books)) ** 0.8
    books_of = [np.flatnonzero(book_cluster == c) for c in range(n_clusters)]
    pair_codes = np.empty(0, dtype=np.int64)
    while len(pair_codes) < n_interactions:
        batch = n_interactions
        users = rng.choice(n_users, batch, p=activity / activity.sum())
        books = rng.choice(n_books, batch, p=popularity / popularity.sum())
        in_cluster = rng.random(batch) >= NOISE
        for cluster, members in enumerate(books_of):
            chosen = in_cluster & (user_cluster[users] == cluster)
            share = popularity[members] / popularity[members].sum()
            books[chosen] = rng.choice(members, int(chosen.sum()), p=share)
        codes = np.concatenate([pair_codes, users.astype(np.int64) * n_books + books])
        _, first = np.unique(codes, return_index=True)
        pair_codes = codes[np.sort(first)]
    pair_codes = pair_codes[:n_interactions]
    strengths = rng.choice(EVENT_STRENGTHS, len(pair_codes), p=EVENT_SHARES)
    weights = sp.csr_matrix(
        (strengths, (pair_codes // n_books, pair_codes % n_books)), shape=(n_users, n_books)
    )
    return Data(weights, book_cluster)


def cluster_precision(book_vectors: np.ndarray, book_cluster: np.ndarray, k: int = 10) -> float:
    """Mean share of each book's k nearest books (cosine) from its own cluster."""
    has_vector = np.abs(book_vectors).sum(axis=1) > 0
    vectors = book_vectors[has_vector]
    clusters = book_cluster[has_vector]
    vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    hits = []
    for lo in range(0, len(vectors), 1024):
        similarity = vectors[lo : lo + 1024] @ vectors.T
        similarity[np.arange(len(similarity)), np.arange(lo, lo + len(similarity))] = -np.inf
        nearest = np.argpartition(-similarity, k, axis=1)[:, :k]
        hits.append((clusters[nearest] == clusters[lo : lo + 1024, None]).mean(axis=1))
    return float(np.concatenate(hits).mean())


def run_builtin(data: Data, workers: int) -> tuple[dict, np.ndarray]:
    from bookrec.algorithms.skipgram import train_skipgram
    from bookrec.algorithms.walks import build_graph, random_walks

    s = SETTINGS
    times = {}
    start = time.perf_counter()
    graph = build_graph(data.weights)
    times["graph"] = time.perf_counter() - start
    start = time.perf_counter()
    walks = random_walks(
        graph, walk_length=s["walk_length"], walks_per_node=s["walks_per_node"], p=s["p"], q=s["q"]
    )
    times["walks"] = time.perf_counter() - start
    start = time.perf_counter()
    vectors = train_skipgram(
        walks, graph.n_nodes, dim=s["dim"], window=s["window"], epochs=s["epochs"], workers=workers
    )
    times["skipgram"] = time.perf_counter() - start
    return times, vectors


def run_package(data: Data, workers: int) -> tuple[dict, np.ndarray]:
    from bookrec.algorithms.node2vec_engine import node2vec_package_embeddings

    marks: list[tuple[str, float]] = []
    vectors = node2vec_package_embeddings(
        data.weights,
        workers=workers,
        on_phase=lambda name: marks.append((name, time.perf_counter())),
        **SETTINGS,
    )
    marks.append(("end", time.perf_counter()))
    times = {name: marks[i + 1][1] - at for i, (name, at) in enumerate(marks[:-1])}
    return times, vectors


def child(size: str, engine: str, workers: int) -> None:
    data = make_data(**SIZES[size])
    run = run_builtin if engine == "builtin" else run_package
    before = resource.getrusage(resource.RUSAGE_SELF)
    times, vectors = run(data, workers)
    after = resource.getrusage(resource.RUSAGE_SELF)
    own_cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    n_users = data.weights.shape[0]
    degrees = np.concatenate(
        [
            np.diff(data.weights.indptr),
            np.bincount(data.weights.indices, minlength=data.weights.shape[1]),
        ]
    )
    n_walks = int((degrees > 0).sum()) * SETTINGS["walks_per_node"]
    result = {
        "interactions": int(data.weights.nnz),
        "times": times,
        "total": sum(times.values()),
        "walk_steps_per_s": n_walks * (SETTINGS["walk_length"] - 1) / times["walks"],
        "tokens_per_s": n_walks * SETTINGS["walk_length"] / times["skipgram"],
        "precision_at_10": cluster_precision(vectors[n_users:], data.book_cluster),
        "own_peak_rss": after.ru_maxrss * 1024,
        "own_cpu": own_cpu,
    }
    print(json.dumps(result))


def process_tree(root: int) -> list[int]:
    """A process and all its descendants."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parents[int(entry)] = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    family, frontier = [root], [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        family.extend(children)
        frontier.extend(children)
    return family


def sample_usage(pid: int) -> tuple[int, float]:
    """(resident bytes, CPU seconds so far) of one process; zeros once it is gone."""
    try:
        with open(f"/proc/{pid}/statm") as statm:
            rss = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return rss, cpu
    except (OSError, IndexError, ValueError):
        return 0, 0.0


def measure(size: str, engine: str, workers: int) -> dict:
    command = [sys.executable, __file__, "--child", size, engine, "--workers", str(workers)]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    started, peak, cpu_by_pid, failure = time.monotonic(), 0, {}, None
    while process.poll() is None:
        rss = 0
        for pid in process_tree(process.pid):
            pid_rss, pid_cpu = sample_usage(pid)
            rss += pid_rss
            cpu_by_pid[pid] = max(cpu_by_pid.get(pid, 0.0), pid_cpu)
        peak = max(peak, rss)
        if peak > MEMORY_LIMIT_BYTES:
            failure = f"stopped: memory above {MEMORY_LIMIT_BYTES / 2**30:.0f} GiB"
        elif time.monotonic() - started > TIMEOUT_SECONDS:
            failure = f"did not finish in {TIMEOUT_SECONDS / 60:.0f} min"
        if failure:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            seconds = time.monotonic() - started
            return {"failure": failure, "seconds": seconds, "peak_rss": peak}
        time.sleep(0.05)
    out, err = process.communicate()
    if process.returncode != 0:
        return {"failure": f"exit {process.returncode}: {err.strip()[-500:]}", "peak_rss": peak}
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_rss"] = max(peak, result["own_peak_rss"])
    # The engine's own CPU time plus that of any worker processes it started.
    cpu_by_pid.pop(process.pid, None)
    result["cpu_seconds"] = result["own_cpu"] + sum(cpu_by_pid.values())
    return result


def report(size: str, engine: str, result: dict) -> None:
    mib = result["peak_rss"] / 2**20
    if "failure" in result:
        print(
            f"{size:>5} {engine:8} {result['failure']} after {result.get('seconds', 0):.0f}s; "
            f"peak {mib:,.0f} MiB",
            flush=True,
        )
        return
    phases = " ".join(f"{name} {seconds:7.2f}s" for name, seconds in result["times"].items())
    print(
        f"{size:>5} {engine:8} total {result['total']:8.2f}s (cpu {result['cpu_seconds']:7.1f}s) | "
        f"{phases} | "
        f"walk steps/s {result['walk_steps_per_s']:12,.0f} | "
        f"tokens/s {result['tokens_per_s']:10,.0f} | peak {mib:7,.0f} MiB | "
        f"P@10 {result['precision_at_10']:.3f} | {result['interactions']:,} interactions",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--engines", nargs="+", default=["builtin", "package"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--child", nargs=2, metavar=("SIZE", "ENGINE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child, args.workers)
        return
    print(f"settings: {SETTINGS}, workers {args.workers}", flush=True)
    for size in args.sizes:
        results = {}
        for engine in args.engines:
            results[engine] = measure(size, engine, args.workers)
            report(size, engine, results[engine])
        builtin, package = results.get("builtin"), results.get("package")
        if builtin and package and "failure" not in builtin and "failure" not in package:
            print(
                f"{size:>5} builtin vs package: {package['total'] / builtin['total']:.1f}x faster, "
                f"walks {package['times']['walks'] / builtin['times']['walks']:.0f}x faster, "
                f"{builtin['peak_rss'] / package['peak_rss']:.2f}x the peak memory",
                flush=True,
            )


if __name__ == "__main__":
    main()
