"""tune: a hyper-parameter search of each strategy on the operator's own data (Optuna TPE).

Nested protocol: the test holdout (`split`, `test_fraction`, `seed`: what `evaluate` holds out)
is split off first; trials never see it. Of the rest, one (user, book) pair of each user with at
least 3 books (a seeded hash picks it, and the users when there are many) is the validation
set; a trial fits its strategy on the rest without them and is scored on them (nDCG@k). The
first trial of every strategy is the current settings, so the chosen ones are never worse on
validation. Finally the current and the chosen settings are both fitted on the whole rest and
measured on the untouched test holdout.

Every fit and every score goes through the model layer (`evaluate.measure_strategies`,
`fitting.fit_models`), as `evaluate` and `train` fit. The budget: at most `trials` trials, split
across the strategies, and at most `timeout` seconds, split across them by their cost (gnn's
share is the largest; what one strategy leaves goes to the next). A trial is started only if its
cost, estimated from the first trial's, fits in what is left of its strategy's share.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from bookrec.algorithms.evaluation import Holdout
from bookrec.domain import BookText, InteractionArrays
from bookrec.errors import EmptySplitError, InputError
from bookrec.models.base import Model, UserBatch
from bookrec.models.blend import FALLBACK_WEIGHTS, Blend
from bookrec.progress import Phases
from bookrec.results import METRICS, StrategyTuning, TuneReport, TuneTrial
from bookrec.settings import HybridSettings, Settings

if TYPE_CHECKING:
    import optuna

# Tuned in this order: the hybrid last, over the chosen parts.
TUNABLE: tuple[str, ...] = ("cf", "gnn", "content", "hybrid")
# Shares of the wall-clock budget and of the trials (renormalised over the strategies asked for).
TIME_SHARE = {"cf": 0.25, "gnn": 0.5, "content": 0.05, "hybrid": 0.2}
TRIAL_SHARE = {"cf": 0.3, "gnn": 0.3, "content": 0.1, "hybrid": 0.3}
METRIC = "ndcg"
VALIDATION_MIN_BOOKS = 3
VALIDATION_MAX_USERS = 5_000
# After this many trials in a row too costly for what is left, a strategy stops.
MAX_SKIPPED = 5


@dataclass(frozen=True)
class TuneProtocol:
    split: str = "random"
    test_fraction: float = 0.2
    k: int = 10
    seed: int = 42
    validation_max_users: int = VALIDATION_MAX_USERS


@dataclass(frozen=True, eq=False)
class NestedSplit:
    """`test`: the rest (train) against the test holdout; `validation`: the rest without the
    validation pairs (train) against them."""

    test: Holdout
    validation: Holdout


def nested_split(
    interactions: InteractionArrays, books: Sequence[BookText], protocol: TuneProtocol,
    settings: Settings,
) -> NestedSplit:  # fmt: skip
    from bookrec.algorithms.evaluation import holdout_of_mask, subset
    from bookrec.algorithms.split import describe_split, split_interactions, split_validation

    scheme = settings.weights.scheme()
    test_mask, summary = split_interactions(
        interactions, protocol.split, protocol.test_fraction, protocol.seed
    )
    test = holdout_of_mask(interactions, test_mask, summary, books, weights=scheme)
    rest = subset(interactions, ~test_mask)
    validation_mask = split_validation(
        rest.user_ids, rest.book_ids, protocol.seed, VALIDATION_MIN_BOOKS,
        protocol.validation_max_users,
    )  # fmt: skip
    if not validation_mask.any():
        raise EmptySplitError()
    validation_summary = describe_split(rest.user_ids, rest.book_ids, validation_mask, "validation")
    validation = holdout_of_mask(rest, validation_mask, validation_summary, books, weights=scheme)
    return NestedSplit(test, validation)


# --------------------------------------------------------------------------- search spaces


def search_space(strategy: str, base: Settings) -> dict[str, optuna.distributions.BaseDistribution]:
    """'section.field' -> its distribution, for the strategy's search."""
    from optuna.distributions import FloatDistribution as Float
    from optuna.distributions import IntDistribution as Int

    if strategy == "cf":
        space = {
            "cf.factors": Int(16, 256, log=True),
            "cf.alpha": Float(0.5, 40.0, log=True),
            "cf.iterations": Int(5, 30),
        }
        # An explicit regularization leaves no formula to scale.
        if base.cf.regularization is None:
            space["cf.regularization_scale"] = Float(0.005, 0.5, log=True)
        return space
    if strategy == "gnn":
        return {
            "gnn.dim": Int(32, 256, log=True),
            "gnn.walk_length": Int(10, 80, log=True),
            "gnn.walks_per_node": Int(5, 30, log=True),
            "gnn.p": Float(0.25, 4.0, log=True),
            "gnn.q": Float(0.25, 4.0, log=True),
            "gnn.window": Int(3, 15),
            "gnn.epochs": Int(1, 8),
            "gnn.negative": Int(2, 15),
            "gnn.learning_rate": Float(0.01, 0.3, log=True),
            "gnn.sample": Float(1e-5, 1e-2, log=True),
            "gnn.prior": Float(0.0, 4.0),
        }
    if strategy == "content":
        return {"content.prior": Float(0.0, 4.0)}
    return {f"hybrid.{name}": Float(0.0, 1.0) for name in HybridSettings.model_fields}


def current_values(space: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The settings' values of the space's keys (None where unset, e.g. gnn.sample)."""
    return {key: getattr(getattr(settings, key.split(".")[0]), key.split(".")[1]) for key in space}


def with_values(settings: Settings, values: dict[str, Any]) -> Settings:
    """The settings with 'section.field' values in place."""
    by_section: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        section, _, name = key.partition(".")
        by_section.setdefault(section, {})[name] = value
    for section, given in by_section.items():
        current = getattr(settings, section)
        updated = current.model_validate({**current.model_dump(), **given})
        settings = settings.model_copy(update={section: updated})
    return settings


def _encoded(values: dict[str, Any], space: dict[str, Any], validation: Holdout) -> dict[str, Any]:
    """The current values as points of the space (for the sampler): unset ones as what they
    mean (gnn.sample), clipped into the ranges."""
    from optuna.distributions import IntDistribution

    from bookrec.algorithms.skipgram import default_sample

    encoded = {}
    for key, distribution in space.items():
        value = values[key]
        if value is None and key == "gnn.sample":
            value = default_sample(int(sum(validation.full.shape)))
        elif value is None and key.startswith("hybrid."):  # unset = learnt: near the fallback
            value = FALLBACK_WEIGHTS[key.split(".")[1]]
        value = min(max(value, distribution.low), distribution.high)
        integral = isinstance(distribution, IntDistribution)
        encoded[key] = round(value) if integral else float(value)
    return encoded


def relative_cost(strategy: str, values: dict[str, Any], reference: dict[str, Any]) -> float:
    """A fit's cost relative to the reference parameters' (1 for the hybrid and content, whose
    trials cost the same). ALS ~ iterations · factors; node2vec ~ its walk steps, most of them
    spent in skip-gram, which grows with epochs · window · (negative + 1) · dim."""
    if strategy == "cf":
        return (values["cf.iterations"] * values["cf.factors"]) / (
            reference["cf.iterations"] * reference["cf.factors"]
        )
    if strategy != "gnn":
        return 1.0

    def steps(v: dict[str, Any]) -> float:
        return v["gnn.walks_per_node"] * v["gnn.walk_length"]

    def skipgram(v: dict[str, Any]) -> float:
        return v["gnn.epochs"] * v["gnn.window"] * (v["gnn.negative"] + 1) * v["gnn.dim"]

    ratio = skipgram(values) / skipgram(reference)
    return steps(values) / steps(reference) * (0.2 + 0.8 * ratio)


# --------------------------------------------------------------------------- the search


@dataclass
class _Budget:
    """The wall-clock and trial budget of the whole run, handed out strategy by strategy."""

    started: float
    timeout: float | None
    trials: dict[str, int]
    strategies: tuple[str, ...]
    done: list[str] = field(default_factory=list)
    reserve: Callable[[], float] = lambda: 0.0  # seconds the final test fits will take

    def deadline_of(self, strategy: str) -> float:
        """The time by which the strategy's trials must end."""
        if self.timeout is None:
            return math.inf
        left = [s for s in self.strategies if s not in self.done]
        share = TIME_SHARE[strategy] / sum(TIME_SHARE[s] for s in left)
        remaining = self.started + self.timeout - time.perf_counter() - self.reserve()
        return time.perf_counter() + max(remaining, 0.0) * share


@dataclass
class _Search:
    """What one strategy's search found."""

    strategy: str
    default: dict[str, Any]
    chosen: dict[str, Any]
    trials: list[TuneTrial]
    default_metrics: dict[str, float]
    chosen_metrics: dict[str, float]
    default_models: dict[str, Model]
    chosen_models: dict[str, Model]
    cost_ratio: float
    seconds: float
    stopped: str


OnTrial = Callable[[str, TuneTrial, float, int], None]  # (strategy, trial, best, budget)


class _OverBudget(Exception):
    """A trial still fitting when its strategy's time is up."""


class _Deadline:
    """A progress display that stops a fit (ALS by iteration, node2vec by walk batch and
    epoch) once the deadline has passed: the model layer's progress callbacks are its checks.
    Only the main thread raises (skip-gram also reports from a thread of its own)."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def start(self, name: str, total: float | None) -> object:
        self.update(None, 0, total)
        return None

    def update(self, task: object, done: float, total: float | None) -> None:
        import threading

        if (
            time.perf_counter() > self.deadline
            and threading.current_thread() is threading.main_thread()
        ):
            raise _OverBudget()

    def stop(self, task: object) -> None:
        pass


def tune(
    interactions: InteractionArrays,
    books: Sequence[BookText],
    settings: Settings,
    *,
    strategies: Sequence[str] = TUNABLE,
    trials: int = 40,
    timeout: float | None = None,
    protocol: TuneProtocol = TuneProtocol(),
    phases: Phases | None = None,
    on_trial: OnTrial | None = None,
) -> TuneReport:
    """Search each strategy's settings (TUNABLE order) on validation; measure the current and
    the chosen settings on the test holdout. `settings` are the current (effective) ones; run
    gnn with one worker for seeded runs to repeat."""
    from bookrec.models.evaluate import measure_strategies

    started = time.perf_counter()
    check_arguments(strategies, trials, timeout, protocol)
    strategies = tuple(s for s in TUNABLE if s in strategies)
    phases = phases or Phases()
    with phases.phase("split"):
        nested = nested_split(interactions, books, protocol, settings)
    measured = (*strategies, "popular")
    with phases.phase("test: current"):
        default_test, default_fitted = measure_strategies(
            nested.test, books, settings, measured, protocol.k, Phases(),
            blend=_learnt_blend(nested.test, books, settings, measured, protocol),
        )  # fmt: skip
    fit_seconds = default_fitted.train_seconds
    score_seconds = {r.strategy: r.score_seconds for r in default_test}
    budget = _Budget(started, timeout, _split_trials(trials, strategies), strategies)
    searches: dict[str, _Search] = {}

    def reserve() -> float:
        """What measuring the chosen settings on the test holdout will take: the fits of the
        strategies (at the chosen ones' relative cost) and their scoring."""
        fits = sum(
            seconds * (searches[name].cost_ratio if name in searches else 1.0)
            for name, seconds in fit_seconds.items()
            if name not in searches or searches[name].chosen != searches[name].default
        )
        return fits + sum(score_seconds.values())

    budget.reserve = reserve
    chosen_settings = settings
    for strategy in strategies:
        with phases.phase(f"tune {strategy}"):
            search = _search(strategy, nested.validation, books, chosen_settings, settings,
                             searches, budget, protocol, on_trial)  # fmt: skip
        searches[strategy] = search
        budget.done.append(strategy)
        chosen_settings = with_values(chosen_settings, search.chosen)
    by_name = {r.strategy: r for r in default_test}
    tuned_by_name = dict(by_name)
    changed = [s for s in strategies if searches[s].chosen != searches[s].default]
    if changed and "hybrid" in strategies:
        changed = sorted(set(changed) | {"hybrid"}, key=TUNABLE.index)
    if changed:  # a strategy whose current settings won is not measured again
        unchanged = {
            name: model for name, model in default_fitted.models.items()
            if name in ("cf", "gnn", "content")
            and (name not in searches or searches[name].chosen == searches[name].default)
        }  # fmt: skip
        with phases.phase("test: tuned"):
            tuned_test, _ = measure_strategies(
                nested.test, books, chosen_settings, changed, protocol.k, Phases(), unchanged,
                blend=_learnt_blend(nested.test, books, chosen_settings, changed, protocol),
            )  # fmt: skip
        tuned_by_name |= {r.strategy: r for r in tuned_test}
    results = tuple(
        StrategyTuning(
            strategy=s,
            default_parameters=searches[s].default,
            tuned_parameters=searches[s].chosen,
            validation={
                "default": searches[s].default_metrics,
                "tuned": searches[s].chosen_metrics,
            },
            test={"default": dict(by_name[s].metrics), "tuned": dict(tuned_by_name[s].metrics)},
            trials=tuple(searches[s].trials),
            seconds=searches[s].seconds,
            stopped=searches[s].stopped,
        )
        for s in strategies
    )
    popular_validation = _measure_popular(nested.validation, books, settings, protocol.k)
    return TuneReport(
        k=protocol.k,
        metric=METRIC,
        protocol={
            "split": protocol.split,
            "test_fraction": None if protocol.split == "leave-last" else protocol.test_fraction,
            "seed": protocol.seed,
            "test": nested.test.summary.to_dict() | {"ranked_users": len(nested.test.users)},
            "validation": {
                "pairs": int(nested.validation.relevant.nnz),
                "users": len(nested.validation.users),
                "rule": f"one pair per user with >= {VALIDATION_MIN_BOOKS} books "
                f"(at most {protocol.validation_max_users:,} users), by a seeded hash",
            },
            "trials": trials,
            "timeout": timeout,
        },
        results=results,
        popular={"validation": popular_validation, "test": dict(by_name["popular"].metrics)},
        settings={key: value for s in strategies for key, value in searches[s].chosen.items()},
        seconds=time.perf_counter() - started,
    )


def check_arguments(
    strategies: Sequence[str], trials: int, timeout: float | None, protocol: TuneProtocol
) -> None:
    """InputError naming the first argument of a search that cannot be right."""
    from bookrec.models.evaluate import check_protocol

    unknown = sorted(set(strategies) - set(TUNABLE))
    if unknown or not strategies:
        raise InputError(f"unknown strategies {unknown}; choose from {', '.join(TUNABLE)}")
    check_protocol(strategies, protocol.split, protocol.test_fraction, protocol.k)
    if trials < len(set(strategies)):
        raise InputError(f"trials must be at least one per strategy ({len(set(strategies))})")
    if timeout is not None and timeout <= 0:
        raise InputError(f"timeout must be positive, got {timeout:g}")


def _split_trials(trials: int, strategies: tuple[str, ...]) -> dict[str, int]:
    """At least one trial (the current settings) each; the rest by TRIAL_SHARE."""
    shares = np.array([TRIAL_SHARE[s] for s in strategies])
    counts = np.maximum(1, np.floor(trials * shares / shares.sum())).astype(int)
    for i in np.argsort(-shares):
        if counts.sum() >= trials:
            break
        counts[i] += 1
    return dict(zip(strategies, (int(c) for c in counts), strict=True))


def _measure_popular(held: Holdout, books, settings: Settings, k: int) -> dict[str, float]:
    from bookrec.models.evaluate import measure_strategies

    results, _ = measure_strategies(held, books, settings, ["popular"], k, Phases())
    return dict(results[0].metrics)


def _search(
    strategy: str,
    validation: Holdout,
    books: Sequence[BookText],
    base: Settings,
    current: Settings,
    earlier: dict[str, _Search],
    budget: _Budget,
    protocol: TuneProtocol,
    on_trial: OnTrial | None,
) -> _Search:
    """One strategy's trials: the current settings first, then TPE's suggestions while the
    trial and time budgets last."""
    import optuna

    from bookrec.models.evaluate import measure_strategies

    started = time.perf_counter()
    deadline = budget.deadline_of(strategy)
    space = search_space(strategy, base)
    default = current_values(space, base)
    n_trials = budget.trials[strategy]
    if strategy == "hybrid":
        evaluate = hybrid_weights_search(validation, books, base, earlier, protocol.k)
    else:

        def evaluate(
            values: dict[str, Any], until: float = math.inf
        ) -> tuple[dict[str, float], dict[str, Model]]:
            results, fitted = measure_strategies(
                validation, books, with_values(base, values), [strategy], protocol.k,
                Phases(_Deadline(until)),
            )  # fmt: skip
            return dict(results[0].metrics), fitted.models

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=protocol.seed, n_startup_trials=5, multivariate=True)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    records: list[TuneTrial] = []

    first_started = time.perf_counter()
    default_metrics, default_models = evaluate(default)
    first_seconds = time.perf_counter() - first_started
    study.add_trial(
        optuna.trial.create_trial(
            params=_encoded(default, space, validation), distributions=space,
            value=default_metrics[METRIC],
        )
    )  # fmt: skip
    records.append(
        TuneTrial(0, default, default_metrics[METRIC], round(first_seconds, 3), "complete")
    )
    best = (default_metrics[METRIC], default, default_metrics, default_models, 1.0)
    if on_trial:
        on_trial(strategy, records[-1], best[0], n_trials)
    stopped, skipped = "trials", 0
    misestimate = 1.0  # the slowest actual / estimated cost so far
    while len(records) < n_trials:
        if time.perf_counter() >= deadline:
            stopped = "timeout"
            break
        trial = study.ask(space)
        values = dict(trial.params)
        ratio = relative_cost(strategy, values, default)
        if time.perf_counter() + first_seconds * ratio * misestimate > deadline:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            records.append(TuneTrial(trial.number, values, None, 0.0, "skipped"))
            skipped += 1
            if skipped >= MAX_SKIPPED or time.perf_counter() + first_seconds * 0.25 > deadline:
                stopped = "timeout"
                break
            continue
        skipped = 0
        trial_started = time.perf_counter()
        try:
            metrics, models = evaluate(values, deadline)
        except _OverBudget:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            seconds = time.perf_counter() - trial_started
            records.append(TuneTrial(trial.number, values, None, round(seconds, 3), "stopped"))
            stopped = "timeout"
            break
        seconds = time.perf_counter() - trial_started
        misestimate = max(misestimate, seconds / max(first_seconds * ratio, 1e-9))
        study.tell(trial, metrics[METRIC])
        records.append(
            TuneTrial(trial.number, values, metrics[METRIC], round(seconds, 3), "complete")
        )
        if metrics[METRIC] > best[0]:
            best = (metrics[METRIC], values, metrics, models, ratio)
        if on_trial:
            on_trial(strategy, records[-1], best[0], n_trials)
    _, chosen, chosen_metrics, chosen_models, ratio = best
    return _Search(
        strategy, default, dict(chosen), records, default_metrics, chosen_metrics,
        default_models, chosen_models, ratio, time.perf_counter() - started, stopped,
    )  # fmt: skip


def _learnt_blend(
    held: Holdout,
    books: Sequence[BookText],
    settings: Settings,
    strategies: Sequence[str],
    protocol: TuneProtocol,
) -> Blend | None:
    """The weights `evaluate` would learn for the hybrid's unset weights on this holdout's
    training part (None: no hybrid, or every weight set)."""
    from bookrec.models.evaluate import learn_blend
    from bookrec.models.fitting import needed_strategies

    if "hybrid" not in strategies or settings.hybrid.all_explicit():
        return None
    needed = needed_strategies(strategies, settings.hybrid)
    return learn_blend(
        held.full, books, settings, needed, protocol.k, protocol.test_fraction, protocol.seed,
        Phases(),
    )  # fmt: skip


def hybrid_weights_search(
    validation: Holdout,
    books: Sequence[BookText],
    base: Settings,
    earlier: dict[str, _Search],
    k: int,
) -> Callable[[dict[str, Any]], tuple[dict[str, float], dict[str, Model]]]:
    """How a trial of hybrid weights is scored: the hybrid of the parts chosen for cf, gnn and
    content (their best trial's models, or fitted once with the current settings when not
    tuned in this run) with the trial's weights.

    This is the one place the hybrid's weights are chosen: learnt weights may replace it."""
    from bookrec.models.blend import fit_blend
    from bookrec.models.evaluate import measure_model
    from bookrec.models.fitting import TrainingSet, fit_models, hybrid_of

    parts: dict[str, Model] = {}
    for search in earlier.values():
        parts.update(search.chosen_models)
    missing = [name for name in ("cf", "gnn", "content") if name not in parts]
    if missing or "popular" not in parts:
        fitted = fit_models(TrainingSet(validation.full, books), base, missing, Phases())
        parts = {**fitted.models, **parts}
    parts = {name: model for name, model in parts.items() if name != "hybrid"}
    # Unset weights (the default trial's, unless set) are learnt from these parts' scores.
    learnt = fit_blend(
        parts, UserBatch(validation.users, validation.user_weights), validation.relevant,
        validation.exclude, k,
    )  # fmt: skip

    def evaluate(
        values: dict[str, Any], until: float = math.inf
    ) -> tuple[dict[str, float], dict[str, Model]]:
        weights = HybridSettings(**{key.split(".")[1]: value for key, value in values.items()})
        model = hybrid_of(parts, weights, learnt)
        return measure_model(model, validation, k), {"hybrid": model}

    return evaluate


__all__ = ["METRICS", "TUNABLE", "NestedSplit", "TuneProtocol", "nested_split", "tune"]
