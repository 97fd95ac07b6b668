"""What every bookrec call returns: frozen dataclasses, with `to_dict()` giving the `--json`
output of the command that prints them."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

METRICS: tuple[str, ...] = ("precision", "recall", "ndcg", "map", "hit_rate", "coverage")


@dataclass(frozen=True)
class MigrationResult:
    """`db init` / `db upgrade`: the schema version before and after, and what was applied."""

    database: str
    schema_version_before: int | None
    schema_version: int | None
    applied: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "applied": list(self.applied)}


@dataclass(frozen=True)
class EmbedResult:
    """`embed`: the books embedded by one content run (run_id None: nothing needed it)."""

    model: str
    mode: str  # "full" or "only-missing"
    books_considered: int
    without_text: int
    run_id: int | None
    embedded: int
    dim: int | None
    books_per_second: int | None
    phases: dict[str, float]
    refit_reason: str | None
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.run_id is None:
            del data["dim"], data["books_per_second"]
        return data


@dataclass(frozen=True)
class _FileLoad:
    """What every ingest reports: the file, its rows read and rejected, the seconds taken."""

    file: str
    rows_read: int
    rejected: int
    seconds: float

    def details(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        common = {name: getattr(self, name) for name in ("file", "rows_read", "rejected")}
        reasons = list(getattr(self, "reject_reasons", ()))
        return {
            **common, "seconds": self.seconds, "details": self.details(),
            "reject_reasons": reasons,
        }  # fmt: skip


@dataclass(frozen=True)
class BookIngestResult(_FileLoad):
    """`ingest books`: books added / updated / unchanged, and the content run that embedded
    the new and changed ones."""

    inserted: int
    updated: int
    unchanged: int
    changed_book_ids: tuple[int, ...] = field(repr=False)
    embeddings: EmbedResult | None = None
    reject_reasons: tuple[str, ...] = ()  # the first few rejected rows, described

    def details(self) -> dict[str, Any]:
        return {"inserted": self.inserted, "updated": self.updated, "unchanged": self.unchanged}

    def to_dict(self) -> dict[str, Any]:
        embeddings = self.embeddings.to_dict() if self.embeddings else None
        return {**super().to_dict(), "embeddings": embeddings}


@dataclass(frozen=True)
class InteractionIngestResult(_FileLoad):
    """`ingest interactions`: interactions added, duplicates skipped, users created."""

    inserted: int
    duplicates: int
    new_users: int
    reject_reasons: tuple[str, ...] = ()  # the first few rejected rows, described

    def details(self) -> dict[str, Any]:
        return {
            "inserted": self.inserted,
            "duplicates": self.duplicates,
            "new_users": self.new_users,
        }


@dataclass(frozen=True)
class GateResult:
    """The quality gate of a training run: nDCG@k on held-out pairs of the candidate, of
    popularity and of the published vectors (None when there are none), and the verdict.
    `skipped` says why nothing was measured (too few users); `forced`: published although
    rejected."""

    model: str
    k: int
    users: int
    candidate: float | None
    popular: float | None
    published: float | None
    tolerance: float
    passed: bool
    reason: str | None = None
    forced: bool = False
    skipped: str | None = None
    hybrid_weights: dict[str, float] | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrainCfResult:
    """`train cf`: the run, what it trained on, and its timings."""

    run_id: int
    users: int
    books: int
    interactions: int
    pairs: int
    factors: int
    regularization: float
    iterations: int
    phases: dict[str, float]
    vectors_per_second: int
    seconds: float
    engine: str = "builtin"
    engine_stats: dict[str, Any] = field(default_factory=dict)  # Spark: master, mllib, seconds
    model: str = "cf"
    gate: GateResult | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        head = {"run_id": data.pop("run_id"), "model": data.pop("model")}
        head["engine"] = data.pop("engine")
        return {**head, **data.pop("engine_stats"), **data}


@dataclass(frozen=True)
class TrainGnnResult:
    """`train gnn`: the run, the graph it trained on, the engine's figures, its timings."""

    run_id: int
    engine: str
    users: int
    books: int
    interactions: int
    edges: int
    dim: int
    engine_stats: dict[str, Any]
    phases: dict[str, float]
    seconds: float
    model: str = "gnn"
    gate: GateResult | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "model": self.model,
            "engine": self.engine,
            "users": self.users,
            "books": self.books,
            "interactions": self.interactions,
            "edges": self.edges,
            "dim": self.dim,
            **self.engine_stats,
            "phases": self.phases,
            "seconds": self.seconds,
            "gate": self.gate.to_dict() if self.gate else None,
        }


@dataclass(frozen=True)
class FoldInResult:
    """`train cf --fold-in` / `train gnn --fold-in`: the fold-in's run, the full run it folded
    into, the interactions it looked at (ids above `watermark` up to `max_interaction_id`), and
    the rows it wrote: `users` / `books` vectors solved (gnn: books only), `users_cleared` (a
    user whose weighted pairs fell below the run's minimum loses the vector)."""

    run_id: int
    model: str  # "cf-fold-in" or "gnn-fold-in"
    base_run_id: int
    watermark: int
    max_interaction_id: int
    changed_users: int
    users: int
    users_cleared: int
    new_books: int
    books: int
    interactions: int
    phases: dict[str, float]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Recommendation:
    """One ranked book, and the strategies that scored it."""

    rank: int
    book: str
    title: str
    authors: str | None
    score: float
    strategies: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "strategies": list(self.strategies)}


@dataclass(frozen=True)
class Recommendations:
    """`recommend USER`: what the serving API's /recommend would answer."""

    user: str
    strategy: str
    strategies_used: tuple[str, ...]
    interactions: int
    excluded_seen: int
    recommendations: tuple[Recommendation, ...]
    k: int = 10  # how many were asked for: fewer come back when fewer books can be ranked
    rankable: int = 0  # how many books the strategy could rank for this user

    def to_dict(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "strategy": self.strategy,
            "strategies_used": list(self.strategies_used),
            "interactions": self.interactions,
            "excluded_seen": self.excluded_seen,
            "k": self.k,
            "rankable": self.rankable,
            "recommendations": [r.to_dict() for r in self.recommendations],
        }


@dataclass(frozen=True)
class VectorExport:
    """`export vectors`: the file written and what it holds."""

    file: str
    format: str  # parquet, npy (an .npz) or jsonl
    family: str
    side: str  # books or users
    rows: int
    dim: int
    run_id: int | None  # the latest successful run of the family
    read_from: str  # "snapshot" (binary copy) or "json" (the columns)
    bytes: int
    vectors_per_second: int | None
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SimilarBooks:
    """`similar BOOK`: the nearest books in one vector space."""

    book: str
    title: str
    space: str
    similar: tuple[Recommendation, ...]
    k: int = 10  # how many were asked for
    rankable: int = 0  # how many other books have a vector in the space

    def to_dict(self) -> dict[str, Any]:
        return {
            "book": self.book,
            "title": self.title,
            "space": self.space,
            "k": self.k,
            "rankable": self.rankable,
            "similar": [r.to_dict() for r in self.similar],
        }


@dataclass(frozen=True)
class SideStatus:
    """Vectors of one family in one table (books or users)."""

    column: str
    rows: int
    with_vector: int
    dimensions: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "dimensions": list(self.dimensions)}


@dataclass(frozen=True)
class RunSummary:
    id: int
    status: str
    started_at: float
    finished_at: float | None
    parameters: dict[str, Any]
    error: str | None


@dataclass(frozen=True)
class FoldInBacklog:
    """What waits for `train cf --fold-in` / `train gnn --fold-in`: the users and the books
    without a vector that have interactions after the last full run or fold-in into it
    (interaction ids above `watermark`), and when the oldest of those interactions arrived."""

    watermark: int
    users: int
    books: int
    interactions: int
    oldest_at: float | None


@dataclass(frozen=True)
class FamilyStatus:
    """One vector family: its columns, the run that wrote them, the last attempt, staleness."""

    sides: dict[str, SideStatus]
    run: RunSummary | None
    last_attempt: RunSummary | None
    interactions_since_run: int | None
    snapshot: bool
    # When the oldest of the interactions_since_run arrived (epoch seconds); None if none.
    oldest_since_run_at: float | None = None
    fold_in: FoldInBacklog | None = None  # cf and gnn once a full run exists

    @property
    def has_any(self) -> bool:
        return any(side.with_vector for side in self.sides.values())

    @property
    def complete(self) -> bool:
        return all(side.with_vector > 0 for side in self.sides.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "sides": {name: side.to_dict() for name, side in self.sides.items()},
            "run": asdict(self.run) if self.run else None,
            "last_attempt": asdict(self.last_attempt) if self.last_attempt else None,
            "interactions_since_run": self.interactions_since_run,
            "oldest_since_run_at": self.oldest_since_run_at,
            "fold_in": asdict(self.fold_in) if self.fold_in else None,
            "snapshot": self.snapshot,
        }


@dataclass(frozen=True)
class DatabaseStatus:
    backend: str
    url: str
    reachable: bool
    schema_version: int | None
    latest_schema_version: int


@dataclass(frozen=True)
class StatusReport:
    """`status`: what is in the database, what is ready, what is stale.

    Every warning is a reason the database is not ready: `ready` is true exactly when there is
    none, for the text output, `--json` and `--check` alike. Without a current schema only
    `database`, `warnings`, `ready` (and `strategies` when there is no schema at all) are
    filled in."""

    database: DatabaseStatus
    warnings: tuple[str, ...]
    counts: dict[str, Any] | None = None
    vectors: dict[str, FamilyStatus] | None = None
    event_counts_snapshot: bool | None = None
    strategies: dict[str, bool] | None = None
    # model -> its last runs, newest first: run, status, and the gate's held-out nDCG@k
    # (candidate, popular, published) when it measured.
    gate_trend: dict[str, list[dict[str, Any]]] | None = None

    @property
    def ready(self) -> bool:
        return not self.warnings

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"database": asdict(self.database), "warnings": list(self.warnings)}
        if self.counts is None:
            data["ready"] = self.ready
            if self.strategies is not None:
                data["strategies"] = self.strategies
            return data
        assert self.vectors is not None
        data["counts"] = self.counts
        data["vectors"] = {name: family.to_dict() for name, family in self.vectors.items()}
        data["event_counts_snapshot"] = self.event_counts_snapshot
        data["strategies"] = self.strategies
        data["gate_trend"] = self.gate_trend or {}
        data["ready"] = self.ready
        return data


@dataclass(frozen=True)
class StrategyResult:
    """Metrics of one strategy; users_served of `users` got a list (the rest count as misses)."""

    strategy: str
    metrics: dict[str, float]
    users: int
    users_served: int
    train_seconds: float
    score_seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            **{name: _rounded(self.metrics[name]) for name in METRICS},
            "users": self.users,
            "users_served": self.users_served,
            "train_seconds": round(self.train_seconds, 3),
            "score_seconds": round(self.score_seconds, 3),
        }


@dataclass(frozen=True)
class EvaluationReport:
    k: int
    protocol: dict[str, Any]
    results: tuple[StrategyResult, ...]
    seconds: float = 0.0

    TABLE_COLUMNS: tuple[str, ...] = field(
        default=(
            "strategy",
            *METRICS,
            "users",
            "users_served",
            "train_seconds",
            "score_seconds",
        ),
        init=False,
        repr=False,
    )

    def result(self, strategy: str) -> StrategyResult:
        return next(r for r in self.results if r.strategy == strategy)

    def rows(self) -> list[dict[str, Any]]:
        """One dict per strategy with the TABLE_COLUMNS keys (metrics rounded to 4 places)."""
        return [r.to_dict() for r in self.results]

    def to_dict(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "protocol": self.protocol,
            "results": self.rows(),
            "seconds": round(self.seconds, 3),
        }


def _rounded(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), 4)


@dataclass(frozen=True)
class TuneTrial:
    """One trial of a search: its parameters ('section.field' -> value), its validation
    score (None when "skipped": its estimated cost did not fit in what was left of the budget,
    or "stopped": still fitting when the time was up)."""

    number: int
    parameters: dict[str, Any]
    value: float | None
    seconds: float
    state: str  # complete, skipped or stopped

    def to_dict(self) -> dict[str, Any]:
        value = None if self.value is None else round(self.value, 4)
        return {**asdict(self), "value": value}


@dataclass(frozen=True)
class StrategyTuning:
    """One strategy's search: the current ("default") and the chosen ("tuned") parameters and
    the METRICS of each on validation and on the test holdout. The hybrid's validation
    "default" is its current weights over the parts tuned before it (its first trial); its
    test "default" is every setting as it was."""

    strategy: str
    default_parameters: dict[str, Any]
    tuned_parameters: dict[str, Any]
    validation: dict[str, dict[str, float]]  # "default" / "tuned" -> metrics
    test: dict[str, dict[str, float]]
    trials: tuple[TuneTrial, ...]
    seconds: float
    stopped: str  # "trials" (the trial budget was spent) or "timeout"

    @property
    def trials_run(self) -> int:
        return sum(1 for t in self.trials if t.state == "complete")

    def to_dict(self) -> dict[str, Any]:
        def metrics(by: dict[str, dict[str, float]]) -> dict[str, Any]:
            return {which: {m: _rounded(v[m]) for m in METRICS} for which, v in by.items()}

        return {
            "strategy": self.strategy,
            "default_parameters": self.default_parameters,
            "tuned_parameters": self.tuned_parameters,
            "validation": metrics(self.validation),
            "test": metrics(self.test),
            "trials_run": self.trials_run,
            "trials_skipped": len(self.trials) - self.trials_run,
            "stopped": self.stopped,
            "seconds": round(self.seconds, 3),
            "trials": [t.to_dict() for t in self.trials],
        }


@dataclass(frozen=True)
class TuneReport:
    """`tune`: every strategy's search, popularity's figures for reference, the chosen settings
    ('section.field' -> value), the tune run and whether they were applied."""

    k: int
    metric: str
    protocol: dict[str, Any]
    results: tuple[StrategyTuning, ...]
    popular: dict[str, dict[str, float]]
    settings: dict[str, Any]
    seconds: float
    run_id: int | None = None
    applied: bool = False

    def result(self, strategy: str) -> StrategyTuning:
        return next(r for r in self.results if r.strategy == strategy)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "k": self.k,
            "metric": self.metric,
            "protocol": self.protocol,
            "results": [r.to_dict() for r in self.results],
            "popular": {
                which: {m: _rounded(v[m]) for m in METRICS} for which, v in self.popular.items()
            },
            "settings": self.settings,
            "applied": self.applied,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class TunedReset:
    """`tune --reset`: how many stored tuned settings were removed."""

    removed: int
    runs: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"removed": self.removed, "runs": list(self.runs)}


@dataclass(frozen=True)
class ConfigRow:
    """`config`: one effective setting and where it came from."""

    setting: str
    value: Any
    source: str


@dataclass(frozen=True)
class DemoResult:
    """`demo`: every step's result and what the demo shows of the trained models."""

    attribution: str
    synthetic: str
    database: str
    books: int
    content: EmbedResult
    interactions: InteractionIngestResult
    cf: TrainCfResult
    gnn: TrainGnnResult
    status: StatusReport
    recommendations: dict[str, dict[str, Recommendations]]
    similar: dict[str, dict[str, SimilarBooks]]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        similar: dict[str, dict[str, Any]] = {}
        for book, spaces in self.similar.items():
            similar[book] = {"title": next(iter(spaces.values())).title}
            similar[book].update(
                {space: [r.to_dict() for r in s.similar] for space, s in spaces.items()}
            )
        return {
            "attribution": self.attribution,
            "synthetic": self.synthetic,
            "steps": {
                "books": self.books,
                "content": self.content.to_dict(),
                "interactions": self.interactions.to_dict()["details"],
                "cf": self.cf.to_dict(),
                "gnn": self.gnn.to_dict(),
            },
            "status": self.status.to_dict(),
            "recommendations": {
                user: {s: [r.to_dict() for r in rec.recommendations] for s, rec in by.items()}
                for user, by in self.recommendations.items()
            },
            "similar": similar,
            "seconds": self.seconds,
        }


__all__ = [
    "METRICS",
    "BookIngestResult",
    "ConfigRow",
    "DatabaseStatus",
    "DemoResult",
    "EmbedResult",
    "EvaluationReport",
    "FamilyStatus",
    "InteractionIngestResult",
    "MigrationResult",
    "Recommendation",
    "Recommendations",
    "RunSummary",
    "SideStatus",
    "SimilarBooks",
    "StatusReport",
    "StrategyResult",
    "StrategyTuning",
    "TrainCfResult",
    "TrainGnnResult",
    "TuneReport",
    "TuneTrial",
    "TunedReset",
]
