"""The repository: one database, as the rest of bookrec sees it.

It is a facade over focused parts that share one dialect (connection, SQL spelling,
transactions, locks): `schema`, `books`, `interactions`, `vectors`, `training_runs`,
`snapshots`, `tuned`. Each backend (sqlite.py, postgres.py) provides its dialect and its bulk paths
(book upserts, interaction loads and reads, vector column writes). Every write method is
atomic; a vector family is replaced in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any, ClassVar

import numpy as np

from bookrec.domain import BookEventCounts, BookRecord, BookText, InteractionArrays
from bookrec.storage.books import Books, BookSummary, BookUpsertResult
from bookrec.storage.dialect import Dialect
from bookrec.storage.fold_in import Changes, FoldIns
from bookrec.storage.interactions import Interactions, InteractionStream
from bookrec.storage.loading import InteractionLoader
from bookrec.storage.runs import Runs, TrainingRun
from bookrec.storage.schema import Migration, Schema
from bookrec.storage.snapshots import Snapshots
from bookrec.storage.tuned import TunedSettings
from bookrec.storage.vector_chunks import VectorChunks, VectorSource
from bookrec.storage.vectors import HybridRows, ProgressCallback, Vectors, VectorStats


class Repository:
    books_class: ClassVar[type[Books]]
    interactions_class: ClassVar[type[Interactions]]
    vectors_class: ClassVar[type[Vectors]]

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.schema = Schema(dialect)
        self.snapshots = Snapshots(dialect)
        self.training_runs = Runs(dialect)
        self.tuned = TunedSettings(dialect)
        self.books = self.books_class(dialect)
        self.interactions = self.interactions_class(dialect, self.snapshots)
        self.vectors = self.vectors_class(dialect, self.snapshots, self.training_runs)
        self.fold_ins = FoldIns(
            dialect, self.snapshots, self.training_runs, self.interactions, self.vectors
        )
        self.vector_chunks = VectorChunks(dialect, self.snapshots, self.training_runs)

    @property
    def url(self):
        return self.dialect.url

    @property
    def backend(self) -> str:
        return self.dialect.backend

    @property
    def conn(self) -> Any:
        """The DB-API connection (for tests and tools that check the database directly)."""
        return self.dialect.conn

    def close(self) -> None:
        self.dialect.close()

    def __enter__(self) -> Repository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema ----------------------------------------------------------------------------
    def schema_version(self) -> int | None:
        """The applied schema version, or None when there is no bookrec schema."""
        return self.schema.version()

    def latest_schema_version(self) -> int:
        return self.schema.latest_version()

    def migrations(self) -> list[Migration]:
        return self.schema.migrations()

    def apply_migration(self, migration: Migration) -> None:
        self.schema.apply(migration)

    def migrate(self) -> list[Migration]:
        """Apply every migration not yet applied, each in its own transaction."""
        return self.schema.migrate()

    def require_schema(self) -> None:
        """SchemaMissingError or SchemaOutdatedError unless the schema is there and current."""
        self.schema.require()

    def is_empty(self) -> bool:
        """No schema, or no books, users and interactions."""
        return self.schema.is_empty()

    # -- books -----------------------------------------------------------------------------
    def book_id_map(self) -> dict[str, int]:
        return self.books.id_map()

    def all_book_ids(self, known: np.ndarray | None = None) -> np.ndarray:
        return self.books.all_ids(known)

    def upsert_books(self, batches: Iterable[Sequence[BookRecord]]) -> BookUpsertResult:
        return self.books.upsert(batches)

    def book_texts(self, ids: Sequence[int] | None = None) -> list[BookText]:
        return self.books.texts(ids)

    def book_summaries(self, ids: Sequence[int]) -> list[BookSummary]:
        return self.books.summaries(ids)

    def books_without_vector(self, family: str) -> list[int]:
        return self.books.without_vector(family)

    def find_book(self, external_id: str) -> int | None:
        return self.books.find(external_id)

    # -- users and interactions ------------------------------------------------------------
    def find_user(self, external_id: str) -> int | None:
        return self.interactions.find_user(external_id)

    def interaction_loader(self) -> InteractionLoader:
        """A load in one transaction: `with repo.interaction_loader() as loader: ...`."""
        return self.interactions.loader()

    def interaction_stream(self) -> AbstractContextManager[InteractionStream]:
        """Every interaction in chunks of compact arrays: `with repo.interaction_stream() as
        stream: for chunk in stream: ...`."""
        return self.interactions.stream()

    def load_interactions(self, user_id: int | None = None) -> InteractionArrays:
        """All interactions (or one user's) from one snapshot, up to its newest id."""
        return self.interactions.load(user_id)

    def counts(self) -> dict[str, Any]:
        """books, users, interactions, per-event counts, first/last interaction time."""
        return self.interactions.counts()

    def interactions_after(self, interaction_id: int) -> tuple[int, float | None]:
        """(how many interactions arrived after the id, when the first of them arrived)."""
        return self.interactions.after(interaction_id)

    def book_event_counts(self, since: float | None = None) -> BookEventCounts:
        return self.interactions.book_event_counts(since)

    # -- vectors ---------------------------------------------------------------------------
    def vector_stats(self, family: str, side: str, rows: int | None = None) -> VectorStats:
        return self.vectors.stats(family, side, rows)

    def load_vectors(self, family: str, side: str = "books") -> tuple[np.ndarray, np.ndarray]:
        return self.vectors.load(family, side)

    def load_vector_families(
        self, families: Sequence[str], side: str = "books", *, as_blocks: bool = False
    ) -> dict[str, tuple[np.ndarray, Any]]:
        return self.vectors.load_families(families, side, as_blocks=as_blocks)

    def load_vector(self, family: str, side: str, row_id: int) -> np.ndarray | None:
        return self.vectors.load_one(family, side, row_id)

    def read_vector_chunks(self, family: str, side: str) -> AbstractContextManager[VectorSource]:
        """A family's vectors of one side in chunks, with external ids and the latest run:
        `with repo.read_vector_chunks("cf", "books") as source: for chunk in source.chunks:`."""
        return self.vector_chunks.read(family, side)

    def replace_vectors(
        self,
        family: str,
        run_id: int,
        run_result: dict[str, Any] | Callable[[], dict[str, Any]],
        book_ids: np.ndarray,
        book_vectors: np.ndarray,
        user_ids: np.ndarray | None = None,
        user_vectors: np.ndarray | None = None,
        artifacts: dict[str, bytes] | None = None,
        on_progress: ProgressCallback | None = None,
        event_counts: BookEventCounts | Callable[[], BookEventCounts] | None = None,
        hybrid_weights: HybridRows | Callable[[], HybridRows | None] | None = None,
    ) -> None:
        """See Vectors.replace."""
        self.vectors.replace(
            family, run_id, run_result, book_ids, book_vectors, user_ids, user_vectors,
            artifacts, on_progress, event_counts, hybrid_weights,
        )  # fmt: skip

    def hybrid_weights(self) -> dict[str, tuple[float, float | None, int | None]]:
        """The published hybrid weights: strategy -> (weight, prior, run_id); {} if none."""
        return self.training_runs.hybrid_weights()

    def update_vectors(
        self,
        family: str,
        run_id: int,
        run_result: dict[str, Any],
        book_ids: np.ndarray,
        book_vectors: np.ndarray,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        """See Vectors.update."""
        self.vectors.update(family, run_id, run_result, book_ids, book_vectors, on_progress)

    def snapshot_names(self) -> set[str]:
        """The snapshots that exist: `snapshot_name(...)`s and EVENT_COUNTS_SNAPSHOT."""
        return set(self.snapshots.headers())

    # -- fold-in ---------------------------------------------------------------------------
    def changes_since(self, interaction_id: int) -> Changes:
        """The users and books with interactions after the id (see FoldIns.changes)."""
        return self.fold_ins.changes(interaction_id)

    def interactions_of(
        self, side: str, ids: Sequence[int] | np.ndarray, max_interaction_id: int
    ) -> InteractionArrays:
        """Every interaction up to the id of those users ("users") or books ("books")."""
        return self.fold_ins.interactions_of(side, ids, max_interaction_id)

    def vectors_of(
        self, family: str, side: str, ids: Sequence[int] | np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of those rows that have a vector of the family."""
        return self.fold_ins.vectors_of(family, side, ids)

    def newest_interaction_time(self, max_interaction_id: int) -> float | None:
        return self.fold_ins.newest(max_interaction_id)

    def write_fold_in(self, family: str, model: str, base_run_id: int, run_id: int,
                      run_result: dict[str, Any], **rows: Any) -> None:  # fmt: skip
        """See FoldIns.write: only the given rows, in one transaction, if the base run is
        still the latest of its model."""
        self.fold_ins.write(family, model, base_run_id, run_id, run_result, **rows)

    # -- training runs ---------------------------------------------------------------------
    def start_run(self, model: str, parameters: dict[str, Any]) -> int:
        return self.training_runs.start(model, parameters)

    def finish_run(self, run_id: int, status: str, **result: Any) -> None:
        """Record the outcome: status, n_users, n_books, n_interactions, max_interaction_id,
        phases, metrics, error."""
        self.training_runs.finish(run_id, status, **result)

    def runs(self, model: str | None = None, limit: int = 20) -> list[TrainingRun]:
        """The latest runs, newest first; a `running` one whose process died as `died`."""
        return self.training_runs.list(model, limit)

    def latest_run(self, model: str, status: str | None = "succeeded") -> TrainingRun | None:
        return self.training_runs.latest(model, status)

    def latest_artifact(self, model: str, name: str) -> tuple[int, bytes] | None:
        return self.training_runs.latest_artifact(model, name)

    def training_lock(
        self, model: str, wait: bool = False, on_wait: Callable[[], None] | None = None
    ) -> AbstractContextManager[None]:
        """Held for a whole training run; raises LockBusyError unless wait."""
        return self.training_runs.training_lock(model, wait, on_wait)

    # -- tuned settings --------------------------------------------------------------------
    def tuned_settings(self) -> dict[str, tuple[Any, int]]:
        """'section.field' -> (value, the tune run that chose it); empty before schema v5."""
        return self.tuned.load()

    def store_tuned_settings(
        self, run_id: int, values: dict[str, Any], replacing: Sequence[str] = ()
    ) -> None:
        """Store the values chosen by a tune run, replacing those of the `replacing` keys."""
        self.tuned.store(run_id, values, replacing)

    def reset_tuned_settings(self) -> int:
        """Remove every tuned setting; how many there were."""
        return self.tuned.clear()
