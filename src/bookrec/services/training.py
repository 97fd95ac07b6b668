"""What every training job shares: the interaction matrix, the run record, the lock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from bookrec.domain import BookEventCounts, InteractionArrays
from bookrec.errors import NotReadyError, scrub
from bookrec.progress import Phases
from bookrec.settings import Settings
from bookrec.storage.base import Repository


@dataclass(frozen=True)
class TrainingData:
    interactions: InteractionArrays
    matrix: object  # bookrec.algorithms.matrix.InteractionMatrix

    @property
    def n_users(self) -> int:
        return int(self.matrix.shape[0])  # type: ignore[attr-defined]

    @property
    def n_books(self) -> int:
        return int(self.matrix.shape[1])  # type: ignore[attr-defined]


def weight_scheme(settings: Settings):
    from bookrec.algorithms.matrix import WeightScheme

    return WeightScheme(**settings.weights.model_dump())


def load_training_data(
    repo: Repository,
    settings: Settings,
    phases: Phases,
    *,
    min_user_interactions: int,
    min_book_interactions: int,
) -> TrainingData:
    """All interactions as a k-core-filtered confidence matrix; the guide's errors if too few."""
    from bookrec.algorithms.matrix import build_matrix, k_core

    with phases.phase("load"):
        interactions = repo.load_interactions()
    if len(interactions) == 0:
        raise NotReadyError(
            "No interactions found",
            hint="users need to interact with books first: bookrec ingest interactions FILE",
        )
    with phases.phase("filter"):
        matrix = build_matrix(interactions, weight_scheme(settings))
        matrix = k_core(matrix, min_user_interactions, min_book_interactions)
    if matrix.shape[0] < 2 or matrix.shape[1] < 2:
        raise NotReadyError(
            f"Not enough users/items: {matrix.shape[0]} users and {matrix.shape[1]} books"
            f" have enough interactions (at least {min_user_interactions} per user and"
            f" {min_book_interactions} per book); 2 of each are needed",
            hint="need more user activity, or lower --min-interactions",
        )
    return TrainingData(interactions, matrix)


@contextmanager
def recorded_run(repo: Repository, model: str, parameters: dict, phases: Phases) -> Iterator[int]:
    """A training_runs row for the job; a failure (or Ctrl-C) is recorded with its error."""
    run_id = repo.start_run(model, parameters)
    try:
        yield run_id
    except BaseException as exc:
        message = "interrupted" if isinstance(exc, KeyboardInterrupt) else str(exc)
        with suppress(Exception):
            repo.finish_run(
                run_id,
                "failed",
                error=scrub(f"{type(exc).__name__}: {message}"),
                phases=phases.seconds,
            )
        raise


def run_result(data: TrainingData, phases: Phases, metrics: dict[str, Any]) -> dict[str, Any]:
    """The training_runs fields of a finished run."""
    return {
        "n_users": data.n_users,
        "n_books": data.n_books,
        "n_interactions": len(data.interactions),
        "max_interaction_id": data.interactions.max_interaction_id,
        "phases": dict(phases.seconds),
        "metrics": metrics,
    }


@contextmanager
def counting_book_events(
    interactions: InteractionArrays,
) -> Iterator[Callable[[], BookEventCounts]]:
    """count_book_events on a thread of its own; yields the function that waits for them.

    A write-back needs the counts only at its end and until then mostly waits for the
    database, so counting meanwhile shortens it."""
    from concurrent.futures import ThreadPoolExecutor

    from bookrec.algorithms.scoring import count_book_events

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="count-book-events") as pool:
        yield pool.submit(count_book_events, interactions).result
