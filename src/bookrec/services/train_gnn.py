"""bookrec train gnn: the user↔book graph → node2vec walks → skip-gram → books.gnn_vector."""

from __future__ import annotations

import time
from functools import partial

from bookrec.algorithms.scoring import popularity
from bookrec.models.embedding import EmbeddingModel
from bookrec.models.gate import training_part
from bookrec.models.gnn import check_engine_available, fit_gnn, gnn_core
from bookrec.progress import Phases
from bookrec.results import TrainGnnResult
from bookrec.services.gate import holdout, use_gate, write_back_judged
from bookrec.services.training import (
    load_training_data,
    recorded_run,
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
        with recorded_run(repo, "gnn", parameters, phases) as run_id:
            core = data.matrix
            split, unjudged = holdout(core, settings, "gnn", gate)
            training = training_part(core, split) if split is not None else core
            fit = fit_gnn(training, gnn, phases, settings.spark)
            candidate = None
            if split is not None:
                candidate = EmbeddingModel(
                    fit.vectors, core.book_ids, popularity(split.train), gnn.prior
                )
            metrics = {"edges": fit.edges, **fit.stats}

            checked = write_back_judged(
                repo, settings, "gnn", run_id, phases, data, metrics,
                {"book_ids": fit.vectors.book_ids, "book_vectors": fit.vectors.vectors},
                candidate=candidate, core=core, split=split, unjudged=unjudged, force=force,
            )  # fmt: skip
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
