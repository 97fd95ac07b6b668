"""bookrec train cf: interactions → implicit ALS → users.cf_vector and books.cf_embedding."""

from __future__ import annotations

import time
from functools import partial

from bookrec.models.cf import cf_core, cf_regularization, fit_cf
from bookrec.progress import Phases
from bookrec.results import TrainCfResult
from bookrec.services.fold_in import fold_in_grams
from bookrec.services.training import (
    counting_book_events,
    load_training_data,
    recorded_run,
    run_result,
    training_lock,
)
from bookrec.settings import Settings
from bookrec.storage.base import Repository


def train_cf(
    repo: Repository, settings: Settings, phases: Phases, *, wait: bool = False
) -> TrainCfResult:
    """Train and write back in one transaction."""
    cf = settings.cf
    started = time.perf_counter()
    if cf.engine == "spark":  # before any work: pyspark and Java are there
        from bookrec.engines.spark import check_ready

        check_ready("train cf --engine spark")
    with training_lock(repo, "cf", wait=wait):
        data = load_training_data(repo, settings, phases, partial(cf_core, settings=cf))
        core = data.matrix
        parameters = {
            **cf.model_dump(),
            "regularization_used": round(cf_regularization(core, cf), 6),
            "weights": settings.weights.model_dump(),
        }
        if cf.engine == "spark":
            parameters["spark"] = {"master": settings.spark.master}
        with recorded_run(repo, "cf", parameters, phases) as run_id:
            with phases.phase("fit", total=cf.iterations) as update:
                fit = fit_cf(core, cf, update, settings.spark)
            result = run_result(data, phases, metrics={"pairs": fit.pairs, **fit.engine_stats})
            vectors = fit.vectors
            with phases.phase("write", total=data.n_users + data.n_books) as update:
                write_started = time.perf_counter()
                with counting_book_events(data.interactions) as event_counts:
                    repo.replace_vectors(
                        "cf", run_id, result,
                        book_ids=vectors.book_ids, book_vectors=vectors.book_vectors,
                        user_ids=vectors.user_ids, user_vectors=vectors.user_vectors,
                        on_progress=update, event_counts=event_counts,
                        artifacts=fold_in_grams(vectors.user_vectors, vectors.book_vectors),
                    )  # fmt: skip
                write_seconds = time.perf_counter() - write_started
        # The write phase's own time is known only after its commit.
        repo.finish_run(run_id, "succeeded", **{**result, "phases": phases.seconds})
    return TrainCfResult(
        run_id=run_id,
        users=data.n_users,
        books=data.n_books,
        interactions=len(data.interactions),
        pairs=fit.pairs,
        factors=cf.factors,
        regularization=round(fit.regularization, 6),
        engine=cf.engine,
        engine_stats=fit.engine_stats,
        iterations=cf.iterations,
        phases=phases.seconds,
        vectors_per_second=round((data.n_users + data.n_books) / max(write_seconds, 1e-9)),
        seconds=round(time.perf_counter() - started, 3),
    )
