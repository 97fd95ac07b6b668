"""The names callers imported from here before the repository was split into parts: see
repository.py. New code imports from the modules that define them."""

from bookrec.storage.books import BookSummary, BookUpsertResult
from bookrec.storage.repository import Repository
from bookrec.storage.runs import TrainingRun
from bookrec.storage.schema import Migration
from bookrec.storage.vectors import VectorStats

__all__ = [
    "BookSummary",
    "BookUpsertResult",
    "Migration",
    "Repository",
    "TrainingRun",
    "VectorStats",
]
