"""bookrec train gnn: the user↔book graph → node2vec walks → skip-gram → books.gnn_vector."""

from __future__ import annotations

import time
from functools import partial

from bookrec.models.gnn import check_engine_available, fit_gnn, gnn_core
from bookrec.progress import Phases
from bookrec.results import TrainGnnResult
from bookrec.services.training import (
    counting_book_events,
    load_training_data,
    recorded_run,
    run_result,
    training_lock,
)
from bookrec.settings import Settings
from bookrec.storage.base import Repository


def train_gnn(
    repo: Repository, settings: Settings, phases: Phases, *, wait: bool = False
) -> TrainGnnResult:
    """Train and write back in one transaction."""
    gnn = settings.gnn
    started = time.perf_counter()
    if gnn.engine == "spark":  # before any work: pyspark and Java are there
        from bookrec.engines.spark import check_ready

        check_ready("train gnn --engine spark")
    check_engine_available(gnn)  # a usage error, not a failed run
    with training_lock(repo, "gnn", wait=wait):
        data = load_training_data(repo, settings, phases, partial(gnn_core, settings=gnn))
        parameters = {**gnn.model_dump(), "weights": settings.weights.model_dump()}
        with recorded_run(repo, "gnn", parameters, phases) as run_id:
            fit = fit_gnn(data.matrix, gnn, phases, settings.spark)
            result = run_result(data, phases, metrics={"edges": fit.edges, **fit.stats})
            with (
                phases.phase("write", total=data.n_books) as update,
                counting_book_events(data.interactions) as event_counts,
            ):
                repo.replace_vectors(
                    "gnn", run_id, result, book_ids=fit.vectors.book_ids,
                    book_vectors=fit.vectors.vectors, on_progress=update,
                    event_counts=event_counts,
                )  # fmt: skip
        repo.finish_run(run_id, "succeeded", **{**result, "phases": phases.seconds})
    return TrainGnnResult(
        run_id=run_id,
        engine=gnn.engine,
        users=data.n_users,
        books=data.n_books,
        interactions=len(data.interactions),
        edges=fit.edges,
        dim=gnn.dim,
        engine_stats=fit.stats,
        phases=phases.seconds,
        seconds=round(time.perf_counter() - started, 3),
    )
