"""Training runs: their rows in `training_runs`, their artifacts, and the lock a run holds.

A run holds its model's training lock for as long as it lives (an flock or a PostgreSQL
advisory lock: both die with the process). So a row still `running` whose model's lock nobody
holds belongs to a process that died without recording its end (SIGKILL, power loss): `runs()`
reports it as `died`, and the next run of that model, once it has the lock, marks it failed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from bookrec.storage.dialect import Dialect

DIED = "died"  # derived, never stored: `running`, but no process holds the model's lock
DIED_ERROR = "the process running it ended before the run finished (killed?)"


@dataclass(frozen=True)
class TrainingRun:
    id: int
    model: str
    status: str  # running, succeeded, failed, rejected, or (derived) died
    parameters: dict[str, Any]
    started_at: float
    finished_at: float | None
    n_users: int | None
    n_books: int | None
    n_interactions: int | None
    max_interaction_id: int | None
    phases: dict[str, float]
    metrics: dict[str, Any]
    error: str | None


RESULT_FIELDS = ("n_users", "n_books", "n_interactions", "max_interaction_id")


FOLD_IN_SUFFIX = "-fold-in"  # a fold-in's runs ("cf-fold-in") hold the lock of their model


def training_lock_name(model: str) -> str:
    return f"train-{model.removesuffix(FOLD_IN_SUFFIX)}"


class Runs:
    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect

    def start(self, model: str, parameters: dict[str, Any]) -> int:
        d = self.dialect
        with d.transaction():
            row = d.execute(
                "INSERT INTO training_runs (model, status, parameters, started_at)"
                f" VALUES ({d.param}, 'running', {d.param}, {d.now}) RETURNING id",
                (model, d.json_param(parameters)),
            ).fetchone()
        return int(row[0])

    def finish(self, run_id: int, status: str, **result: Any) -> None:
        """Record the outcome: status, n_users, n_books, n_interactions, max_interaction_id,
        phases, metrics, error."""
        with self.dialect.transaction():
            self.finish_in_transaction(run_id, status, result)

    def finish_in_transaction(self, run_id: int, status: str, result: dict[str, Any]) -> None:
        """finish's UPDATE, inside the caller's transaction."""
        d = self.dialect
        assignments = ", ".join(f"{name} = {d.param}" for name in RESULT_FIELDS)
        d.execute(
            f"UPDATE training_runs SET status = {d.param}, finished_at = {d.now}, {assignments},"
            f" phases = {d.param}, metrics = {d.param}, error = {d.param} WHERE id = {d.param}",
            (
                status,
                *(result.get(name) for name in RESULT_FIELDS),
                d.json_param(result.get("phases", {})),
                d.json_param(result.get("metrics", {})),
                result.get("error"),
                run_id,
            ),
        )

    def add_artifacts(self, run_id: int, artifacts: dict[str, bytes]) -> None:
        """Store a run's artifacts, inside the caller's transaction."""
        sql = f"INSERT INTO model_artifacts (run_id, name, data) VALUES ({self.dialect.marks(3)})"
        for name, data in artifacts.items():
            self.dialect.execute(sql, (run_id, name, data))

    def replace_hybrid_weights(
        self, run_id: int, weights: dict[str, tuple[float, float | None]]
    ) -> None:
        """The hybrid_weights rows (strategy -> (weight, prior)), inside the caller's
        transaction."""
        d = self.dialect
        d.execute("DELETE FROM hybrid_weights")
        for strategy, (weight, prior) in weights.items():
            d.execute(
                "INSERT INTO hybrid_weights (strategy, weight, prior, run_id, updated_at)"
                f" VALUES ({d.marks(4)}, {d.now})",
                (strategy, float(weight), prior, run_id),
            )

    def hybrid_weights(self) -> dict[str, tuple[float, float | None, int | None]]:
        """strategy -> (weight, prior, run_id) of the published hybrid weights."""
        rows = self.dialect.execute(
            "SELECT strategy, weight, prior, run_id FROM hybrid_weights"
        ).fetchall()
        return {r[0]: (float(r[1]), None if r[2] is None else float(r[2]), r[3]) for r in rows}

    def list(self, model: str | None = None, limit: int = 20) -> list[TrainingRun]:
        """The latest runs, newest first; a `running` one whose process is gone as `died`."""
        d = self.dialect
        sql = (
            f"SELECT id, model, status, parameters, {d.epoch('started_at')},"
            f" {d.epoch('finished_at')}, n_users, n_books, n_interactions, max_interaction_id,"
            " phases, metrics, error FROM training_runs"
        )
        params: tuple = ()
        if model:
            sql += f" WHERE model = {d.param}"
            params = (model,)
        rows = d.execute(f"{sql} ORDER BY id DESC LIMIT {d.param}", (*params, limit)).fetchall()
        runs = [
            TrainingRun(*r[:3], d.from_json(r[3]), *r[4:10], *map(d.from_json, r[10:12]), r[12])
            for r in rows
        ]
        alive: dict[str, bool] = {}
        for i, run in enumerate(runs):
            if run.status == "running":
                if run.model not in alive:
                    alive[run.model] = d.lock_is_held(training_lock_name(run.model))
                if not alive[run.model]:
                    runs[i] = replace(run, status=DIED, error=DIED_ERROR)
        return runs

    def latest(self, model: str, status: str | None = "succeeded") -> TrainingRun | None:
        for run in self.list(model, limit=50):
            if status is None or run.status == status:
                return run
        return None

    def latest_artifact(self, model: str, name: str) -> tuple[int, bytes] | None:
        p = self.dialect.param
        row = self.dialect.execute(
            "SELECT a.run_id, a.data FROM model_artifacts a JOIN training_runs r"
            f" ON r.id = a.run_id WHERE r.model = {p} AND a.name = {p}"
            " AND r.status = 'succeeded' ORDER BY a.run_id DESC LIMIT 1",
            (model, name),
        ).fetchone()
        return (row[0], bytes(row[1])) if row else None

    @contextmanager
    def training_lock(
        self, model: str, wait: bool = False, on_wait: Callable[[], None] | None = None
    ) -> Iterator[None]:
        """Held for a whole training run; raises LockBusyError unless wait (then on_wait(), if
        given, is called once before waiting). Once held, any run of the model still marked
        `running` is of a process that died: it is marked failed."""
        with self.dialect.lock(training_lock_name(model), wait, on_wait):
            self._fail_dead_runs(model)
            yield

    def _fail_dead_runs(self, model: str) -> None:
        d = self.dialect
        with d.transaction():
            d.execute(
                f"UPDATE training_runs SET status = 'failed', finished_at = {d.now},"
                f" error = {d.param} WHERE model IN ({d.param}, {d.param}) AND status = 'running'",
                (DIED_ERROR, model, model + FOLD_IN_SUFFIX),
            )
