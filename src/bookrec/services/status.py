"""Health of the recommender's data: what is there, what is ready, what is stale."""

from __future__ import annotations

import time
from typing import Any

from bookrec.domain import VECTOR_FAMILIES
from bookrec.models import VECTOR_STRATEGIES as COMMANDS
from bookrec.results import (
    DatabaseStatus,
    FamilyStatus,
    FoldInBacklog,
    RunSummary,
    SideStatus,
    StatusReport,
)
from bookrec.settings import Settings
from bookrec.storage.base import Repository, TrainingRun
from bookrec.storage.snapshots import EVENT_COUNTS_SNAPSHOT, snapshot_name

STRATEGY_NEEDS = {
    "popular": "interactions",
    "cf": "cf vectors (bookrec train cf)",
    "gnn": "gnn vectors (bookrec train gnn)",
    "content": "content vectors (bookrec embed)",
}


def collect_status(repo: Repository, settings: Settings, now: float | None = None) -> StatusReport:
    """The report; `now` (epoch seconds, default the wall clock) is what ages are measured
    against."""
    now = time.time() if now is None else now
    version = repo.schema_version()
    latest = repo.latest_schema_version()
    database = DatabaseStatus(repo.backend, repo.url.masked, True, version, latest)
    if version is None:
        return StatusReport(
            database,
            ("the database has no bookrec schema: run bookrec db init",),
            strategies=dict.fromkeys([*STRATEGY_NEEDS, "hybrid"], False),
        )
    if version < latest:
        warning = f"schema version {version} is older than {latest}: run bookrec db upgrade"
        return StatusReport(database, (warning,))

    counts = repo.counts()
    snapshots = repo.snapshot_names()
    families = {
        name: _family(repo, name, snapshot_name(name) in snapshots, counts)
        for name in VECTOR_FAMILIES
    }
    strategies = _strategies(counts, families)
    trend = gate_trend(repo)
    warnings = [
        *_data_warnings(counts, settings, now),
        *_strategy_warnings(strategies),
        *_vector_warnings(families, settings, now),
        *_gate_warnings(trend),
    ]
    return StatusReport(
        database,
        tuple(warnings),
        counts=counts,
        vectors=families,
        event_counts_snapshot=EVENT_COUNTS_SNAPSHOT in snapshots,
        strategies=strategies,
        gate_trend=trend,
    )


TREND_RUNS = 5


def gate_trend(repo: Repository) -> dict[str, list[dict[str, Any]]]:
    """The last runs of cf and gnn, newest first, with their gate figures."""
    trend: dict[str, list[dict[str, Any]]] = {}
    for model in ("cf", "gnn"):
        rows = []
        for run in repo.runs(model, limit=TREND_RUNS):
            gate = (run.metrics or {}).get("gate") or {}
            rows.append(
                {
                    "run": run.id,
                    "status": run.status,
                    **{key: gate.get(key) for key in ("candidate", "popular", "published")},
                }
            )
        if rows:
            trend[model] = rows
    return trend


def _gate_warnings(trend: dict[str, list[dict[str, Any]]]) -> list[str]:
    """A model whose last finished run the gate rejected: its vectors are older than asked."""
    warnings = []
    for model, rows in trend.items():
        finished = [row for row in rows if row["status"] not in ("running", "died")]
        if finished and finished[0]["status"] == "rejected":
            row = finished[0]
            warnings.append(
                f"{model} run {row['run']} was rejected by the quality gate (nDCG"
                f" {row['candidate']:.4f} against popular {row['popular']:.4f}, published"
                f" {_figure(row['published'])}): the published {model} vectors are older;"
                f" see bookrec status --json, retrain, or train {model} --force"
            )
    return warnings


def _figure(value: float | None) -> str:
    return "none" if value is None else f"{value:.4f}"


def _run_summary(run: TrainingRun | None) -> RunSummary | None:
    if run is None:
        return None
    return RunSummary(
        run.id, run.status, run.started_at, run.finished_at, run.parameters, run.error
    )


def _family(repo: Repository, family: str, snapshot: bool, counts: dict[str, Any]) -> FamilyStatus:
    sides = {"books": repo.vector_stats(family, "books", counts["books"])}
    if VECTOR_FAMILIES[family][1]:
        sides["users"] = repo.vector_stats(family, "users", counts["users"])
    run = repo.latest_run(family)
    since = oldest = None
    if run is not None and run.max_interaction_id is not None:
        since, oldest = repo.interactions_after(run.max_interaction_id)
    return FamilyStatus(
        sides={
            side: SideStatus(s.column, s.rows, s.with_vector, tuple(sorted(s.dimensions)))
            for side, s in sides.items()
        },
        run=_run_summary(run),
        last_attempt=_run_summary(repo.latest_run(family, status=None)),
        interactions_since_run=since,
        snapshot=snapshot,
        oldest_since_run_at=oldest,
        fold_in=_fold_in_backlog(repo, family) if family in FOLD_IN_FAMILIES else None,
    )


FOLD_IN_FAMILIES = ("cf", "gnn")


def _fold_in_backlog(repo: Repository, family: str) -> FoldInBacklog | None:
    from bookrec.errors import NoBaseRunError
    from bookrec.services.fold_in import base_and_watermark

    try:
        _, watermark, _ = base_and_watermark(repo, family)
    except NoBaseRunError:
        return None
    changes = repo.changes_since(watermark)
    with_vector = repo.vectors_of(family, "books", changes.book_ids)[0]
    return FoldInBacklog(
        watermark, len(changes.user_ids), len(changes.book_ids) - len(with_vector),
        changes.interactions, changes.first_arrival_at,
    )  # fmt: skip


def _strategies(counts: dict[str, Any], families: dict[str, FamilyStatus]) -> dict[str, bool]:
    interactions = counts["interactions"] > 0
    ready = {
        "popular": interactions,
        "cf": families["cf"].complete,
        "gnn": families["gnn"].complete and interactions,
        "content": families["content"].complete,
    }
    ready["hybrid"] = ready["popular"] and any(ready[s] for s in ("cf", "gnn", "content"))
    return ready


def _data_warnings(counts: dict[str, Any], settings: Settings, now: float) -> list[str]:
    warnings = []
    if counts["books"] == 0:
        warnings.append("no books yet: run bookrec ingest books FILE")
    if counts["interactions"] == 0:
        warnings.append("no interactions yet: run bookrec ingest interactions FILE")
    limit = settings.status.max_data_age_hours
    arrived = counts.get("last_arrival_at")
    if limit is not None and arrived is not None and now - arrived > limit * 3600:
        warnings.append(
            f"no interaction has arrived for {_hours(now - arrived)}"
            f" (limit {_hours(limit * 3600)}): is the ingest pipeline running?"
        )
    return warnings


def _strategy_warnings(strategies: dict[str, bool]) -> list[str]:
    """One warning per vector strategy that cannot answer. popular and hybrid need nothing
    else: no interactions is a warning of its own, and hybrid answers with any of the rest."""
    return [
        f"{name} cannot answer yet: it needs {STRATEGY_NEEDS[name]}"
        for name in ("cf", "gnn", "content")
        if not strategies[name]
    ]


def _vector_warnings(
    families: dict[str, FamilyStatus], settings: Settings, now: float
) -> list[str]:
    warnings = []
    limit = settings.status.max_vector_age_hours * 3600
    for name, family in families.items():
        for side, stats in family.sides.items():
            if len(stats.dimensions) > 1:
                warnings.append(
                    f"{name} vectors of {side} mix dimensions {list(stats.dimensions)}:"
                    f" run {COMMANDS[name]}"
                )
        dims = {d for stats in family.sides.values() for d in stats.dimensions}
        if len(family.sides) > 1 and len(dims) > 1:
            warnings.append(f"{name} vectors of users and books differ in dimension {sorted(dims)}")
        attempt = family.last_attempt
        if attempt and attempt.status == "failed":
            warnings.append(
                f"the last {name} run ({attempt.id}) failed: {attempt.error or 'unknown'}"
            )
        fold_in_limit = settings.status.max_fold_in_age_hours
        backlog = family.fold_in
        if (
            fold_in_limit is not None
            and backlog is not None
            and backlog.oldest_at is not None
            and now - backlog.oldest_at > fold_in_limit * 3600
        ):
            waiting = f"{backlog.users:,} users and " if name == "cf" else ""
            warnings.append(
                f"{waiting}{backlog.books:,} new books wait for a {name}"
                f" fold-in, the oldest interaction for {_hours(now - backlog.oldest_at)}"
                f" (limit {_hours(fold_in_limit * 3600)}): run bookrec train {name} --fold-in"
            )
        oldest = family.oldest_since_run_at
        if name != "content" and oldest is not None and now - oldest > limit:
            warnings.append(
                f"{name} vectors miss {family.interactions_since_run:,} interactions, the oldest"
                f" arrived {_hours(now - oldest)} ago (limit {_hours(limit)}):"
                f" run {COMMANDS[name]}"
            )
    return warnings


def _hours(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours:.3g} h" if hours < 10 else f"{hours:,.0f} h"
