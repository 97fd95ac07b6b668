"""bookrec status: connection, schema, counts, vector coverage, runs, staleness, warnings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import typer

from bookrec.commands.common import load_settings, repository


def status(
    ctx: typer.Context,
    json_output: bool = typer.Option(False, "--json", help="Machine-readable output."),
    check: bool = typer.Option(
        False, "--check", help="Exit 3 when anything is not ready (for CI and monitoring)."
    ),
) -> None:
    """Report the health of the recommender's data; answers the guide's troubleshooting checks."""
    from bookrec import console
    from bookrec.errors import EXIT_NOT_READY
    from bookrec.services.status import collect_status

    settings = load_settings(ctx)
    with repository(settings, require_schema=False) as repo:
        report = collect_status(repo, settings)
    if json_output:
        console.print_json(report)
    else:
        _render(report)
    if check and not report["ready"]:
        raise typer.Exit(EXIT_NOT_READY)


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M")


def _render(report: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    from bookrec import console

    out = console.stdout
    db = report["database"]
    out.print(
        f"[bold]database[/] {db['backend']} {db['url']}  schema v{db['schema_version'] or '-'}"
        f" (latest v{db['latest_schema_version']})",
        highlight=False,
    )
    counts = report.get("counts")
    if counts:
        events = ", ".join(f"{k} {v:,}" for k, v in counts["interactions_by_event"].items() if v)
        out.print(
            f"[bold]data[/] {counts['books']:,} books, {counts['users']:,} users,"
            f" {counts['interactions']:,} interactions ({events or 'none'})",
            highlight=False,
        )
        if counts["interactions"]:
            out.print(
                f"     interactions from {_when(counts['first_interaction_at'])}"
                f" to {_when(counts['last_interaction_at'])} UTC",
                highlight=False,
            )
    vectors = report.get("vectors")
    if vectors:
        table = Table(
            "vectors", "column", "with vector", "dim", "run", "trained (UTC)", "new since",
            box=None, pad_edge=False, header_style="bold",
        )  # fmt: skip
        for family, info in vectors.items():
            run = info["run"]
            for side, stats in info["sides"].items():
                table.add_row(
                    family,
                    f"{side}.{stats['column']}",
                    f"{stats['with_vector']:,} / {stats['rows']:,}",
                    ",".join(map(str, stats["dimensions"])) or "-",
                    str(run["id"]) if run else "-",
                    _when(run["finished_at"]) if run else "never",
                    "-" if info["interactions_since_run"] is None
                    else f"{info['interactions_since_run']:,}",
                )  # fmt: skip
        out.print(table)
        slow = [f for f, info in vectors.items() if _has_any(info) and not info["snapshot"]]
        if slow:
            out.print(
                f"     recommend and similar read {', '.join(slow)} from the JSON columns (slower)"
                " until the next training stores their snapshot",
                highlight=False,
            )
    strategies = report.get("strategies", {})
    ready = [s for s, ok in strategies.items() if ok]
    missing = [s for s, ok in strategies.items() if not ok]
    out.print(
        f"[bold]ready[/] {', '.join(ready) or 'none'}"
        + (f"   [bold]not ready[/] {', '.join(missing)}" if missing else ""),
        highlight=False,
    )
    for warning in report["warnings"]:
        out.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)


def _has_any(family: dict[str, Any]) -> bool:
    return any(side["with_vector"] for side in family["sides"].values())
