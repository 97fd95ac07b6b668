"""gnn and content scoring: the guide's user embedding (the weighted average of the unit vectors
of the user's books), its cosine with every book, plus a popularity prior."""

from __future__ import annotations

import numpy as np

from bookrec.algorithms.matrix import positions
from bookrec.algorithms.scoring import DEFAULT_PRIOR, EmbeddingScorer
from bookrec.models.base import BookVectors, UserBatch


class EmbeddingModel:
    """z(cos(p_u, v_i)) + prior · z(log(1 + popularity_i)) over a catalogue (see
    `algorithms.scoring`); the prior defaults to the family's (gnn 1.5, content 0.5)."""

    def __init__(
        self,
        vectors: BookVectors,
        catalogue: np.ndarray,
        popularity: np.ndarray | None,
        prior: float | None = None,
    ) -> None:
        self.name = vectors.family
        self.catalogue = catalogue
        self.prior = DEFAULT_PRIOR.get(vectors.family, 0.0) if prior is None else prior
        self._scorer = EmbeddingScorer(
            vectors.vectors, popularity, self.prior,
            columns=positions(catalogue, vectors.book_ids), n_books=len(catalogue),
        )  # fmt: skip

    def scores(self, users: UserBatch) -> np.ndarray:
        return self._scorer.scores(users.weights)
