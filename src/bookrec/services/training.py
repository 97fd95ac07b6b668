"""What every training job shares: the interaction matrix, the run record, the lock."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from bookrec.algorithms.matrix import InteractionMatrix
from bookrec.domain import BookEventCounts, InteractionArrays
from bookrec.errors import GateRejectedError, NoInteractionsError, scrub
from bookrec.progress import Phases
from bookrec.results import GateResult
from bookrec.settings import Settings
from bookrec.storage.base import Repository

log = logging.getLogger("bookrec")


@contextmanager
def training_lock(repo: Repository, model: str, *, wait: bool) -> Iterator[None]:
    """The model's training lock for the whole job; with `wait`, logs that it waits (the
    command line shows it on stderr) when another run holds it."""

    def waiting() -> None:
        log.info("waiting for the other bookrec train %s on %s to finish", model, repo.url.where)

    with repo.training_lock(model, wait=wait, on_wait=waiting):
        yield


@dataclass(frozen=True)
class StreamedInteractions:
    """What training keeps of the interactions it streamed into its matrix: how many, up to
    which id, and their counts per (book, event, rating)."""

    rows: int
    max_interaction_id: int
    event_counts: BookEventCounts

    def __len__(self) -> int:
        return self.rows


@dataclass(frozen=True)
class TrainingData:
    """What was read (all of it, or what streamed through), and the k-core confidence matrix
    a model trains on."""

    interactions: InteractionArrays | StreamedInteractions
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
    NotEnoughDataError if too few are left).

    The interactions stream from the database in chunks into the matrix and the event counts
    (never all of them in memory at once)."""
    from bookrec.algorithms.matrix import BookEventCounter, matrix_of_chunks

    scheme = settings.weights.scheme()
    counter = BookEventCounter()
    with phases.phase("load"), repo.interaction_stream() as stream:
        now = stream.newest() if scheme.half_life_days is not None else None
        matrix = matrix_of_chunks(_counted(stream, counter), scheme, now)
    if stream.rows == 0:
        raise NoInteractionsError()
    totals = stream.totals
    interactions = StreamedInteractions(
        stream.rows,
        stream.max_interaction_id,
        counter.counts(stream.max_interaction_id, totals.first_at, totals.last_at),
    )
    with phases.phase("filter"):
        matrix = core(matrix)
    return TrainingData(interactions, matrix)


def _counted(chunks: Iterable[InteractionArrays], counter: Any) -> Iterator[InteractionArrays]:
    for chunk in chunks:
        counter.add(chunk)
        yield chunk


@contextmanager
def recorded_run(repo: Repository, model: str, parameters: dict, phases: Phases) -> Iterator[int]:
    """A training_runs row for the job; a failure (or Ctrl-C) is recorded with its error."""
    run_id = repo.start_run(model, parameters)
    try:
        yield run_id
    except GateRejectedError:  # recorded as rejected, with its figures
        raise
    except BaseException as exc:
        # Ctrl-C's KeyboardInterrupt has no text; a SIGTERM's says "terminated by SIGTERM".
        message = (str(exc) or "interrupted") if isinstance(exc, KeyboardInterrupt) else str(exc)
        with suppress(Exception):
            repo.finish_run(
                run_id,
                "failed",
                error=scrub(f"{type(exc).__name__}: {message}"),
                phases=phases.seconds,
            )
        raise


def run_result(
    data: TrainingData, phases: Phases, metrics: dict[str, Any], gate: GateResult | None = None
) -> dict[str, Any]:
    """The training_runs fields of a finished run (the gate's result among its metrics)."""
    if gate is not None:
        metrics = {**metrics, "gate": gate.to_dict()}
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
    interactions: InteractionArrays | StreamedInteractions,
) -> Iterator[Callable[[], BookEventCounts]]:
    """count_book_events on a thread of its own; yields the function that waits for them.

    A write-back needs the counts only at its end and until then mostly waits for the
    database, so counting meanwhile shortens it. Streamed interactions were counted as they
    streamed."""
    from concurrent.futures import ThreadPoolExecutor

    if isinstance(interactions, StreamedInteractions):
        yield lambda: interactions.event_counts
        return

    from bookrec.algorithms.scoring import count_book_events

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="count-book-events") as pool:
        yield pool.submit(count_book_events, interactions).result
