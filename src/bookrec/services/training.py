"""What every training job shares: the interaction matrix, the run record, the lock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from bookrec.algorithms.matrix import InteractionMatrix
from bookrec.domain import BookEventCounts, InteractionArrays
from bookrec.errors import NoInteractionsError, scrub
from bookrec.progress import Phases
from bookrec.settings import Settings
from bookrec.storage.base import Repository


@dataclass(frozen=True)
class TrainingData:
    """Every interaction read, and the k-core confidence matrix a model trains on."""

    interactions: InteractionArrays
    matrix: InteractionMatrix

    @property
    def n_users(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def n_books(self) -> int:
        return int(self.matrix.shape[1])


def load_training_data(
    repo: Repository,
    settings: Settings,
    phases: Phases,
    core: Callable[[InteractionMatrix], InteractionMatrix],
) -> TrainingData:
    """All interactions as the confidence matrix, filtered by the model's `core` (its k-core;
    NotEnoughDataError if too few are left)."""
    from bookrec.algorithms.matrix import build_matrix

    with phases.phase("load"):
        interactions = repo.load_interactions()
    if len(interactions) == 0:
        raise NoInteractionsError()
    with phases.phase("filter"):
        matrix = core(build_matrix(interactions, settings.weights.scheme()))
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
