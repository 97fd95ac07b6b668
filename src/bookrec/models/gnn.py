"""gnn: node2vec on the user↔book graph (exact second-order walks + skip-gram, or the node2vec
package), book vectors scored as an `EmbeddingModel`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bookrec.algorithms.matrix import InteractionMatrix
from bookrec.models.base import BookVectors, training_core
from bookrec.progress import Phases
from bookrec.settings import GnnSettings, SparkSettings


@dataclass(frozen=True, eq=False)
class GnnFit:
    """Book vectors of a gnn fit and the engine's figures (walks, steps and tokens per second)."""

    vectors: BookVectors
    edges: int
    stats: dict[str, Any] = field(default_factory=dict)


def gnn_core(matrix: InteractionMatrix, settings: GnnSettings) -> InteractionMatrix:
    """The graph gnn trains on: books with at least `min_interactions` readers."""
    return training_core(matrix, 1, settings.min_interactions)


def check_engine_available(settings: GnnSettings) -> None:
    """Fail before any work when the configured engine needs an extra that is missing."""
    if settings.engine == "node2vec":
        from bookrec.algorithms.node2vec_engine import require_package

        require_package()


def fit_gnn(
    core: InteractionMatrix,
    settings: GnnSettings,
    phases: Phases,
    spark: SparkSettings | None = None,
) -> GnnFit:
    """node2vec on the users × books confidences of `core` (see `gnn_core`): the built-in
    engine, the node2vec package, or Spark (on the `spark` settings)."""
    from bookrec.algorithms.skipgram import default_workers

    workers = settings.workers or default_workers()
    if settings.engine == "node2vec":
        node_vectors, stats = _node2vec_package(core, settings, workers, phases)
    elif settings.engine == "spark":
        node_vectors, stats = _spark(core, settings, spark or SparkSettings(), phases)
    else:
        node_vectors, stats = _builtin(core, settings, workers, phases)
    books = BookVectors("gnn", core.book_ids, node_vectors[core.shape[0] :])
    return GnnFit(books, core.nnz, stats)


def _builtin(
    core: InteractionMatrix, settings: GnnSettings, workers: int, phases: Phases
) -> tuple[np.ndarray, dict[str, Any]]:
    from bookrec.algorithms.skipgram import train_skipgram
    from bookrec.algorithms.walks import build_graph, random_walks

    with phases.phase("graph"):
        graph = build_graph(core.matrix)
    with phases.phase("walks") as update:
        walks = random_walks(
            graph, walk_length=settings.walk_length, walks_per_node=settings.walks_per_node,
            p=settings.p, q=settings.q, seed=settings.seed, on_progress=update,
        )  # fmt: skip
    with phases.phase("skipgram", total=settings.epochs) as update:
        vectors = train_skipgram(
            walks, graph.n_nodes, dim=settings.dim, window=settings.window,
            epochs=settings.epochs, negative=settings.negative, sample=settings.sample,
            learning_rate=settings.learning_rate, seed=settings.seed, workers=workers,
            on_epoch=update,
        )  # fmt: skip
    steps = int(walks.size)
    return vectors, {
        "walks": int(walks.shape[0]),
        "walk_steps_per_second": round(steps / max(phases.seconds["walks"], 1e-9)),
        "skipgram_tokens_per_second": round(
            steps * settings.epochs / max(phases.seconds["skipgram"], 1e-9)
        ),
    }


def _node2vec_package(
    core: InteractionMatrix, settings: GnnSettings, workers: int, phases: Phases
) -> tuple[np.ndarray, dict[str, Any]]:
    from bookrec.algorithms.node2vec_engine import node2vec_package_embeddings

    with phases.phase("node2vec"):
        vectors = node2vec_package_embeddings(
            core.matrix, dim=settings.dim, walk_length=settings.walk_length,
            walks_per_node=settings.walks_per_node, p=settings.p, q=settings.q,
            window=settings.window, epochs=settings.epochs, negative=settings.negative,
            sample=settings.sample, learning_rate=settings.learning_rate, seed=settings.seed,
            workers=workers,
        )  # fmt: skip
    return vectors, {}


def _spark(
    core: InteractionMatrix, settings: GnnSettings, spark: SparkSettings, phases: Phases
) -> tuple[np.ndarray, dict[str, Any]]:
    from bookrec.engines.spark import SparkOptions, gnn_vectors_spark

    seconds: dict[str, float] = {}
    parameters = settings.model_dump(exclude={"min_interactions", "workers", "engine", "prior"})
    with phases.phase("spark") as update:
        vectors = gnn_vectors_spark(
            core.matrix, **parameters, options=SparkOptions(**spark.model_dump()),
            on_progress=lambda _stage, done, total: update(done, total), timings=seconds,
        )  # fmt: skip
    return vectors, {
        "spark": {"master": spark.master, "skipgram": spark.skipgram, "seconds": seconds}
    }
