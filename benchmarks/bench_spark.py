"""The Spark engine beside the built-in one: quality, wall per phase, peak memory (run by hand).

    flock -x /tmp/bookrec-bench.lock python benchmarks/bench_spark.py cf --interactions 1000000
    flock -x /tmp/bookrec-bench.lock python benchmarks/bench_spark.py gnn --interactions 1000000
    flock -x /tmp/bookrec-bench.lock python benchmarks/bench_spark.py handoff --interactions 1000000

cf / gnn: the benchmark generator's interactions (Zipf popularity, planted clusters), the random
80/20 split of `evaluation.make_holdout`, and each engine fitting the training part with the same
parameters: built-in, Spark `local[2]`, and (with --cluster) Spark on a standalone master with
two 1-core workers started here on 127.0.0.1. Each engine runs in a process of its own, so the
peak RSS is its own; the Spark JVMs' peaks (driver; executors on the cluster) are sampled from
/proc. Printed: nDCG@10, the ratio to the built-in engine, wall per phase, peak RSS.

handoff: the interactions in a PostgreSQL database; the time until Spark holds the k-core
confidence pairs, by Parquet staging (load + matrix here, Parquet, Spark reads it) and by JDBC
(Spark reads the table in partitions and builds the matrix itself).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
from bench_evaluate import benchmark_data

from bookrec.algorithms import scoring
from bookrec.algorithms.cf import fit_als, regularization_for
from bookrec.algorithms.evaluation import make_holdout
from bookrec.algorithms.matrix import k_core, positions

JAR = "/usr/share/java/postgresql.jar"


class JvmPeaks:
    """Peak RSS (VmHWM) of every Spark JVM on the machine while it runs, by role."""

    ROLES: ClassVar[dict[str, str]] = {
        "SparkSubmit": "driver",
        "CoarseGrainedExecutorBackend": "executor",
        "deploy.master.Master": "master",
        "deploy.worker.Worker": "worker",
    }

    def __init__(self) -> None:
        self.peaks: dict[int, tuple[str, int]] = {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done.wait(0.5):
            for entry in os.listdir("/proc"):
                if not entry.isdigit():
                    continue
                try:
                    cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
                    status = Path(f"/proc/{entry}/status").read_text()
                except OSError:
                    continue
                role = next((r for key, r in self.ROLES.items() if key in cmdline), None)
                if role is None or "java" not in cmdline:
                    continue
                kb = int(
                    next(ln.split()[1] for ln in status.splitlines() if ln.startswith("VmHWM"))
                )
                old = self.peaks.get(int(entry), (role, 0))[1]
                self.peaks[int(entry)] = (role, max(old, kb))

    def stop(self) -> dict[str, list[int]]:
        self.done.set()
        self.thread.join()
        by_role: dict[str, list[int]] = {}
        for role, kb in self.peaks.values():
            by_role.setdefault(role, []).append(round(kb / 1024))
        return by_role


def holdout(args):
    return make_holdout(benchmark_data(args.interactions, args.users, args.clusters, seed=42))


def cf_ndcg(held, core, user_factors, item_factors) -> float:
    # Rows of the test users (held.users), as Holdout.measure asks for them.
    users = np.full((len(held.users), user_factors.shape[1]), np.nan, dtype=np.float32)
    rows = positions(core.user_ids, held.users)
    users[rows >= 0] = user_factors[rows[rows >= 0]]
    items = np.zeros((held.full.shape[1], item_factors.shape[1]), dtype=np.float32)
    items[positions(held.full.book_ids, core.book_ids)] = item_factors

    def score(rows):
        block = users[rows] @ items.T
        block[np.isnan(block)] = -np.inf
        return block

    return held.measure(score, 10)[0]["ndcg"]


def gnn_ndcg(held, core, book_vectors) -> float:
    books = np.zeros((held.full.shape[1], book_vectors.shape[1]), dtype=np.float32)
    books[positions(held.full.book_ids, core.book_ids)] = book_vectors
    scorer = scoring.EmbeddingScorer(books, held.popularity, prior=scoring.DEFAULT_PRIOR["gnn"])
    return held.measure(lambda rows: scorer.scores(held.user_weights[rows]), 10)[0]["ndcg"]


def spark_options(args, engine: str):
    from bookrec.engines.spark import SparkOptions

    scratch = Path(args.scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    master = args.master if engine.startswith("cluster") else "local[2]"
    skipgram = "gensim" if engine.endswith("gensim") else "mllib"
    return SparkOptions(
        master=master, staging=str(scratch), driver_memory=args.driver_memory,
        executor_memory=args.executor_memory, skipgram=skipgram,
        word2vec_partitions=args.word2vec_partitions,
    )  # fmt: skip


def run_one(args) -> dict:
    """One engine in this process: its quality, phases and peaks."""
    started = time.perf_counter()
    held = holdout(args)
    prepared = time.perf_counter() - started
    timings: dict[str, float] = {}
    peaks = JvmPeaks()
    fit_started = time.perf_counter()
    if args.model == "cf":
        core = k_core(held.full, 2, 2)
        reg = regularization_for(None, core.nnz, args.alpha)
        common = dict(
            factors=args.factors, iterations=args.iterations, regularization=reg,
            alpha=args.alpha, seed=42,
        )  # fmt: skip
        if args.one == "builtin":
            factors = fit_als(core.matrix, **common)
        else:
            from bookrec.engines.spark import fit_als_spark

            factors = fit_als_spark(
                core.matrix, **common, options=spark_options(args, args.one), timings=timings
            )
        fit_seconds = time.perf_counter() - fit_started
        ndcg = cf_ndcg(held, core, factors.user_factors, factors.item_factors)
        pairs = core.nnz
    else:
        core = k_core(held.full, 1, 1)
        common = dict(
            dim=args.dim, walk_length=args.walk_length, walks_per_node=args.walks_per_node,
            window=args.window, seed=42,
        )  # fmt: skip
        if args.one == "builtin":
            from bookrec.algorithms.skipgram import train_skipgram
            from bookrec.algorithms.walks import build_graph, random_walks

            with_time = time.perf_counter()
            graph = build_graph(core.matrix)
            walks = random_walks(
                graph, walk_length=args.walk_length, walks_per_node=args.walks_per_node,
                q=0.5, seed=42,
            )  # fmt: skip
            timings["walks"] = round(time.perf_counter() - with_time, 3)
            with_time = time.perf_counter()
            vectors = train_skipgram(
                walks, graph.n_nodes, dim=args.dim, window=args.window, seed=42
            )
            timings["skipgram"] = round(time.perf_counter() - with_time, 3)
        else:
            from bookrec.engines.spark import gnn_vectors_spark

            vectors = gnn_vectors_spark(
                core.matrix, **common, q=0.5, options=spark_options(args, args.one),
                timings=timings,
            )  # fmt: skip
        fit_seconds = time.perf_counter() - fit_started
        ndcg = gnn_ndcg(held, core, vectors[core.shape[0] :])
        pairs = core.nnz
    jvm = peaks.stop()
    return {
        "engine": args.one,
        "ndcg": round(float(ndcg), 4),
        "pairs": int(pairs),
        "prepare_seconds": round(prepared, 1),
        "fit_seconds": round(fit_seconds, 2),
        "fit_seconds_per_million_pairs": round(fit_seconds / pairs * 1e6, 2),
        "phases": timings,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "jvm_peak_rss_mb": jvm,
    }


def compare(args) -> None:
    engines = ["builtin", "local"]
    if args.model == "gnn":
        engines = ["builtin", "local", "local-gensim"]
    if args.cluster:
        engines += ["cluster"]
    if args.engines:
        engines = args.engines.split(",")
    results = []
    cluster = None
    try:
        for repeat in range(args.repeats):
            for engine in engines:
                if engine.startswith("cluster") and cluster is None:
                    cluster = start_cluster(args)
                command = [sys.executable, __file__, *sys.argv[1:], "--one", engine]
                if cluster is not None:
                    command += ["--master", cluster[0]]
                proc = subprocess.run(command, capture_output=True, text=True, check=False)
                if proc.returncode != 0:
                    raise SystemExit(f"{engine} failed:\n{proc.stderr[-3000:]}")
                result = json.loads(proc.stdout.strip().splitlines()[-1])
                result["repeat"] = repeat
                results.append(result)
                print(json.dumps(result), flush=True)
    finally:
        if cluster is not None:
            stop_cluster(cluster[1])
    base = {r["repeat"]: r["ndcg"] for r in results if r["engine"] == "builtin"}
    if not base:
        print("(no built-in run: ratios need --engines builtin,…)")
    print("\nengine | nDCG@10 | vs built-in | fit s | s per 1M pairs | peak RSS MB | JVM peaks MB")
    for r in results:
        ratio = r["ndcg"] / base[r["repeat"]] if base.get(r["repeat"]) else float("nan")
        print(
            f"{r['engine']} | {r['ndcg']:.4f} | {ratio:.3f} | {r['fit_seconds']:.1f} |"
            f" {r['fit_seconds_per_million_pairs']:.1f} | {r['peak_rss_mb']} |"
            f" {r['jvm_peak_rss_mb']} | {r['phases']}"
        )


def start_cluster(args):
    """A master and two 1-core workers on 127.0.0.1 (the test fixture's recipe)."""
    import socket
    import tempfile

    import pyspark

    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    spark_class = str(Path(pyspark.__file__).parent / "bin" / "spark-class")
    folder = Path(tempfile.mkdtemp(prefix="bench-spark-cluster-", dir=args.scratch))
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}
    port = free_port()
    url = f"spark://127.0.0.1:{port}"
    processes = []
    commands = [
        ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
         "--webui-port", str(free_port())],
    ] + [
        ["org.apache.spark.deploy.worker.Worker", url, "--host", "127.0.0.1", "--cores", "1",
         "--memory", args.worker_memory, "--webui-port", str(free_port()),
         "--work-dir", str(folder / f"w{n}")]
        for n in range(2)
    ]  # fmt: skip
    for n, command in enumerate(commands):
        log = open(folder / f"{n}.log", "wb")  # noqa: SIM115 (open while the process runs)
        processes.append(
            subprocess.Popen(
                [spark_class, *command],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    deadline = time.monotonic() + 120
    while (folder / "0.log").read_text(errors="replace").count("Registering worker") < 2:
        if time.monotonic() > deadline:
            stop_cluster(processes)
            raise SystemExit("the standalone cluster did not start")
        time.sleep(0.5)
    return url, processes


def stop_cluster(processes) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait(timeout=60)


def handoff(args) -> None:
    """Parquet staging vs JDBC, until Spark holds the k-core pairs, on PostgreSQL."""
    from common import POSTGRES_SERVER, fresh_database

    from bookrec.algorithms.matrix import WeightScheme, build_matrix
    from bookrec.engines.spark.confidence import confidence_pairs
    from bookrec.engines.spark.handoff import (
        interactions_over_jdbc,
        read_pairs,
        staging_dir,
        write_pairs,
    )
    from bookrec.engines.spark.runtime import SparkOptions, spark_session
    from bookrec.storage import open_repository

    url = _benchmark_database(args, fresh_database, POSTGRES_SERVER)
    options = SparkOptions(
        master="local[2]", jdbc_jar=JAR, driver_memory=args.driver_memory, staging=args.scratch
    )
    with spark_session(options) as spark:
        spark.range(10).count()  # the JVM warmed up for both
        for repeat in range(args.repeats):
            started = time.perf_counter()
            repo = open_repository(url)
            interactions = repo.load_interactions()
            repo.close()
            loaded = time.perf_counter()
            matrix = k_core(build_matrix(interactions), 2, 2)
            built = time.perf_counter()
            with staging_dir(args.scratch) as staged:
                uri = write_pairs(matrix.matrix, staged)
                written = time.perf_counter()
                n_parquet = read_pairs(spark, uri, 2).cache().count()
                done = time.perf_counter()
            print(
                f"parquet #{repeat}: {done - started:.1f} s (load {loaded - started:.1f}, matrix"
                f" {built - loaded:.1f}, write {written - built:.1f}, Spark reads"
                f" {done - written:.1f}); {n_parquet:,} pairs", flush=True,
            )  # fmt: skip
            del interactions, matrix
            for partitions in (2, 8):
                started = time.perf_counter()
                rows = interactions_over_jdbc(spark, url, partitions, max_id=10**12)
                pairs = confidence_pairs(
                    rows, WeightScheme(), min_user_interactions=2, min_book_interactions=2
                )
                n_jdbc = pairs.count()
                print(
                    f"jdbc #{repeat} ({partitions} partitions): {time.perf_counter() - started:.1f}"
                    f" s; {n_jdbc:,} pairs", flush=True,
                )  # fmt: skip
                pairs.unpersist()


def _benchmark_database(args, fresh_database, server) -> str:
    """A PostgreSQL database with the benchmark interactions (made once, kept by name)."""
    import psycopg

    name = f"bench_spark_{args.interactions}"
    url = server.rsplit("/", 1)[0] + "/" + name
    try:
        with psycopg.connect(url) as conn:
            if conn.execute("SELECT count(*) FROM interactions").fetchone()[0] > 0:
                return url
    except psycopg.Error:
        pass
    from bookrec.synthetic import generate_benchmark_interactions, write_interactions_csv

    url = fresh_database("postgresql", name)
    folder = Path(args.scratch)
    folder.mkdir(parents=True, exist_ok=True)
    from common import books_csv, run_bookrec

    run_bookrec(url, "ingest", "books", str(books_csv()), "--skip-embeddings")
    data = generate_benchmark_interactions(
        n_users=args.users, n_books=10_000, n_interactions=args.interactions,
        clusters=args.clusters,
    )  # fmt: skip
    events = folder / f"events-{args.interactions}.csv"
    write_interactions_csv(events, data)
    run_bookrec(url, "ingest", "interactions", str(events))
    events.unlink()
    return url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=("cf", "gnn", "handoff"))
    parser.add_argument("--interactions", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--clusters", type=int, default=20)
    parser.add_argument("--factors", type=int, default=32)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--alpha", type=float, default=4.0)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--walk-length", type=int, default=20)
    parser.add_argument("--walks-per-node", type=int, default=10)
    parser.add_argument("--window", type=int, default=5)
    parser.add_argument("--word2vec-partitions", type=int, default=1)
    parser.add_argument("--cluster", action="store_true", help="also on a standalone cluster")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--engines", help="a subset: builtin,local,local-gensim,cluster")
    parser.add_argument("--driver-memory", default="6g")
    parser.add_argument("--executor-memory", default="3g")
    parser.add_argument("--worker-memory", default="4g")
    parser.add_argument("--scratch", default="/work/scratch-spark/bench")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--master", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.model == "handoff":
        handoff(args)
    elif args.one:
        print(json.dumps(run_one(args)))
    else:
        compare(args)


if __name__ == "__main__":
    main()
