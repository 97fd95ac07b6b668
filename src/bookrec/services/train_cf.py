"""bookrec train cf: interactions → implicit ALS → users.cf_vector and books.cf_embedding."""

from __future__ import annotations

import time
from functools import partial

import numpy as np

from bookrec.algorithms.matrix import InteractionMatrix
from bookrec.models.cf import CfVectors, cf_core, cf_regularization, fit_cf
from bookrec.models.gate import training_part
from bookrec.progress import Phases
from bookrec.results import TrainCfResult
from bookrec.services.fold_in import fold_in_grams
from bookrec.services.gate import holdout, use_gate, write_back_judged
from bookrec.services.training import (
    load_training_data,
    recorded_run,
    training_lock,
)
from bookrec.settings import CfSettings, Settings
from bookrec.storage.base import Repository


def train_cf(
    repo: Repository,
    settings: Settings,
    phases: Phases,
    *,
    wait: bool = False,
    gate: bool | None = None,
    force: bool = False,
) -> TrainCfResult:
    """Train, pass the quality gate (settings.gate.enabled unless `gate` says otherwise;
    `force` publishes a rejected candidate anyway) and write back in one transaction.
    GateRejectedError (exit 4) when the gate rejects: nothing is replaced."""
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
            "gate": settings.gate.model_dump() if use_gate(settings, gate) else None,
        }
        if cf.engine == "spark":
            parameters["spark"] = {"master": settings.spark.master}
        with recorded_run(repo, "cf", parameters, phases) as run_id:
            split, unjudged = holdout(core, settings, "cf", gate)
            training = training_part(core, split) if split is not None else core
            with phases.phase("fit", total=cf.iterations) as update:
                fit = fit_cf(training, cf, update, settings.spark)
            vectors, candidate = fit.vectors, None
            if split is not None:
                candidate = vectors.model(core.book_ids)
                vectors = _with_full_rows(vectors, core, split.rows, fit.regularization, cf)
            metrics = {"pairs": fit.pairs, **fit.engine_stats}
            checked = write_back_judged(
                repo, settings, "cf", run_id, phases, data, metrics,
                {
                    "book_ids": vectors.book_ids, "book_vectors": vectors.book_vectors,
                    "user_ids": vectors.user_ids, "user_vectors": vectors.user_vectors,
                },
                candidate=candidate, core=core, split=split, unjudged=unjudged, force=force,
                artifacts=lambda: fold_in_grams(vectors.user_vectors, vectors.book_vectors),
            )  # fmt: skip
        write_seconds = phases.seconds["write"]
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
        gate=checked,
    )


def _with_full_rows(
    vectors: CfVectors,
    core: InteractionMatrix,
    rows: np.ndarray,
    regularization: float,
    cf: CfSettings,
) -> CfVectors:
    """The candidate's vectors with the held-out users' re-solved on all their rows, so the
    published vectors lose none of their data."""
    from bookrec.algorithms.cf import solve_rows

    user_vectors = vectors.user_vectors.copy()
    user_vectors[rows] = solve_rows(
        core.matrix[rows], vectors.book_vectors, regularization=regularization, alpha=cf.alpha
    )
    return CfVectors(vectors.user_ids, user_vectors, vectors.book_ids, vectors.book_vectors)
