"""hybrid: per-user z-scores of the other strategies, summed with fusion weights."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from bookrec.algorithms.scoring import FusionMethod, fuse
from bookrec.models.base import Model, UserBatch

FALLBACK = "popular"


class HybridModel:
    """Σ_s weight_s · z_u(score_s) over the parts with weight > 0 that can serve a user; a user
    none of them serves gets the popular part alone (see `algorithms.scoring.fuse`)."""

    name = "hybrid"

    def __init__(
        self,
        parts: Mapping[str, Model],
        weights: Mapping[str, float],
        method: FusionMethod = "zscore",
    ) -> None:
        if FALLBACK not in parts:
            raise ValueError("a hybrid needs the popular part to fall back on")
        self.catalogue = parts[FALLBACK].catalogue
        self.weights = {name: float(w) for name, w in weights.items()}
        self.parts = {
            name: model
            for name, model in parts.items()
            if self.weights.get(name, 0.0) > 0 or name == FALLBACK
        }
        self.method = method

    def part_scores(self, users: UserBatch) -> dict[str, np.ndarray]:
        """The scores of every part the fusion may use."""
        return {name: model.scores(users) for name, model in self.parts.items()}

    def fuse(self, parts: Mapping[str, np.ndarray]) -> np.ndarray:
        return fuse(parts, self.weights, method=self.method, fallback=FALLBACK)

    def scores(self, users: UserBatch) -> np.ndarray:
        return self.fuse(self.part_scores(users))
