"""What every model shares: the batch of users it scores and vectors aligned with a catalogue."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from bookrec.algorithms.matrix import positions
from bookrec.errors import NotEnoughDataError

if TYPE_CHECKING:
    import scipy.sparse as sp

    from bookrec.algorithms.matrix import InteractionMatrix


@dataclass(frozen=True, eq=False)
class UserBatch:
    """Users to score: their database ids and their rows of the confidence matrix over the
    model's catalogue (csr or dense, n_users × n_books; what gnn and content build a profile
    from)."""

    user_ids: np.ndarray
    weights: sp.csr_matrix | np.ndarray

    def __len__(self) -> int:
        return len(self.user_ids)


class Model(Protocol):
    """A fitted strategy over one catalogue (sorted book database ids). A model that gives
    every user the same scores may say so with `same_for_every_user = True`
    (`validation_scores` then scores one row)."""

    name: str
    catalogue: np.ndarray

    def scores(self, users: UserBatch) -> np.ndarray:
        """(len(users), len(catalogue)) float32; -inf where the strategy cannot score a book
        for a user, a whole row of -inf for a user it cannot serve."""
        ...


def validation_scores(model: Model, users: UserBatch) -> np.ndarray:
    """model.scores(users) for algorithms.blending.candidate_scores: a model that scores every
    user alike (`same_for_every_user`) gives one row, broadcast (read-only), ranked once."""
    if getattr(model, "same_for_every_user", False) and len(users) > 1:
        row = model.scores(UserBatch(users.user_ids[:1], users.weights[:1]))
        return np.broadcast_to(row, (len(users), row.shape[1]))
    return model.scores(users)


@dataclass(frozen=True, eq=False)
class BookVectors:
    """One vector per book (float32 rows), in the order of the ascending database ids: one
    array, or consecutive row blocks (a snapshot's chunks as read, see storage.snapshots)."""

    family: str
    book_ids: np.ndarray
    vectors: np.ndarray | tuple[np.ndarray, ...]

    @property
    def dim(self) -> int:
        first = self.vectors if isinstance(self.vectors, np.ndarray) else self.vectors[0]
        return int(first.shape[1]) if first.ndim == 2 else 0

    def aligned(self, catalogue: np.ndarray) -> np.ndarray:
        """(len(catalogue), dim) with zero rows for books without a vector."""
        vectors = self.vectors
        if not isinstance(vectors, np.ndarray):
            vectors = np.concatenate(vectors) if len(vectors) > 1 else vectors[0]
        return align_rows(self.book_ids, vectors, catalogue)


def align_rows(ids: np.ndarray, rows: np.ndarray, catalogue: np.ndarray) -> np.ndarray:
    """Rows keyed by sorted `ids`, placed at their positions in the sorted `catalogue` (zeros
    elsewhere; ids not in the catalogue are dropped). The array itself when they match."""
    if len(ids) == len(catalogue) and np.array_equal(ids, catalogue):
        return rows
    aligned = np.zeros((len(catalogue), rows.shape[1]), dtype=np.float32)
    at = positions(catalogue, ids)
    aligned[at[at >= 0]] = rows[at >= 0]
    return aligned


def training_core(
    matrix: InteractionMatrix, min_user_interactions: int, min_book_interactions: int
) -> InteractionMatrix:
    """The k-core a model trains on; NotEnoughDataError (the guide's "Not enough users/items")
    unless at least 2 users and 2 books keep enough interactions."""
    from bookrec.algorithms.matrix import k_core

    core = k_core(matrix, min_user_interactions, min_book_interactions)
    if core.shape[0] < 2 or core.shape[1] < 2:
        raise NotEnoughDataError(
            users=core.shape[0],
            books=core.shape[1],
            min_user_interactions=min_user_interactions,
            min_book_interactions=min_book_interactions,
        )
    return core
