"""bookrec train gnn: the user↔book graph → node2vec walks → skip-gram → books.gnn_vector."""

from __future__ import annotations

import contextlib
import time
from functools import partial

from bookrec.algorithms.scoring import popularity
from bookrec.errors import GateRejectedError
from bookrec.models.embedding import EmbeddingModel
from bookrec.models.gate import MIN_USERS, gate_split, training_part
from bookrec.models.gnn import check_engine_available, fit_gnn, gnn_core
from bookrec.progress import Phases
from bookrec.results import TrainGnnResult
from bookrec.services.gate import Rejected, Verdict, judging, record_rejection, skipped
from bookrec.services.train_cf import use_gate
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
    repo: Repository,
    settings: Settings,
    phases: Phases,
    *,
    wait: bool = False,
    gate: bool | None = None,
    force: bool = False,
) -> TrainGnnResult:
    """Train, pass the quality gate (as train_cf) and write back in one transaction."""
    gnn = settings.gnn
    started = time.perf_counter()
    if gnn.engine == "spark":  # before any work: pyspark and Java are there
        from bookrec.engines.spark import check_ready

        check_ready("train gnn --engine spark")
    check_engine_available(gnn)  # a usage error, not a failed run
    with training_lock(repo, "gnn", wait=wait):
        data = load_training_data(repo, settings, phases, partial(gnn_core, settings=gnn))
        parameters = {
            **gnn.model_dump(),
            "weights": settings.weights.model_dump(),
            "gate": settings.gate.model_dump() if use_gate(settings, gate) else None,
        }
        rejected = None
        with recorded_run(repo, "gnn", parameters, phases) as run_id:
            core = data.matrix
            split = gate_split(core, settings.gate) if use_gate(settings, gate) else None
            unjudged = None
            if split is not None and len(split.rows) < MIN_USERS:
                unjudged, split = skipped("gnn", settings, len(split.rows)), None
            training = training_part(core, split) if split is not None else core
            fit = fit_gnn(training, gnn, phases, settings.spark)
            judged = contextlib.nullcontext(None)
            if split is not None:
                candidate = EmbeddingModel(
                    fit.vectors, core.book_ids, popularity(split.train), gnn.prior
                )
                judged = judging(repo, settings, "gnn", candidate, core, split, phases, force=force)
            metrics = {"edges": fit.edges, **fit.stats}

            with judged as outcome:
                gate_verdict = Verdict(outcome, unjudged, force)

                def finished() -> dict:  # once the vectors are written; Rejected rolls back
                    return run_result(data, phases, metrics, gate_verdict.passed())

                try:
                    with (
                        phases.phase("write", total=data.n_books) as update,
                        counting_book_events(data.interactions) as event_counts,
                    ):
                        repo.replace_vectors(
                            "gnn", run_id, finished,
                            book_ids=fit.vectors.book_ids, book_vectors=fit.vectors.vectors,
                            on_progress=update, event_counts=event_counts,
                            hybrid_weights=gate_verdict.hybrid_rows,
                        )  # fmt: skip
                except Rejected as rejection:
                    rejected = rejection.result
                    result = run_result(data, phases, metrics, rejected)
                    record_rejection(repo, run_id, result, phases, rejected)
                checked = gate_verdict.result()
            result = run_result(data, phases, metrics, checked)
        if rejected is not None:
            raise GateRejectedError("gnn", run_id, rejected.reason or "")
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
        gate=checked,
    )
