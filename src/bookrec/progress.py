"""Phases of a long job: timed always, shown on a progress bar only when a display is given."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

Update = Callable[[float, float | None], None]


class Display(Protocol):
    def start(self, name: str, total: float | None) -> object: ...

    def update(self, task: object, done: float, total: float | None) -> None: ...

    def stop(self, task: object) -> None: ...


class Phases:
    """Times named phases of a job and reports their progress to an optional display."""

    def __init__(self, display: Display | None = None, label: str = "") -> None:
        self.display = display
        self.label = label
        self.seconds: dict[str, float] = {}

    def within(self, part: str) -> Phases:
        """Phases of one part of the job: shown as "<part> <phase>", timed on their own."""
        return Phases(self.display, f"{self.label}{part} ")

    @contextmanager
    def phase(self, name: str, total: float | None = None) -> Iterator[Update]:
        task = self.display.start(self.label + name, total) if self.display else None
        started = time.perf_counter()

        def update(done: float, new_total: float | None = None) -> None:
            if self.display:
                self.display.update(task, done, new_total)

        try:
            yield update
        finally:
            self.seconds[name] = round(
                self.seconds.get(name, 0.0) + time.perf_counter() - started, 3
            )
            if self.display:
                self.display.stop(task)

    @property
    def total_seconds(self) -> float:
        return round(sum(self.seconds.values()), 3)
