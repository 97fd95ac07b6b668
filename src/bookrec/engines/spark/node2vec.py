"""`train gnn` on Spark: node2vec walks on the executors, skip-gram by MLlib's Word2Vec (or by
gensim on the walks brought back, `skipgram="gensim"`).

Walks: the graph (`algorithms.walks.BipartiteGraph`, ~40 bytes per user-book pair) is
broadcast to every executor; the start nodes are dealt at random into `partitions` tasks and
each task runs the built-in walker (`random_walks`, the exact bipartite second-order rules) from
its own starts, seeded by (seed, task). So every executor needs the whole graph in memory.

MLlib's Word2Vec is skip-gram with hierarchical softmax: no negative sampling and no
down-sampling of frequent tokens, so `negative` and `sample` do not apply, and it keeps its
own learning rate (`learning_rate` is chosen for negative sampling). Its driver builds the
vocabulary and keeps two vocabulary × dim float arrays (the vectors and the Huffman tree's
weights), broadcast to the executors on every iteration; one Java array holds each, so
nodes × dim must stay below 2^31 (8.4M nodes at 256-d). Its numPartitions trains that many
copies apart and averages them after each iteration: faster, and less accurate.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from bookrec.engines.spark.runtime import (
    ProgressFn,
    SparkOptions,
    default_parallelism,
    spark_session,
    timed,
)

if TYPE_CHECKING:
    import scipy.sparse as sp
    from pyspark.sql import DataFrame, SparkSession

    from bookrec.algorithms.walks import BipartiteGraph

WORD2VEC_STEP_SIZE = 0.025  # MLlib's default learning rate (hierarchical softmax)


def gnn_vectors_spark(
    weights: sp.csr_matrix,
    *,
    dim: int = 256,
    walk_length: int = 20,
    walks_per_node: int = 10,
    p: float = 1.0,
    q: float = 0.5,
    window: int = 10,
    epochs: int = 1,
    negative: int = 5,
    sample: float | None = None,
    learning_rate: float = 0.025,
    seed: int = 42,
    options: SparkOptions = SparkOptions(),
    on_progress: ProgressFn | None = None,
    timings: dict[str, float] | None = None,
) -> np.ndarray:
    """Node vectors (n_users + n_books, dim) float32 of a users × books weight matrix, users
    first, as `train_skipgram(random_walks(build_graph(weights)))` returns them: rows of nodes
    no walk visits are zeros.

    `negative` and `sample` are used only with options.skipgram == "gensim". `timings` receives
    the seconds of: start, graph, walks, skipgram (and collect, for gensim).
    """
    from bookrec.algorithms.walks import build_graph

    if options.skipgram not in ("mllib", "gensim"):
        raise ValueError(f"unknown skip-gram trainer {options.skipgram!r}: mllib or gensim")
    with timed(timings, "graph"):
        graph = build_graph(weights)
    with (
        tempfile.TemporaryDirectory(prefix="bookrec-code-") as code,
        spark_session(options, on_progress, what="train gnn", timings=timings) as spark,
    ):
        with timed(timings, "walks"):
            walks = spark_walks(
                spark, graph, walk_length=walk_length, walks_per_node=walks_per_node, p=p, q=q,
                seed=seed, partitions=default_parallelism(spark, options),
                ship_code_from=None if options.is_local else code,
            )  # fmt: skip
            n_walks = walks.count()  # made and cached here, so the phase times the walks
        if n_walks == 0:
            raise ValueError("no walks: the graph has no edges")
        if options.skipgram == "gensim":
            return _gensim_on_walks(
                walks, graph.n_nodes, walk_length, dim=dim, window=window, epochs=epochs,
                negative=negative, sample=sample, learning_rate=learning_rate, seed=seed,
                timings=timings,
            )  # fmt: skip
        with timed(timings, "skipgram"):
            return word2vec_vectors(
                walks, graph.n_nodes, dim=dim, window=window, epochs=epochs, seed=seed,
                partitions=options.word2vec_partitions, max_sentence_length=walk_length,
            )  # fmt: skip


def spark_walks(
    spark: SparkSession,
    graph: BipartiteGraph,
    *,
    walk_length: int,
    walks_per_node: int,
    p: float,
    q: float,
    seed: int,
    partitions: int,
    ship_code_from: str | None = None,
) -> DataFrame:
    """A cached DataFrame with one column `walk` (array<int> of node ids), `walks_per_node`
    walks from every node with an edge, made by `partitions` tasks. On a cluster,
    `ship_code_from` is a local directory to send bookrec's code to the executors from."""
    if ship_code_from:
        _ship_bookrec(spark, ship_code_from)
    shared = spark.sparkContext.broadcast(graph)
    settings = {
        "walk_length": walk_length, "walks_per_node": walks_per_node, "p": p, "q": q,
        "seed": seed, "partitions": partitions,
    }  # fmt: skip

    def walks_of_tasks(batches: Iterator[Any]) -> Iterator[Any]:
        for batch in batches:
            for task in batch.column(0).to_pylist():
                yield from _task_walks(shared.value, task, settings)

    tasks = spark.range(partitions, numPartitions=partitions)
    walks = tasks.mapInArrow(walks_of_tasks, "walk array<int>").cache()
    return walks


def _task_walks(graph: BipartiteGraph, task: int, settings: dict[str, Any]) -> Iterator[Any]:
    """Arrow batches of one task's walks: its share of the start nodes (dealt at random)."""
    import pyarrow as pa

    from bookrec.algorithms.walks import WALKERS_PER_BATCH, random_walks

    seed, partitions = settings["seed"], settings["partitions"]
    starts = np.random.default_rng(seed).permutation(np.flatnonzero(graph.has_edges))
    mine = np.sort(starts[task::partitions])
    task_seed = int(np.random.SeedSequence([seed, task]).generate_state(1)[0])
    walks = random_walks(
        graph, walk_length=settings["walk_length"], walks_per_node=settings["walks_per_node"],
        p=settings["p"], q=settings["q"], seed=task_seed, start_nodes=mine,
    )  # fmt: skip
    length = walks.shape[1]
    for lo in range(0, len(walks), WALKERS_PER_BATCH):
        block = walks[lo : lo + WALKERS_PER_BATCH]
        offsets = np.arange(0, block.size + 1, length, dtype=np.int32)
        column = pa.ListArray.from_arrays(pa.array(offsets), pa.array(block.ravel()))
        yield pa.RecordBatch.from_arrays([column], names=["walk"])


def word2vec_vectors(
    walks: DataFrame,
    n_nodes: int,
    *,
    dim: int,
    window: int,
    epochs: int,
    seed: int,
    partitions: int,
    max_sentence_length: int,
) -> np.ndarray:
    """MLlib Word2Vec (skip-gram, hierarchical softmax) on the walks: (n_nodes, dim) float32."""
    from pyspark.ml.feature import Word2Vec
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F

    if n_nodes * dim >= 2**31 - 1:
        raise ValueError(
            f"MLlib Word2Vec holds nodes × dim in one Java array: {n_nodes:,} × {dim} is over"
            " 2^31; lower --dim or use BOOKREC_SPARK_SKIPGRAM=gensim"
        )
    sentences = walks.select(F.col("walk").cast("array<string>").alias("tokens"))
    model = Word2Vec(
        vectorSize=dim,
        windowSize=window,
        minCount=0,
        maxIter=epochs,
        seed=seed,
        numPartitions=partitions,
        stepSize=WORD2VEC_STEP_SIZE,
        maxSentenceLength=max(max_sentence_length, 1),
        inputCol="tokens",
        outputCol="vector",
    ).fit(sentences)
    table = (
        model.getVectors()
        .select(
            F.col("word").cast("int").alias("node"),
            vector_to_array("vector", "float32").alias("vector"),
        )
        .toArrow()
    )
    from bookrec.engines.spark.handoff import dense_rows

    return dense_rows(table, n_nodes, "node", "vector", dim)


def _gensim_on_walks(
    walks: DataFrame,
    n_nodes: int,
    walk_length: int,
    *,
    dim: int,
    window: int,
    epochs: int,
    negative: int,
    sample: float | None,
    learning_rate: float,
    seed: int,
    timings: dict[str, float] | None,
) -> np.ndarray:
    """The walks brought back and gensim's skip-gram (the built-in engine's) on them."""
    from bookrec.algorithms.skipgram import train_skipgram

    with timed(timings, "collect"):
        column = walks.toArrow().column("walk").combine_chunks()
        tokens = column.flatten().to_numpy().astype(np.int32, copy=False)
        array = tokens.reshape(-1, walk_length)
        # Tasks hand their walks back one after another; skip-gram's learning rate decays
        # over the corpus, so mix them as the built-in walker's rounds are mixed.
        array = array[np.random.default_rng(seed).permutation(len(array))]
    with timed(timings, "skipgram"):
        return train_skipgram(
            array, n_nodes, dim=dim, window=window, epochs=epochs, negative=negative,
            sample=sample, learning_rate=learning_rate, seed=seed,
        )  # fmt: skip


def _ship_bookrec(spark: SparkSession, folder: str) -> None:
    """Executors of a cluster unpickle the walker from bookrec's modules: send them the package
    (pure Python; numpy, scipy and pyarrow must be installed on the workers). Spark serves the
    archive from `folder` while the session lasts."""
    import shutil
    from pathlib import Path

    import bookrec

    package = Path(bookrec.__file__).resolve().parent
    archive = shutil.make_archive(
        str(Path(folder) / "bookrec"), "zip", root_dir=package.parent, base_dir=package.name
    )
    spark.sparkContext.addPyFile(archive)
