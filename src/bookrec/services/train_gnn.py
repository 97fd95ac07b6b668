"""bookrec train gnn: the user↔book graph → node2vec walks → skip-gram → books.gnn_vector."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from bookrec.progress import Phases
from bookrec.services.training import (
    counting_book_events,
    load_training_data,
    recorded_run,
    run_result,
)
from bookrec.settings import Settings
from bookrec.storage.base import Repository


def train_gnn(repo: Repository, settings: Settings, phases: Phases, *, wait: bool = False):
    """Train and write back in one transaction; returns the run's summary."""
    gnn = settings.gnn
    started = time.perf_counter()
    if gnn.engine == "spark":
        from bookrec.engines.spark import check_ready

        check_ready("train gnn --engine spark")
    with repo.training_lock("gnn", wait=wait):
        data = load_training_data(
            repo, settings, phases,
            min_user_interactions=1, min_book_interactions=gnn.min_interactions,
        )  # fmt: skip
        m = data.matrix
        parameters = {**gnn.model_dump(), "weights": settings.weights.model_dump()}
        with recorded_run(repo, "gnn", parameters, phases) as run_id:
            if gnn.engine == "node2vec":
                vectors, stats = _node2vec_package(m.matrix, settings, phases)
            elif gnn.engine == "spark":
                vectors, stats = _spark(m.matrix, settings, phases)
            else:
                vectors, stats = _builtin(m.matrix, settings, phases)
            book_vectors = vectors[data.n_users :]
            result = run_result(data, phases, metrics={"edges": int(m.nnz), **stats})
            with (
                phases.phase("write", total=data.n_books) as update,
                counting_book_events(data.interactions) as event_counts,
            ):
                repo.replace_vectors(
                    "gnn", run_id, result, book_ids=m.book_ids, book_vectors=book_vectors,
                    on_progress=update, event_counts=event_counts,
                )  # fmt: skip
        repo.finish_run(run_id, "succeeded", **{**result, "phases": phases.seconds})
    summary: dict[str, Any] = {
        "run_id": run_id,
        "model": "gnn",
        "engine": gnn.engine,
        "users": data.n_users,
        "books": data.n_books,
        "interactions": len(data.interactions),
        "edges": int(m.nnz),
        "dim": gnn.dim,
        **stats,
        "phases": phases.seconds,
        "seconds": round(time.perf_counter() - started, 3),
    }
    return summary


def _builtin(weights, settings: Settings, phases: Phases) -> tuple[np.ndarray, dict[str, Any]]:
    from bookrec.algorithms.skipgram import train_skipgram
    from bookrec.algorithms.walks import build_graph, random_walks

    gnn = settings.gnn
    with phases.phase("graph"):
        graph = build_graph(weights)
    with phases.phase("walks") as update:
        walks = random_walks(
            graph, walk_length=gnn.walk_length, walks_per_node=gnn.walks_per_node,
            p=gnn.p, q=gnn.q, seed=gnn.seed, on_progress=update,
        )  # fmt: skip
    with phases.phase("skipgram", total=gnn.epochs) as update:
        vectors = train_skipgram(
            walks, graph.n_nodes, dim=gnn.dim, window=gnn.window, epochs=gnn.epochs,
            negative=gnn.negative, sample=gnn.sample, seed=gnn.seed,
            workers=gnn.workers or None, on_epoch=update,
        )  # fmt: skip
    steps = int(walks.size)
    return vectors, {
        "walks": int(walks.shape[0]),
        "walk_steps_per_second": round(steps / max(phases.seconds["walks"], 1e-9)),
        "skipgram_tokens_per_second": round(
            steps * gnn.epochs / max(phases.seconds["skipgram"], 1e-9)
        ),
    }


def _node2vec_package(
    weights, settings: Settings, phases: Phases
) -> tuple[np.ndarray, dict[str, Any]]:
    from bookrec.algorithms.node2vec_engine import node2vec_package_embeddings
    from bookrec.algorithms.skipgram import default_workers

    gnn = settings.gnn
    with phases.phase("node2vec"):
        vectors = node2vec_package_embeddings(
            weights, dim=gnn.dim, walk_length=gnn.walk_length,
            walks_per_node=gnn.walks_per_node, p=gnn.p, q=gnn.q, window=gnn.window,
            epochs=gnn.epochs, negative=gnn.negative, sample=gnn.sample, seed=gnn.seed,
            workers=gnn.workers or default_workers(),
        )  # fmt: skip
    return vectors, {}


def _spark(weights, settings: Settings, phases: Phases) -> tuple[np.ndarray, dict[str, Any]]:
    from bookrec.engines.spark import SparkOptions, gnn_vectors_spark

    gnn, seconds = settings.gnn, {}
    with phases.phase("spark") as update:
        vectors = gnn_vectors_spark(
            weights, **gnn.model_dump(exclude={"min_interactions", "workers", "engine"}),
            options=SparkOptions(**settings.spark.model_dump()),
            on_progress=lambda _stage, done, total: update(done, total), timings=seconds,
        )  # fmt: skip
    spark = {"master": settings.spark.master, "skipgram": settings.spark.skipgram}
    return vectors, {"spark": {**spark, "seconds": seconds}}
