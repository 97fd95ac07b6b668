"""Health of the recommender's data: what is there, what is ready, what is stale."""

from __future__ import annotations

from typing import Any

from bookrec.domain import VECTOR_FAMILIES
from bookrec.settings import Settings
from bookrec.storage.base import Repository, TrainingRun
from bookrec.storage.snapshots import EVENT_COUNTS_SNAPSHOT, snapshot_name

STRATEGY_NEEDS = {
    "popular": "interactions",
    "cf": "cf vectors (bookrec train cf)",
    "gnn": "gnn vectors (bookrec train gnn)",
    "content": "content vectors (bookrec embed)",
}


def collect_status(repo: Repository, settings: Settings) -> dict[str, Any]:
    version = repo.schema_version()
    latest = repo.latest_schema_version()
    report: dict[str, Any] = {
        "database": {
            "backend": repo.backend,
            "url": repo.url.masked,
            "reachable": True,
            "schema_version": version,
            "latest_schema_version": latest,
        },
        "warnings": [],
    }
    if version is None:
        report["warnings"].append("the database has no bookrec schema: run bookrec db init")
        report["ready"] = False
        report["strategies"] = dict.fromkeys([*STRATEGY_NEEDS, "hybrid"], False)
        return report
    if version < latest:
        report["warnings"].append(
            f"schema version {version} is older than {latest}: run bookrec db upgrade"
        )
        report["ready"] = False
        return report

    counts = repo.counts()
    report["counts"] = counts
    families = {name: _family(repo, name, counts) for name in VECTOR_FAMILIES}
    snapshots = repo.snapshot_names()
    for name, family in families.items():
        family["snapshot"] = snapshot_name(name) in snapshots
    report["vectors"] = families
    report["event_counts_snapshot"] = EVENT_COUNTS_SNAPSHOT in snapshots
    report["strategies"] = _strategies(counts, families)
    report["warnings"].extend(_warnings(counts, families, settings))
    report["ready"] = all(report["strategies"].values()) and not report["warnings"]
    return report


def _run_summary(run: TrainingRun | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "id": run.id,
        "status": run.status,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "parameters": run.parameters,
        "error": run.error,
    }


def _family(repo: Repository, family: str, counts: dict[str, Any]) -> dict[str, Any]:
    users_column = VECTOR_FAMILIES[family][1]
    sides = {"books": repo.vector_stats(family, "books")}
    if users_column:
        sides["users"] = repo.vector_stats(family, "users")
    run = repo.latest_run(family)
    last_attempt = repo.latest_run(family, status=None)
    since = None
    if run is not None and run.max_interaction_id is not None:
        since = repo.interactions_after(run.max_interaction_id)
    return {
        "sides": {
            side: {
                "column": stats.column,
                "rows": stats.rows,
                "with_vector": stats.with_vector,
                "dimensions": sorted(stats.dimensions),
            }
            for side, stats in sides.items()
        },
        "run": _run_summary(run),
        "last_attempt": _run_summary(last_attempt),
        "interactions_since_run": since,
    }


def _has_vectors(family: dict[str, Any]) -> bool:
    return all(side["with_vector"] > 0 for side in family["sides"].values())


def _strategies(counts: dict[str, Any], families: dict[str, Any]) -> dict[str, bool]:
    interactions = counts["interactions"] > 0
    ready = {
        "popular": interactions,
        "cf": _has_vectors(families["cf"]),
        "gnn": _has_vectors(families["gnn"]) and interactions,
        "content": _has_vectors(families["content"]),
    }
    ready["hybrid"] = ready["popular"] and any(ready[s] for s in ("cf", "gnn", "content"))
    return ready


def _warnings(counts: dict[str, Any], families: dict[str, Any], settings: Settings) -> list[str]:
    warnings = []
    if counts["books"] == 0:
        warnings.append("no books yet: run bookrec ingest books FILE")
    if counts["interactions"] == 0:
        warnings.append("no interactions yet: run bookrec ingest interactions FILE")
    max_age = settings.status.max_vector_age_hours * 3600
    last_interaction = counts.get("last_interaction_at")
    commands = {"cf": "bookrec train cf", "gnn": "bookrec train gnn", "content": "bookrec embed"}
    for name, family in families.items():
        for side, stats in family["sides"].items():
            if len(stats["dimensions"]) > 1:
                warnings.append(
                    f"{name} vectors of {side} mix dimensions {stats['dimensions']}:"
                    f" run {commands[name]}"
                )
        dims = {d for stats in family["sides"].values() for d in stats["dimensions"]}
        if len(family["sides"]) > 1 and len(dims) > 1:
            warnings.append(f"{name} vectors of users and books differ in dimension {sorted(dims)}")
        run, attempt = family["run"], family["last_attempt"]
        if attempt and attempt["status"] == "failed":
            warnings.append(
                f"the last {name} run ({attempt['id']}) failed: {attempt['error'] or 'unknown'}"
            )
        if run and last_interaction and name != "content":
            age = last_interaction - run["started_at"]
            if age > max_age:
                warnings.append(
                    f"{name} vectors are {age / 3600:.0f} h older than the newest interaction"
                    f" (limit {max_age / 3600:.0f} h): run {commands[name]}"
                )
    return warnings
