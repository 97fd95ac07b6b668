"""Tuned settings: the values `bookrec tune --apply` chose, each with the run that chose it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bookrec.storage.dialect import Dialect

TABLE = "tuned_settings"


class TunedSettings:
    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect

    def load(self) -> dict[str, tuple[Any, int]]:
        """'section.field' -> (value, run id); empty where the schema has no such table yet."""
        d = self.dialect
        if not d.table_exists(TABLE):
            return {}
        rows = d.execute(f"SELECT key, value, run_id FROM {TABLE} ORDER BY key").fetchall()
        return {key: (d.from_json(value), int(run_id)) for key, value, run_id in rows}

    def store(self, run_id: int, values: dict[str, Any], replacing: Iterable[str]) -> None:
        """In one transaction: remove the values of the `replacing` keys, store `values`."""
        d = self.dialect
        with d.transaction():
            for key in {*replacing, *values}:
                d.execute(f"DELETE FROM {TABLE} WHERE key = {d.param}", (key,))
            for key, value in values.items():
                d.execute(
                    f"INSERT INTO {TABLE} (key, value, run_id, updated_at)"
                    f" VALUES ({d.param}, {d.param}, {d.param}, {d.now})",
                    (key, d.json_param(value), run_id),
                )

    def clear(self) -> int:
        """Remove every tuned value; how many there were."""
        d = self.dialect
        if not d.table_exists(TABLE):
            return 0
        with d.transaction():
            return d.execute(f"DELETE FROM {TABLE}").rowcount
