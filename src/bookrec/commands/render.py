"""How results look on a terminal: the text output of every command, in one place."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from bookrec.results import (
    BookIngestResult,
    DemoResult,
    EmbedResult,
    EvaluationReport,
    FamilyStatus,
    FoldInResult,
    InteractionIngestResult,
    MigrationResult,
    Recommendation,
    StatusReport,
    TrainCfResult,
    TrainGnnResult,
    TuneReport,
)


def migration(result: MigrationResult) -> str:
    if result.applied:
        return (
            f"{result.database}: schema at version {result.schema_version}"
            f" (applied {', '.join(result.applied)})"
        )
    return f"{result.database}: schema already at version {result.schema_version}, nothing to do"


def book_ingest(result: BookIngestResult, file_name: str) -> str:
    text = (
        f"{file_name}: {result.inserted:,} books added, {result.updated:,} updated,"
        f" {result.unchanged:,} unchanged"
        + (f", {result.rejected:,} rejected" if result.rejected else "")
        + f" in {result.seconds:.1f}s"
    )
    if result.embeddings is not None:
        text += "\n" + embedding(result.embeddings)
    return text


def interaction_ingest(result: InteractionIngestResult, file_name: str) -> str:
    rate = result.rows_read / result.seconds if result.seconds else 0
    return (
        f"{file_name}: {result.inserted:,} interactions added,"
        f" {result.duplicates:,} already there, {result.new_users:,} new users"
        + (f", {result.rejected:,} rejected" if result.rejected else "")
        + f" in {result.seconds:.1f}s ({rate:,.0f} rows/s)"
    )


def embedding(result: EmbedResult) -> str:
    if result.run_id is None:
        return f"content: every book with text already has a vector ({result.model})"
    text = (
        f"content run {result.run_id}: {result.embedded:,} books embedded"
        f" ({result.model}, {result.dim}-d, {result.mode})"
        f", {result.without_text:,} without usable text (NULL)"
        f" in {result.seconds:.1f}s ({result.books_per_second:,} books/s)"
    )
    if result.refit_reason:
        text += f"; full refit: {result.refit_reason}"
    return text


def training(result: TrainCfResult | TrainGnnResult) -> str:
    if isinstance(result, TrainCfResult):
        vectors = f"{result.users:,} user and {result.books:,} book vectors ({result.factors}-d)"
    else:
        vectors = f"{result.books:,} book vectors ({result.dim}-d, {result.engine} engine)"
    phases = ", ".join(f"{name} {sec:.1f}s" for name, sec in result.phases.items())
    text = (
        f"{result.model} run {result.run_id}: {vectors} from"
        f" {result.interactions:,} interactions in {result.seconds:.1f}s ({phases})"
    )
    gate = result.gate
    if gate is not None:
        text += "\n" + gate_line(gate)
    return text


def gate_line(gate) -> str:
    """One line of the quality gate's figures."""
    if gate.skipped:
        return f"quality gate skipped: {gate.skipped}"
    published = "none" if gate.published is None else f"{gate.published:.4f}"
    verdict = "passed" if gate.passed else ("rejected, published anyway (--force)")
    return (
        f"quality gate {verdict}: nDCG@{gate.k} on {gate.users:,} held-out users: candidate"
        f" {gate.candidate:.4f}, popular {gate.popular:.4f}, published {published}"
    )


def fold_in(result: FoldInResult) -> str:
    what = (
        f"{result.users:,} user and {result.books:,} book vectors"
        if result.model == "cf-fold-in"
        else f"{result.books:,} book vectors"
    )
    cleared = f", {result.users_cleared:,} user vectors cleared" if result.users_cleared else ""
    phases = ", ".join(f"{name} {sec:.1f}s" for name, sec in result.phases.items())
    return (
        f"{result.model} run {result.run_id} into run {result.base_run_id}: {what}{cleared}"
        f" ({result.changed_users:,} changed users, {result.new_books:,} new books, interactions"
        f" {result.watermark + 1:,}–{result.max_interaction_id:,}) in {result.seconds:.1f}s"
        f" ({phases})"
    )


def book_table(title: str, rows: Sequence[Recommendation], with_strategies: bool) -> None:
    from rich.table import Table

    from bookrec import console

    table = Table(title=title, title_justify="left", box=None, pad_edge=False, header_style="bold")
    for column in ("#", "book", "title", "authors", "score"):
        table.add_column(column, overflow="fold")
    if with_strategies:
        table.add_column("strategies")
    for row in rows:
        cells = [str(row.rank), row.book, row.title, row.authors or "", f"{row.score:.3f}"]
        if with_strategies:
            cells.append(",".join(row.strategies))
        table.add_row(*cells)
    console.stdout.print(table, markup=False)


def evaluation(report: EvaluationReport) -> None:
    from rich.table import Table

    from bookrec import console

    k = report.k
    out = console.stdout
    lines = [f"{key}: {value}" for key, value in report.protocol.items() if key != "train_seconds"]
    out.print("protocol\n  " + "\n  ".join(lines), markup=False, highlight=False)
    table = Table(box=None, pad_edge=False, header_style="bold")
    columns = ["strategy", f"P@{k}", f"R@{k}", f"nDCG@{k}", f"MAP@{k}", f"HR@{k}", "coverage"]
    for column in [*columns, "served", "train s", "score s"]:
        table.add_column(column, justify="left" if column == "strategy" else "right")
    for row in report.rows():
        metrics = [row[m] for m in ("precision", "recall", "ndcg", "map", "hit_rate", "coverage")]
        table.add_row(
            row["strategy"],
            *(f"{m:.4f}" if m is not None else "-" for m in metrics),
            f"{row['users_served']}/{row['users']}",
            f"{row['train_seconds']:.1f}",
            f"{row['score_seconds']:.1f}",
        )
    out.print(table)
    out.print(f"evaluated in {report.seconds:.1f}s", highlight=False)


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M")


def fewer_than_asked(shown: int, asked: int, what: str) -> None:
    """A note on stderr when --k asked for more rows than there are."""
    from bookrec import console

    if shown < asked:
        console.info(f"{shown:,} of the {asked:,} asked for: there are no more {what}")


def _trend_cell(row: dict) -> str:
    if row.get("candidate") is None:
        return f"run {row['run']} {row['status']}"
    return f"run {row['run']} {row['status']} {row['candidate']:.3f}"


def status(report: StatusReport) -> None:
    from rich.markup import escape

    from bookrec import console

    out = console.stdout
    db = report.database
    schema = (
        f"schema v{db.schema_version} (latest v{db.latest_schema_version})"
        if db.schema_version is not None
        else "no bookrec schema (bookrec db init creates it)"
    )
    out.print(f"[bold]database[/] {db.backend} {escape(db.url)}  {schema}", highlight=False)
    counts = report.counts
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
    if report.vectors:
        _vector_table(report.vectors)
    for model, rows in (report.gate_trend or {}).items():
        runs = ", ".join(_trend_cell(row) for row in rows)
        out.print(f"[bold]gate[/] {model} (newest first): {runs}", highlight=False)
    strategies = report.strategies or {}
    answer = [s for s, ok in strategies.items() if ok]
    cannot = [s for s, ok in strategies.items() if not ok]
    if strategies:
        out.print(
            f"[bold]answers[/] {', '.join(answer) or 'none'}"
            + (f"   [bold]cannot answer[/] {', '.join(cannot)}" if cannot else ""),
            highlight=False,
        )
    problems = len(report.warnings)
    out.print(
        "[bold]ready[/] yes"
        if report.ready
        else f"[bold]ready[/] no: {problems} warning{'s' if problems != 1 else ''}",
        highlight=False,
    )
    for warning in report.warnings:
        out.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)


def _new_since(info: FamilyStatus) -> str:
    """The interactions that arrived since the run, and how long the oldest has waited."""
    if info.interactions_since_run is None:
        return "-"
    if not info.interactions_since_run or info.oldest_since_run_at is None:
        return f"{info.interactions_since_run:,}"
    import time

    hours = (time.time() - info.oldest_since_run_at) / 3600
    return f"{info.interactions_since_run:,} (oldest {hours:,.1f} h)"


def _vector_table(vectors: dict[str, FamilyStatus]) -> None:
    from rich.table import Table

    from bookrec import console

    table = Table(
        "vectors", "column", "with vector", "dim", "run", "trained (UTC)", "new since",
        box=None, pad_edge=False, header_style="bold",
    )  # fmt: skip
    for family, info in vectors.items():
        run = info.run
        for side, stats in info.sides.items():
            table.add_row(
                family,
                f"{side}.{stats.column}",
                f"{stats.with_vector:,} / {stats.rows:,}",
                ",".join(map(str, stats.dimensions)) or "-",
                str(run.id) if run else "-",
                _when(run.finished_at) if run else "never",
                _new_since(info),
            )
    console.stdout.print(table)
    for family, info in vectors.items():
        backlog = info.fold_in
        if backlog is not None and backlog.interactions:
            import time

            waited = (time.time() - (backlog.oldest_at or time.time())) / 3600
            console.stdout.print(
                f"     {family} fold-in waiting: {backlog.users:,} users, {backlog.books:,} new"
                f" books ({backlog.interactions:,} interactions, oldest {waited:,.1f} h)",
                highlight=False,
            )
    slow = [f for f, info in vectors.items() if info.has_any and not info.snapshot]
    if slow:
        console.stdout.print(
            f"     recommend and similar read {', '.join(slow)} from the JSON columns (slower)"
            " until the next training stores their snapshot",
            highlight=False,
        )


def demo(result: DemoResult) -> None:
    from bookrec import console

    out = console.stdout
    out.print(result.attribution, markup=False, highlight=False)
    out.print(result.synthetic, markup=False, highlight=False)
    out.print(f"\nDemo database: {result.database} ({result.seconds:.0f}s)\n", markup=False)
    status(result.status)
    for user, strategies in result.recommendations.items():
        for strategy, found in strategies.items():
            book_table(f"\n{strategy} recommendations for {user}", found.recommendations, True)
    for spaces in result.similar.values():
        for space, found in spaces.items():
            book_table(f"\nbooks similar to {found.title} ({space})", found.similar, False)
    out.print(
        f"\nTry: bookrec --database-url '{result.database}' recommend u00004",
        markup=False,
        highlight=False,
    )


def tuning(report: TuneReport) -> None:
    """Per strategy: nDCG@k of the current and the tuned settings on validation and test, the
    trials and seconds; then the parameters that changed."""
    from rich.table import Table

    from bookrec import console

    out, m, k = console.stdout, report.metric, report.k
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("strategy", f"val {m}@{k} default", "tuned", f"test {m}@{k} default",
                   "tuned", "trials", "seconds", "stopped by"):  # fmt: skip
        table.add_column(column, justify="left" if column == "strategy" else "right")
    for r in report.results:
        table.add_row(
            r.strategy, f"{r.validation['default'][m]:.4f}", f"{r.validation['tuned'][m]:.4f}",
            f"{r.test['default'][m]:.4f}", f"{r.test['tuned'][m]:.4f}", str(r.trials_run),
            f"{r.seconds:.1f}", r.stopped,
        )  # fmt: skip
    table.add_row(
        "popular", f"{report.popular['validation'][m]:.4f}", "", f"{report.popular['test'][m]:.4f}"
    )
    out.print(table)
    for r in report.results:
        changed = {
            key: (r.default_parameters[key], value)
            for key, value in r.tuned_parameters.items()
            if value != r.default_parameters[key]
        }
        text = ", ".join(
            f"{key} {_value(old)} -> {_value(new)}" for key, (old, new) in changed.items()
        )
        out.print(f"{r.strategy}: {text or 'the current settings stay'}", highlight=False)
    where = f"run {report.run_id}" if report.run_id is not None else "not recorded"
    tail = (
        "applied: train, recommend and evaluate use them (bookrec config shows them)"
        if report.applied
        else "not applied (bookrec tune --apply stores them)"
    )
    out.print(f"tuned in {report.seconds:.1f}s ({where}); {tail}", highlight=False)


def _value(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
