"""bookrec evaluate: offline ranking quality of every strategy; reads the database only."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from bookrec.errors import InputError, NotReadyError
from bookrec.progress import Phases
from bookrec.settings import Settings
from bookrec.storage.base import Repository


class _StageProgress:
    """evaluate's (stage, done, total) callbacks as one progress phase per stage."""

    def __init__(self, phases: Phases) -> None:
        self.phases = phases
        self.stage: str | None = None
        self.stack = ExitStack()
        self.update = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self.stage:
            self.stack.close()
            self.stack = ExitStack()
            self.update = self.stack.enter_context(self.phases.phase(stage, total=total))
            self.stage = stage
        self.update(done, total)

    def close(self) -> None:
        self.stack.close()


def evaluate_strategies(
    repo: Repository,
    settings: Settings,
    phases: Phases,
    *,
    split: str,
    test_fraction: float,
    k: int,
    strategies: list[str],
    seed: int,
) -> dict[str, Any]:
    from bookrec.algorithms import evaluation
    from bookrec.services.training import weight_scheme

    with phases.phase("load"):
        interactions = repo.load_interactions()
        books = repo.book_texts()
    if len(interactions) == 0:
        raise NotReadyError(
            "No interactions found", hint="load interactions first: bookrec ingest interactions"
        )
    progress = _StageProgress(phases)
    try:
        report = evaluation.evaluate(
            interactions,
            books,
            split=split,
            test_fraction=test_fraction,
            k=k,
            strategies=strategies,
            seed=seed,
            cf=evaluation.CfParams(**settings.cf.model_dump(exclude={"engine"})),
            # One skip-gram worker: with more, gensim's threads race and a seed does not repeat.
            gnn=evaluation.GnnParams(**{**settings.gnn.model_dump(), "workers": 1}),
            content=evaluation.ContentParams(**settings.content.model_dump()),
            weights=weight_scheme(settings),
            hybrid=evaluation.HybridWeights(**settings.hybrid.model_dump()),
            on_progress=progress,
        )
    except ValueError as exc:
        raise InputError(str(exc)) from None
    finally:
        progress.close()
    result = report.to_dict()
    result["seconds"] = round(report.seconds, 3)
    return result
