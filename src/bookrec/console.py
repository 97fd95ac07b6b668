"""Terminal output: data on stdout, messages and progress bars on stderr."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console

from bookrec.errors import scrub

# Pipes and cron get wide lines instead of Rich's 80 columns.
stdout = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
stderr = Console(stderr=True, soft_wrap=True)


def print_json(data: Any) -> None:
    import orjson

    text = orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY).decode()
    sys.stdout.write(scrub(text) + "\n")


def message(text: str) -> None:
    """A one-line result for people (stdout, so that cron mails it)."""
    stdout.print(scrub(text), highlight=False, markup=False)


def error(text: str) -> None:
    from rich.markup import escape

    stderr.print(f"[bold red]error:[/] {escape(scrub(text))}", highlight=False)


def warning(text: str) -> None:
    from rich.markup import escape

    stderr.print(f"[yellow]warning:[/] {escape(scrub(text))}", highlight=False)


def info(text: str) -> None:
    stderr.print(scrub(text), highlight=False, style="dim")


class RichDisplay:
    """A Rich progress bar per phase, on stderr; created only when stderr is a terminal."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description:<10}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=stderr,
            transient=False,
        )
        self.progress.start()

    def start(self, name: str, total: float | None) -> object:
        return self.progress.add_task(name, total=total)

    def update(self, task: object, done: float, total: float | None) -> None:
        self.progress.update(task, completed=done, total=total)  # type: ignore[arg-type]

    def describe(self, task: object, name: str) -> None:
        """A new text for the task (tune's best-so-far)."""
        self.progress.update(task, description=name)  # type: ignore[arg-type]

    def stop(self, task: object) -> None:
        current = next(t for t in self.progress.tasks if t.id == task)
        if current.total is None:
            self.progress.update(task, total=1, completed=1)  # type: ignore[arg-type]

    def close(self) -> None:
        self.progress.stop()


def make_display(quiet: bool = False) -> RichDisplay | None:
    if quiet or not stderr.is_terminal:
        return None
    return RichDisplay()


class _InfoHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        info(self.format(record))


@contextmanager
def showing_log(quiet: bool = False) -> Iterator[None]:
    """The `bookrec` logger's messages (e.g. "waiting for the other bookrec train cf …") on
    stderr while a command runs, unless quiet."""
    if quiet:
        yield
        return
    logger = logging.getLogger("bookrec")
    handler = _InfoHandler(logging.INFO)
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
