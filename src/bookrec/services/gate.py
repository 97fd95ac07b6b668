"""The quality gate of train cf / train gnn: the candidate against popularity and against the
published vectors on the same held-out pairs (models.gate), before anything is replaced.

A candidate is rejected when it ranks below popularity, or below the published model by more
than settings.gate.tolerance (absolute nDCG@k). The same held-out scores of every family with
vectors (the candidate's own, the others' published ones) give the hybrid weights a passing
run publishes.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from bookrec.algorithms.matrix import InteractionMatrix
from bookrec.algorithms.split import MatrixHoldout
from bookrec.errors import GateRejectedError
from bookrec.models.base import BookVectors, Model
from bookrec.models.blend import Blend
from bookrec.models.gate import (
    MIN_USERS,
    PUBLISHED,
    GateFigures,
    gate_split,
    measure,
    resolved_cf,
    verdict,
)
from bookrec.progress import Phases
from bookrec.results import GateResult
from bookrec.services.training import TrainingData, counting_book_events, run_result
from bookrec.settings import Settings
from bookrec.storage.base import Repository
from bookrec.storage.vectors import HybridRows


@dataclass(frozen=True)
class GateOutcome:
    result: GateResult
    blend: Blend

    def hybrid_rows(self) -> dict[str, tuple[float, float | None]]:
        """What the hybrid_weights table holds: strategy -> (weight, prior)."""
        from bookrec.algorithms.scoring import DEFAULT_PRIOR

        return {
            name: (weight, DEFAULT_PRIOR.get(name)) for name, weight in self.blend.weights.items()
        }


def use_gate(settings: Settings, gate: bool | None) -> bool:
    return settings.gate.enabled if gate is None else gate


def holdout(
    core: InteractionMatrix, settings: Settings, model: str, gate: bool | None
) -> tuple[MatrixHoldout | None, GateResult | None]:
    """The pairs the gate holds out of `core` (None: no gate), or, when too few users would
    be held out to judge, None and the skipped gate's result to record."""
    if not use_gate(settings, gate):
        return None, None
    split = gate_split(core, settings.gate)
    if len(split.rows) < MIN_USERS:
        return None, skipped(model, settings, len(split.rows))
    return split, None


def skipped(model: str, settings: Settings, users: int) -> GateResult:
    gate = settings.gate
    return GateResult(
        model=model, k=gate.k, users=users, candidate=None, popular=None, published=None,
        tolerance=gate.tolerance, passed=True,
        skipped=f"{users} held-out users: too few to judge",
    )  # fmt: skip


@contextmanager
def judging(
    repo: Repository,
    settings: Settings,
    model: str,
    candidate: Model,
    core: InteractionMatrix,
    split: MatrixHoldout,
    phases: Phases,
    *,
    force: bool = False,
) -> Iterator[Callable[[], GateOutcome]]:
    """Measure `candidate` (of family `model`, fitted on split.train) on the held-out pairs,
    scored on a thread of its own: yields the function that waits for the outcome.

    The published vectors are read here, before the caller's write-back replaces them; the
    scoring (pure numpy, most of it outside the GIL) then runs while the caller writes the
    candidate's vectors in the transaction a rejection rolls back (see Verdict). Leaving the
    block stops the scoring at its next batch of users and waits for the thread."""
    from bookrec.algorithms.scoring import popularity
    from bookrec.models.popular import PopularModel

    started = time.perf_counter()
    with phases.phase("gate"):
        book_popularity = popularity(split.train)
        models: dict[str, Model] = {
            "popular": PopularModel(core.book_ids, book_popularity),
            model: candidate,
        }
        published = _published(repo, settings, core, split, book_popularity)
        if model in published:
            models[PUBLISHED] = published.pop(model)
        models |= published
    stop = threading.Event()
    pending: Future[GateOutcome] = Future()

    def score() -> None:
        try:
            with phases.phase("gate"):
                figures = measure(models, split, core, settings.gate.k, stop=stop)
            seconds = time.perf_counter() - started
            pending.set_result(_outcome(figures, model, settings, force, seconds))
        except BaseException as error:  # raised in the caller by pending.result()
            pending.set_exception(error)

    thread = threading.Thread(target=score, name="bookrec-gate", daemon=True)
    thread.start()
    try:
        yield pending.result
    finally:
        stop.set()
        thread.join()


def _outcome(
    figures: GateFigures, model: str, settings: Settings, force: bool, seconds: float
) -> GateOutcome:
    reason = verdict(figures, model, settings.gate.tolerance)
    result = GateResult(
        model=model,
        k=settings.gate.k,
        users=figures.users,
        candidate=figures.ndcg[model],
        popular=figures.ndcg["popular"],
        published=figures.ndcg.get(PUBLISHED),
        tolerance=settings.gate.tolerance,
        passed=reason is None,
        reason=reason,
        forced=force and reason is not None,
        hybrid_weights=figures.blend.weights,
        seconds=round(seconds, 3),
    )
    return GateOutcome(result, figures.blend)


class Rejected(Exception):
    """Raised in a write-back's transaction when the gate rejects the candidate: the write
    is rolled back and the run recorded as rejected (record_rejection)."""

    def __init__(self, result: GateResult) -> None:
        super().__init__(result.reason)
        self.result = result


@dataclass
class Verdict:
    """What a write-back needs of the gate, asked for once the vectors are written: `outcome`
    waits for the gate `judging` runs (None: not judged, `unjudged` is the result to record:
    a skipped gate or none)."""

    outcome: Callable[[], GateOutcome] | None
    unjudged: GateResult | None
    force: bool

    def result(self) -> GateResult | None:
        return self.unjudged if self.outcome is None else self.outcome().result

    def passed(self) -> GateResult | None:
        """The result, Rejected if the gate rejects the candidate and the run is not forced."""
        result = self.result()
        if result is not None and not result.passed and not self.force:
            raise Rejected(result)
        return result

    def hybrid_rows(self) -> HybridRows | None:
        self.passed()
        return None if self.outcome is None else self.outcome().hybrid_rows()


def write_back_judged(
    repo: Repository,
    settings: Settings,
    model: str,
    run_id: int,
    phases: Phases,
    data: TrainingData,
    metrics: dict[str, Any],
    vectors: dict[str, Any],
    *,
    candidate: Model | None,
    core: InteractionMatrix,
    split: MatrixHoldout | None,
    unjudged: GateResult | None,
    force: bool,
    artifacts: Callable[[], dict[str, bytes]] | None = None,
) -> GateResult | None:
    """Replace the family's vectors (`vectors`: replace_vectors' arguments; `artifacts`
    computed in the write phase, beside the gate) in one
    transaction, judged by the gate beside the write when `split` is given: its verdict,
    asked for once the vectors are written, decides whether the transaction commits. A
    rejection rolls it back, records the run as rejected with its figures and raises
    GateRejectedError; otherwise the run is marked succeeded. Returns the gate's result
    (None: no gate)."""
    judged = contextlib.nullcontext(None)
    if split is not None:
        assert candidate is not None
        judged = judging(repo, settings, model, candidate, core, split, phases, force=force)
    total = data.n_books + (data.n_users if "user_ids" in vectors else 0)
    with judged as outcome:
        gate_verdict = Verdict(outcome, unjudged, force)
        try:
            with (
                phases.phase("write", total=total) as update,
                counting_book_events(data.interactions) as event_counts,
            ):
                repo.replace_vectors(
                    model, run_id, lambda: run_result(data, phases, metrics, gate_verdict.passed()),
                    on_progress=update, event_counts=event_counts,
                    hybrid_weights=gate_verdict.hybrid_rows,
                    artifacts=artifacts() if artifacts else None, **vectors,
                )  # fmt: skip
        except Rejected as rejection:
            checked = rejection.result
            fields = run_result(data, phases, metrics, checked)
            record_rejection(repo, run_id, fields, phases, checked)
            raise GateRejectedError(model, run_id, checked.reason or "") from None
        checked = gate_verdict.result()
    # Once more after the commit: only now is the write phase's own time known.
    repo.finish_run(run_id, "succeeded", **run_result(data, phases, metrics, checked))
    return checked


def held_out_by(repo: Repository, family: str, settings: Settings, users: int) -> bool:
    """Whether the published vectors of `family` were fitted without the pairs of the `users`
    this gate holds out: their run's gate had the same seed and held at least as many (the
    smaller sample is the start of the larger). Vectors fitted on those pairs would be scored
    on what they learnt, so they are neither compared with nor blended."""
    run = repo.latest_run(family)
    gate = (run.metrics or {}).get("gate") if run else None
    if not gate or gate.get("skipped"):
        return False
    held = run.parameters.get("gate") or {}
    return held.get("seed") == settings.gate.seed and int(gate.get("users") or 0) >= users


def _published(
    repo: Repository,
    settings: Settings,
    core: InteractionMatrix,
    split: MatrixHoldout,
    book_popularity: np.ndarray,
) -> dict[str, Model]:
    """The published models of every family with vectors, over the core's books; cf with
    the held-out users' vectors re-solved on their training rows."""
    from bookrec.models.embedding import EmbeddingModel

    models: dict[str, Model] = {}
    held = len(split.rows)
    families = ["content"] + [f for f in ("cf", "gnn") if held_out_by(repo, f, settings, held)]
    loaded = repo.load_vector_families(families)
    for family, (ids, vectors) in loaded.items():
        if len(ids) == 0:
            continue
        if family == "cf":
            run = repo.latest_run("cf")
            parameters = run.parameters if run else {}
            regularization = parameters.get("regularization_used")
            if regularization is None:
                from bookrec.models.cf import cf_regularization

                regularization = cf_regularization(core, settings.cf)
            alpha = float(parameters.get("alpha", settings.cf.alpha))
            cf = resolved_cf(ids, vectors, core, split.rows, split.train, regularization, alpha)
            models["cf"] = cf.model(core.book_ids)
        else:
            prior = settings.gnn.prior if family == "gnn" else settings.content.prior
            models[family] = EmbeddingModel(
                BookVectors(family, ids, vectors), core.book_ids, book_popularity, prior
            )
    return models


def record_rejection(
    repo: Repository, run_id: int, result: dict, phases: Phases, checked: GateResult
) -> None:
    """The run the gate rejected, recorded as such with its figures: nothing is replaced."""
    repo.finish_run(
        run_id, "rejected", **{**result, "phases": phases.seconds},
        error=f"rejected by the quality gate: {checked.reason}",
    )  # fmt: skip
