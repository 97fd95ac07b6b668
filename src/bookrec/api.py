"""The public Python API: `bookrec.open()` and what it returns. The commands are thin calls of it.

    import bookrec

    with bookrec.open("sqlite:///books.db", create=True) as db:
        db.init()
        db.ingest_books("books.csv")
        db.ingest_interactions("events.csv")
        print(db.train_cf(factors=64).users)
        for item in db.recommend("u42", k=5).recommendations:
            print(item.rank, item.title, item.score)

Settings are the defaults unless given (`bookrec.Settings()` reads BOOKREC_* variables and a
`.env` file; the API never does so by itself), with the database's tuned values (`bookrec tune
--apply`, `Bookrec.tune(apply=True)`) in place of the defaults. Every method returns a frozen
dataclass of `bookrec.results` and raises a `bookrec.errors.BookrecError` for what it cannot do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bookrec.progress import Display, Phases
from bookrec.results import (
    BookIngestResult,
    DemoResult,
    EmbedResult,
    EvaluationReport,
    FoldInResult,
    InteractionIngestResult,
    MigrationResult,
    Recommendations,
    SimilarBooks,
    StatusReport,
    TrainCfResult,
    TrainGnnResult,
    TunedReset,
    TuneReport,
    VectorExport,
)
from bookrec.settings import Settings

if TYPE_CHECKING:
    from bookrec.storage.base import Repository


def open(
    url: str | None = None,
    settings: Settings | None = None,
    *,
    create: bool = False,
    display: Display | None = None,
) -> Bookrec:
    """Connect to a bookrec database.

    url: `postgresql://…`, a libpq connection string or `sqlite:///path`; default: the
    settings' database URL, else the embedded SQLite file in the user data directory.
    settings: every model and weight setting (default: the defaults, nothing read from the
    environment). create: allow creating a new SQLite file. display: where long jobs report
    progress (bookrec.console.RichDisplay), none by default.
    """
    from bookrec.settings import database_url
    from bookrec.storage import open_repository

    settings = settings if settings is not None else Settings.defaults()
    if url is not None:
        settings = settings.with_overrides("database", url=url)
    repo = open_repository(
        database_url(settings), create=create, connect_timeout=settings.database.connect_timeout
    )
    try:
        settings = with_stored_tuning(repo, settings)
    except BaseException:
        repo.close()
        raise
    return Bookrec(repo, settings, display)


def with_stored_tuning(repo: Repository, settings: Settings) -> Settings:
    """The settings with the database's tuned values (`bookrec tune --apply`) where they are
    defaults: what is set explicitly (.env, environment, command line, code) wins."""
    stored = repo.tuned_settings()
    return settings.with_tuned(stored) if stored else settings


class Bookrec:
    """One open bookrec database and the settings its jobs run with."""

    def __init__(
        self, repo: Repository, settings: Settings, display: Display | None = None
    ) -> None:
        self.repo = repo
        self.settings = settings
        self.display = display
        self._schema_checked = False

    @property
    def url(self) -> str:
        """The database URL with its password masked."""
        return self.repo.url.masked

    @property
    def where(self) -> str:
        """The database in words (backend and host or file), for messages."""
        return self.repo.url.where

    def close(self) -> None:
        self.repo.close()

    def __enter__(self) -> Bookrec:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema ------------------------------------------------------------------------------
    def init(self) -> MigrationResult:
        """Create the schema, or apply the migrations it lacks (idempotent)."""
        return self._migrate(create=True)

    def upgrade(self) -> MigrationResult:
        """Apply the migrations the database lacks; SchemaMissingError if it has no schema."""
        return self._migrate(create=False)

    def _migrate(self, *, create: bool) -> MigrationResult:
        from bookrec.errors import SchemaMissingError

        before = self.repo.schema_version()
        if before is None and not create:
            raise SchemaMissingError()
        applied = self.repo.migrate()
        return MigrationResult(
            database=self.where,
            schema_version_before=before,
            schema_version=self.repo.schema_version(),
            applied=tuple(f"{m.version:04d}_{m.name}" for m in applied),
        )

    # -- loading -------------------------------------------------------------------------------
    def ingest_books(
        self,
        path: str | Path,
        *,
        embed: bool = True,
        skip_invalid: bool = False,
        rejects: str | Path | None = None,
        max_errors: int = 1000,
        max_record_bytes: int = 1 << 20,
    ) -> BookIngestResult:
        """Upsert the books of a CSV/JSONL file; embed the new and changed ones unless not
        `embed`. Any invalid row means nothing is written, unless `skip_invalid` (the rejected
        rows then go to `rejects`, a CSV, if given); reading stops at the `max_errors`-th
        invalid row (0: no limit). A CSV record may take `max_record_bytes`."""
        from bookrec.services.embed import check_model_available, embed_books
        from bookrec.services.ingest import ingest_books

        self._require_schema()
        if embed:
            check_model_available(self.settings)
        phases = self._phases()
        result = ingest_books(
            self.repo, Path(path), phases, skip_invalid=skip_invalid, rejects=_path(rejects),
            max_errors=max_errors, max_record_bytes=max_record_bytes,
        )  # fmt: skip
        if embed and result.changed_book_ids:
            embedded = embed_books(self.repo, self.settings, phases, only_missing=True)
            result = replace(result, embeddings=embedded)
        return result

    def ingest_interactions(
        self,
        path: str | Path,
        *,
        skip_invalid: bool = False,
        rejects: str | Path | None = None,
        max_errors: int = 1000,
    ) -> InteractionIngestResult:
        """Load the events of a CSV/JSONL file in one transaction (see `ingest_books` for
        invalid rows); unknown users are created."""
        from bookrec.services.ingest import ingest_interactions

        self._require_schema()
        return ingest_interactions(
            self.repo, Path(path), self._phases(), skip_invalid=skip_invalid,
            rejects=_path(rejects), max_errors=max_errors,
        )  # fmt: skip

    # -- training ------------------------------------------------------------------------------
    def embed(
        self, *, only_missing: bool = False, wait: bool = False, **content: Any
    ) -> EmbedResult:
        """Content vectors of the books; `content` overrides settings.content (model, dim, …)."""
        from bookrec.services.embed import embed_books

        self._require_schema()
        settings = self.settings.with_overrides("content", **content)
        return embed_books(
            self.repo, settings, self._phases(), only_missing=only_missing, wait=wait
        )

    def train_cf(
        self, *, wait: bool = False, gate: bool | None = None, force: bool = False, **cf: Any
    ) -> TrainCfResult:
        """ALS user and book vectors; `cf` overrides settings.cf (factors, iterations, …).
        `wait`: queue behind a running cf training instead of failing (LockBusyError).
        `gate`: run the quality gate (default settings.gate.enabled); GateRejectedError when
        it rejects the candidate, unless `force` (published anyway)."""
        from bookrec.services.train_cf import train_cf

        self._require_schema()
        settings = self.settings.with_overrides("cf", **cf)
        return train_cf(self.repo, settings, self._phases(), wait=wait, gate=gate, force=force)

    def train_gnn(
        self, *, wait: bool = False, gate: bool | None = None, force: bool = False, **gnn: Any
    ) -> TrainGnnResult:
        """node2vec book vectors; `gnn` overrides settings.gnn (dim, walk_length, …);
        `gate` and `force` as for train_cf."""
        from bookrec.services.train_gnn import train_gnn

        self._require_schema()
        settings = self.settings.with_overrides("gnn", **gnn)
        return train_gnn(self.repo, settings, self._phases(), wait=wait, gate=gate, force=force)

    def hybrid_weights(self) -> dict[str, float]:
        """The fusion weights `recommend --strategy hybrid` uses: the published learnt ones
        (the fallback's before any), explicit settings.hybrid values over them."""
        from bookrec.services.recommend import hybrid_weights

        self._require_schema()
        return hybrid_weights(self.repo, self.settings)

    def fold_in_cf(self, *, wait: bool = False) -> FoldInResult:
        """cf vectors of the users and books that changed since the last `train_cf` (or the
        last fold-in into it), solved against its vectors with its parameters; only those rows
        are written. NoBaseRunError (exit 3) without a full run to fold into."""
        from bookrec.services.fold_in import fold_in_cf

        self._require_schema()
        return fold_in_cf(self.repo, self.settings, self._phases(), wait=wait)

    def fold_in_gnn(self, *, wait: bool = False) -> FoldInResult:
        """gnn vectors of the books that arrived since the last `train_gnn`: the mean of the
        vectors of the books their readers read."""
        from bookrec.services.fold_in import fold_in_gnn

        self._require_schema()
        return fold_in_gnn(self.repo, self.settings, self._phases(), wait=wait)

    # -- answers -------------------------------------------------------------------------------
    def recommend(
        self,
        user: str,
        *,
        k: int = 10,
        strategy: str = "hybrid",
        include_seen: bool = False,
        recent_days: float | None = None,
    ) -> Recommendations:
        """What the serving API would answer for a user (external id)."""
        from bookrec.services.recommend import recommend

        self._require_schema()
        return recommend(
            self.repo, self.settings, user, k=k, strategy=strategy, include_seen=include_seen,
            recent_days=recent_days,
        )  # fmt: skip

    def similar(self, book: str, *, space: str = "content", k: int = 10) -> SimilarBooks:
        """The nearest books to a book (external id) in one vector space: cf, gnn or content."""
        from bookrec.services.recommend import similar

        self._require_schema()
        return similar(self.repo, book, space=space, k=k)

    def export_vectors(
        self,
        path: str | Path,
        *,
        family: str,
        side: str = "books",
        format: str | None = None,
    ) -> VectorExport:
        """Write a vector family (cf, gnn, content) of one side (books; users for cf) to a
        Parquet, npz or JSONL file (`format` parquet, npy or jsonl; default from the suffix)
        with ids, external ids and the run that made the vectors (see bookrec.writers)."""
        from bookrec.services.export import export_vectors

        self._require_schema()
        return export_vectors(self.repo, family, Path(path), self._phases(), side=side, fmt=format)

    def evaluate(
        self,
        *,
        split: str = "random",
        test_fraction: float = 0.2,
        k: int = 10,
        strategies: Sequence[str] = ("popular", "cf", "gnn", "content", "hybrid"),
        seed: int = 42,
    ) -> EvaluationReport:
        """Ranking metrics of each strategy, its models fitted in memory on a split of the
        stored interactions (stored vectors are never touched)."""
        from bookrec.services.evaluate import evaluate_strategies

        self._require_schema()
        return evaluate_strategies(
            self.repo, self.settings, self._phases(), split=split, test_fraction=test_fraction,
            k=k, strategies=list(strategies), seed=seed,
        )  # fmt: skip

    def tune(
        self,
        *,
        strategies: Sequence[str] = ("cf", "gnn", "content", "hybrid"),
        trials: int = 40,
        timeout: float | None = None,
        k: int = 10,
        split: str = "random",
        test_fraction: float = 0.2,
        seed: int = 42,
        apply: bool = False,
        on_trial: Any = None,
    ) -> TuneReport:
        """Search each strategy's settings on a validation split of the stored interactions,
        with a test holdout no trial sees (see `bookrec.models.tune`); recorded as a `tune`
        run. `apply`: store the chosen settings, which then replace the defaults of every
        job opened on this database. on_trial(strategy, trial, best, budget) after each trial."""
        from bookrec.models.tune import TuneProtocol
        from bookrec.services.tune import TrialProgress, tune_settings

        self._require_schema()
        protocol = TuneProtocol(split=split, test_fraction=test_fraction, k=k, seed=seed)
        progress = TrialProgress(self.display, on_trial)
        try:
            report = tune_settings(
                self.repo, self.settings, Phases(None), strategies=list(strategies),
                trials=trials, timeout=timeout, protocol=protocol, apply=apply,
                on_trial=progress,
            )  # fmt: skip
        finally:
            progress.close()
        if apply:
            self.settings = with_stored_tuning(self.repo, self.settings)
        return report

    def reset_tuned(self) -> TunedReset:
        """Remove the stored tuned settings: jobs use the defaults again."""
        from bookrec.services.tune import reset_tuned

        self._require_schema()
        result = reset_tuned(self.repo)
        tuned = self.settings.tuned_sources()
        if tuned:  # the values they replaced were defaults
            self.settings = _without_tuned(self.settings, tuned)
        return result

    def status(self) -> StatusReport:
        """Counts, vector coverage, runs, staleness and warnings (works without a schema)."""
        from bookrec.services.status import collect_status

        return collect_status(self.repo, self.settings)

    def demo(self, *, users: int = 500, seed: int = 42, force: bool = False) -> DemoResult:
        """The whole workflow on the bundled books and synthetic readers."""
        from bookrec.services.demo import run_demo

        return run_demo(
            self.repo, self.settings, self._phases(), users=users, seed=seed, force=force
        )

    # -----------------------------------------------------------------------------------------
    def _require_schema(self) -> None:
        if not self._schema_checked:
            self.repo.require_schema()
            self._schema_checked = True

    def _phases(self) -> Phases:
        return Phases(self.display)


def _path(value: str | Path | None) -> Path | None:
    return None if value is None else Path(value)


def _without_tuned(settings: Settings, tuned: dict[str, int]) -> Settings:
    """The settings with their tuned values back at the defaults."""
    defaults = Settings.defaults()
    restored = {
        key: getattr(getattr(defaults, key.split(".")[0]), key.split(".")[1]) for key in tuned
    }
    updated = settings.with_tuned({key: (value, 0) for key, value in restored.items()})
    updated._tuned = {}
    return updated
