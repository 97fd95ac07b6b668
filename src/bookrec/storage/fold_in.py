"""What a fold-in reads and writes: the rows that changed since a watermark, the interactions
and vectors of just those rows, and one transaction that writes only the rows it solved.

The books snapshot of the family is merged (the old snapshot, read inside the write's
transaction before the column's trigger drops it, with the new rows) rather than rebuilt from
the JSON column; the users column's header is kept in step; the Gram matrices the next
fold-in needs are stored as artifacts of the fold-in's run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bookrec.domain import InteractionArrays
from bookrec.errors import BaseRunReplacedError
from bookrec.storage.columns import event_code_sql, json_text, vector_column
from bookrec.storage.dialect import Dialect
from bookrec.storage.interactions import RATING_OR_NO_RATING, Interactions, compact_arrays
from bookrec.storage.runs import Runs
from bookrec.storage.snapshots import Snapshots, snapshot_name
from bookrec.storage.vectors import Vectors, VectorSide, _checked, vectors_from_json


@dataclass(frozen=True)
class Changes:
    """The users and books with interactions of ids in (watermark, max_interaction_id]."""

    watermark: int
    max_interaction_id: int
    user_ids: np.ndarray
    book_ids: np.ndarray
    interactions: int
    first_arrival_at: float | None  # created_at of the oldest of them (epoch seconds)


class FoldIns:
    def __init__(
        self, dialect: Dialect, snapshots: Snapshots, runs: Runs, interactions: Interactions,
        vectors: Vectors,
    ) -> None:  # fmt: skip
        self.dialect = dialect
        self.snapshots = snapshots
        self.runs = runs
        self.interactions = interactions
        self.vectors = vectors

    # -- reading ---------------------------------------------------------------------------
    def changes(self, watermark: int) -> Changes:
        """Who interacted after the watermark, up to the newest interaction now."""
        d = self.dialect
        with d.read_snapshot():
            (max_id,) = d.execute("SELECT coalesce(max(id), 0) FROM interactions").fetchone()
            span = f"FROM interactions WHERE id > {d.param} AND id <= {d.param}"
            bounds = (watermark, max_id)
            users = d.execute(f"SELECT DISTINCT user_id {span}", bounds).fetchall()
            books = d.execute(f"SELECT DISTINCT book_id {span}", bounds).fetchall()
            count, first = d.execute(
                f"SELECT count(*), {d.epoch('min(created_at)')} {span}", bounds
            ).fetchone()
        return Changes(
            watermark, int(max_id), _ids(users), _ids(books), int(count),
            None if first is None else float(first),
        )  # fmt: skip

    def interactions_of(
        self, side: str, ids: Sequence[int] | np.ndarray, max_interaction_id: int
    ) -> InteractionArrays:
        """Every interaction (up to the id) of those users (side "users") or books ("books")."""
        column = {"users": "user_id", "books": "book_id"}[side]
        d = self.dialect
        condition, param = self._in_ids(column, ids)
        rows = d.execute(
            f"SELECT user_id, book_id, {event_code_sql()}, {RATING_OR_NO_RATING},"
            f" {d.epoch('occurred_at')} FROM interactions"
            f" WHERE {condition} AND id <= {d.param} ORDER BY id",
            (param, max_interaction_id),
        ).fetchall()
        table = np.array(rows, dtype=np.float64).reshape(-1, 5)
        return compact_arrays(*table.T, np.int64, max_interaction_id)

    def vectors_of(
        self, family: str, side: str, ids: Sequence[int] | np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of those rows that have a vector of the family, by ascending id."""
        d = self.dialect
        column = vector_column(family, side)
        condition, param = self._in_ids("id", ids)
        rows = d.execute(
            f"SELECT id, {d.json_text(column)} FROM {side}"
            f" WHERE {condition} AND {column} IS NOT NULL ORDER BY id",
            (param,),
        ).fetchall()
        return vectors_from_json(rows)

    def newest(self, max_interaction_id: int) -> float | None:
        """The newest occurred_at up to the id (the `now` of a decaying weight scheme)."""
        return self.interactions._newest(max_interaction_id)

    # -- writing ---------------------------------------------------------------------------
    def write(
        self,
        family: str,
        model: str,
        base_run_id: int,
        run_id: int,
        run_result: dict[str, Any],
        sides: list[VectorSide],
        cleared_users: np.ndarray | None = None,
        artifacts: dict[str, bytes] | None = None,
        on_progress: Callable[[int, int], None] | None = None,
        books_read: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        """In one transaction: check that `base_run_id` is still the latest succeeded run of
        `model` (else BaseRunReplacedError, nothing written); write the vectors of `sides`
        (only those rows), NULL the users in `cleared_users`, merge the books snapshot, keep
        the users header, store the artifacts and mark the run succeeded. `books_read`: the
        family's book vectors as the caller read them (from the snapshot), to merge into
        without reading them again."""
        sides = _checked(family, sides)
        d = self.dialect
        with self.vectors.transaction():
            latest = d.execute(
                "SELECT max(id) FROM training_runs WHERE model = "
                f"{d.param} AND status = 'succeeded'",
                (model,),
            ).fetchone()[0]
            if latest != base_run_id:
                raise BaseRunReplacedError(model, base_run_id, latest)
            written = {side: (ids, vectors) for side, ids, vectors in sides}
            books_name = snapshot_name(family)
            if books_read is not None and books_name in self.snapshots.headers([books_name]):
                # A trigger drops the snapshot whenever anything changes the column: one that
                # still exists is the one the caller read.
                before = (*books_read, None)
            else:
                before = self.snapshots.read([books_name], np.float32).get(books_name)
            users_name = snapshot_name(family, "users") if "users" in written else ""
            users_header = self.snapshots.headers([users_name]).get(users_name)
            had_vector = self._count_with_vector(family, "users", written.get("users", [[]])[0])
            total, done = sum(len(ids) for _, ids, _ in sides), 0

            def advance(rows: int) -> None:
                nonlocal done
                done += rows
                if on_progress is not None:
                    on_progress(done, total)

            for side, ids, vectors in sides:
                column = vector_column(family, side)
                self.vectors.write_column(side, column, ids, vectors, False, advance)
            cleared = 0
            if cleared_users is not None and len(cleared_users):
                column = vector_column(family, "users")
                condition, param = self._in_ids("id", cleared_users)
                cleared = d.execute(
                    f"UPDATE users SET {column} = NULL WHERE {condition} AND {column} IS NOT NULL",
                    (param,),
                ).rowcount
            if "books" in written:
                self._merge_books_snapshot(family, before, *written["books"])
            if "users" in written and users_header is not None:
                new_rows = len(written["users"][0]) - had_vector
                self.snapshots.write_header(
                    users_name, users_header.n_rows + new_rows - cleared, users_header.width
                )
            self.runs.add_artifacts(run_id, artifacts or {})
            self.runs.finish_in_transaction(run_id, "succeeded", run_result)

    def _merge_books_snapshot(
        self, family: str, before: Any, ids: np.ndarray, vectors: np.ndarray
    ) -> None:
        if before is None:  # something else changed the column since: rebuild from it
            all_ids, table = self.vectors.load_json([family], "books")[family]
        else:
            old_ids, old_table, _ = before
            keep = ~np.isin(old_ids, ids)
            all_ids = np.concatenate([old_ids[keep], ids])
            table = np.concatenate([old_table[keep], vectors.astype(np.float32)])
        self.snapshots.write(snapshot_name(family), all_ids, table.astype(np.float32, copy=False))

    def _count_with_vector(self, family: str, side: str, ids: Any) -> int:
        if not len(ids):
            return 0
        column = vector_column(family, side)
        condition, param = self._in_ids("id", ids)
        sql = f"SELECT count(*) FROM {side} WHERE {condition} AND {column} IS NOT NULL"
        return int(self.dialect.execute(sql, (param,)).fetchone()[0])

    def _in_ids(self, column: str, ids: Sequence[int] | np.ndarray) -> tuple[str, Any]:
        """A condition `column` in ids, and its one parameter."""
        id_list = [int(i) for i in np.asarray(ids).ravel()]
        if self.dialect.backend == "sqlite":
            return f"{column} IN (SELECT value FROM json_each({self.dialect.param}))", json_text(
                id_list
            )
        return f"{column} = ANY({self.dialect.param})", id_list


def _ids(rows: list[tuple]) -> np.ndarray:
    return np.sort(np.array([r[0] for r in rows], dtype=np.int64))
