"""bookrec tune: a hyper-parameter search on the stored interactions (models.tune), recorded as
a `tune` training run; with apply, the chosen settings are stored with that run."""

from __future__ import annotations

from collections.abc import Sequence

from bookrec.errors import NoInteractionsError
from bookrec.models.tune import OnTrial, TuneProtocol
from bookrec.progress import Phases
from bookrec.results import TunedReset, TuneReport
from bookrec.services.training import recorded_run, training_lock
from bookrec.settings import Settings
from bookrec.storage.base import Repository

MODEL = "tune"


def tune_settings(
    repo: Repository,
    settings: Settings,
    phases: Phases,
    *,
    strategies: Sequence[str],
    trials: int,
    timeout: float | None,
    protocol: TuneProtocol,
    apply: bool = False,
    on_trial: OnTrial | None = None,
) -> TuneReport:
    """Search, record the run, and with `apply` store the chosen settings with it."""
    from dataclasses import replace

    from bookrec.models.tune import check_arguments, tune

    check_arguments(strategies, trials, timeout, protocol)
    # One skip-gram worker: with more, gensim's threads race and a seed does not repeat.
    settings = settings.with_overrides("gnn", workers=1)
    parameters = {
        "strategies": list(strategies), "trials": trials, "timeout": timeout,
        "split": protocol.split, "test_fraction": protocol.test_fraction, "k": protocol.k,
        "seed": protocol.seed, "apply": apply,
    }  # fmt: skip
    with training_lock(repo, MODEL, wait=False):
        with phases.phase("load"):
            interactions = repo.load_interactions()
            books = repo.book_texts()
        if len(interactions) == 0:
            raise NoInteractionsError()
        with recorded_run(repo, MODEL, parameters, phases) as run_id:
            report = tune(
                interactions, books, settings, strategies=strategies, trials=trials,
                timeout=timeout, protocol=protocol, phases=phases, on_trial=on_trial,
            )  # fmt: skip
            report = replace(report, run_id=run_id, applied=apply)
            if apply:
                repo.store_tuned_settings(run_id, report.settings, replacing=_keys(report))
            repo.finish_run(
                run_id, "succeeded", n_interactions=len(interactions),
                max_interaction_id=interactions.max_interaction_id, phases=phases.seconds,
                metrics=_run_metrics(report),
            )  # fmt: skip
    return report


def reset_tuned(repo: Repository) -> TunedReset:
    """Remove every stored tuned setting."""
    runs = tuple(sorted({run for _, run in repo.tuned_settings().values()}))
    return TunedReset(removed=repo.reset_tuned_settings(), runs=runs)


def _keys(report: TuneReport) -> list[str]:
    """Every key the tuned strategies search: a stored value of one of them is replaced."""
    from bookrec.models.tune import search_space

    return [
        key
        for result in report.results
        for key in search_space(result.strategy, Settings.defaults())
    ]


def _run_metrics(report: TuneReport) -> dict:
    """What training_runs keeps of a tune: per strategy, nDCG@k before and after."""
    return {
        "metric": f"{report.metric}@{report.k}",
        "applied": report.applied,
        "settings": report.settings,
        "strategies": {
            r.strategy: {
                "validation": {w: round(m[report.metric], 4) for w, m in r.validation.items()},
                "test": {w: round(m[report.metric], 4) for w, m in r.test.items()},
                "trials": r.trials_run,
            }
            for r in report.results
        },
    }


class TrialProgress:
    """A progress bar per strategy on the display: trials done of its budget, best so far."""

    def __init__(self, display, then: OnTrial | None = None) -> None:
        self.display, self.then = display, then
        self.tasks: dict[str, object] = {}

    def __call__(self, strategy: str, trial, best: float, budget: int) -> None:
        if self.display is not None:
            if strategy not in self.tasks:
                for other in self.tasks.values():
                    self.display.stop(other)
                self.tasks[strategy] = self.display.start(f"tune {strategy}", budget)
            task = self.tasks[strategy]
            self.display.update(task, trial.number + 1, budget)
            if hasattr(self.display, "describe"):
                self.display.describe(task, f"tune {strategy} best nDCG {best:.4f}")
        if self.then is not None:
            self.then(strategy, trial, best, budget)

    def close(self) -> None:
        for task in self.tasks.values():
            self.display.stop(task)
