"""bookrec train cf: interactions → implicit ALS → users.cf_vector and books.cf_embedding."""

from __future__ import annotations

import time
from typing import Any

from bookrec.progress import Phases
from bookrec.services.training import (
    counting_book_events,
    load_training_data,
    recorded_run,
    run_result,
)
from bookrec.settings import Settings
from bookrec.storage.base import Repository


def train_cf(repo: Repository, settings: Settings, phases: Phases, *, wait: bool = False):
    """Train and write back in one transaction; returns the run's summary."""
    from bookrec.algorithms.cf import fit_als, regularization_for

    cf = settings.cf
    started = time.perf_counter()
    if cf.engine == "spark":
        from bookrec.engines.spark import check_ready

        check_ready("train cf --engine spark")
    with repo.training_lock("cf", wait=wait):
        data = load_training_data(
            repo, settings, phases,
            min_user_interactions=cf.min_interactions, min_book_interactions=cf.min_interactions,
        )  # fmt: skip
        m = data.matrix
        regularization = regularization_for(cf.regularization, m.nnz, cf.alpha)
        parameters = {
            **cf.model_dump(),
            "regularization_used": round(regularization, 6),
            "weights": settings.weights.model_dump(),
        }
        spark: dict[str, Any] = {}
        if cf.engine == "spark":
            parameters["spark"] = spark = _spark_parameters(settings, m, regularization)
        with recorded_run(repo, "cf", parameters, phases) as run_id:
            with phases.phase("fit", total=cf.iterations) as update:
                fit = _fit_spark(settings, spark) if cf.engine == "spark" else fit_als
                factors = fit(
                    m.matrix,
                    factors=cf.factors,
                    iterations=cf.iterations,
                    regularization=regularization,
                    alpha=cf.alpha,
                    seed=cf.seed,
                    threads=cf.threads,
                    on_iteration=update,
                )
            result = run_result(data, phases, metrics={"pairs": int(m.nnz)})
            with phases.phase("write", total=data.n_users + data.n_books) as update:
                write_started = time.perf_counter()
                with counting_book_events(data.interactions) as event_counts:
                    repo.replace_vectors(
                        "cf",
                        run_id,
                        result,
                        book_ids=m.book_ids,
                        book_vectors=factors.item_factors,
                        user_ids=m.user_ids,
                        user_vectors=factors.user_factors,
                        on_progress=update,
                        event_counts=event_counts,
                    )
                write_seconds = time.perf_counter() - write_started
        # The write phase's own time is known only after its commit.
        repo.finish_run(run_id, "succeeded", **{**result, "phases": phases.seconds})
    summary: dict[str, Any] = {
        "run_id": run_id,
        "model": "cf",
        "engine": cf.engine,
        **({"spark": spark} if spark else {}),
        "users": data.n_users,
        "books": data.n_books,
        "interactions": len(data.interactions),
        "pairs": int(m.nnz),
        "factors": cf.factors,
        "regularization": round(regularization, 6),
        "iterations": cf.iterations,
        "phases": phases.seconds,
        "vectors_per_second": round((data.n_users + data.n_books) / max(write_seconds, 1e-9)),
        "seconds": round(time.perf_counter() - started, 3),
    }
    return summary


def _spark_parameters(settings: Settings, m, regularization: float) -> dict[str, Any]:
    from bookrec.engines.spark import mllib_parameters

    mapped = mllib_parameters(
        m.shape[0], m.shape[1], m.nnz, regularization=regularization, alpha=settings.cf.alpha
    )
    return {"master": settings.spark.master, "mllib": {k: round(v, 8) for k, v in mapped.items()}}


def _fit_spark(settings: Settings, spark: dict[str, Any]):
    """fit_als's signature on Spark; the Spark steps' seconds go to spark["seconds"]."""
    from bookrec.engines.spark import SparkOptions, fit_als_spark

    spark["seconds"] = {}

    def fit(matrix, *, threads: int, on_iteration, **parameters):
        return fit_als_spark(
            matrix, **parameters, options=SparkOptions(**settings.spark.model_dump()),
            on_progress=lambda _stage, done, total: on_iteration(done, total),
            timings=spark["seconds"],
        )  # fmt: skip

    return fit
