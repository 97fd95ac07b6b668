"""popular: every user gets the same ranking, by book popularity."""

from __future__ import annotations

import numpy as np

from bookrec.algorithms.scoring import popular_scores
from bookrec.models.base import UserBatch


class PopularModel:
    """Σ of event weights of each catalogue book: the column sums of a confidence matrix
    (`algorithms.scoring.popularity`) or event counts (`popularity_from_counts`)."""

    name = "popular"
    same_for_every_user = True

    def __init__(self, catalogue: np.ndarray, popularity: np.ndarray) -> None:
        self.catalogue = catalogue
        self.popularity = np.asarray(popularity, dtype=np.float64)

    def scores(self, users: UserBatch) -> np.ndarray:
        return popular_scores(self.popularity, len(users))
