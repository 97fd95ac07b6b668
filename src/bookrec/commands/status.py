"""bookrec status: connection, schema, counts, vector coverage, runs, staleness, warnings."""

from __future__ import annotations

import typer

from bookrec.commands import render
from bookrec.commands.common import load_settings, output, session


def status(
    ctx: typer.Context,
    json_output: bool = typer.Option(False, "--json", help="Machine-readable output."),
    check: bool = typer.Option(
        False, "--check", help="Exit 3 when anything is not ready (for CI and monitoring)."
    ),
) -> None:
    """Report the health of the recommender's data; answers the guide's troubleshooting checks."""
    from bookrec.errors import EXIT_NOT_READY

    with session(ctx, load_settings(ctx), json_output=True) as db:
        report = db.status()
    if json_output:
        output(report, True, "")
    else:
        render.status(report)
    if check and not report.ready:
        raise typer.Exit(EXIT_NOT_READY)
