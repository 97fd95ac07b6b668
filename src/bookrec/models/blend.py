"""The hybrid's fusion weights: learnt from validation scores (algorithms.blending), given in
the settings, or the fallback when nothing is learnt yet.

`fit_blend` scores held-out users with fitted models and learns the weights; `Blend.resolve`
lays the explicitly set weights (settings.hybrid, env or command line) over the learnt ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from bookrec.models.base import Model, UserBatch, validation_scores
from bookrec.settings import HybridSettings

if TYPE_CHECKING:  # recommend reads a Blend without scipy (~0.1 s of its start)
    import scipy.sparse as sp

PARTS: tuple[str, ...] = ("cf", "gnn", "content", "popular")
# Used while no weights are learnt (no gate has run, or a caller gives no validation):
# cf leads; gnn and content only nudge it, so a weak one cannot drown it.
FALLBACK_WEIGHTS: dict[str, float] = {"cf": 1.0, "gnn": 0.2, "content": 0.05, "popular": 0.0}


@dataclass(frozen=True)
class Blend:
    """Fusion weights and where they came from ("learnt", "fallback"), with the validation
    figures they were learnt on (nDCG@k of each part alone and of the fusion)."""

    weights: dict[str, float]
    source: str = "fallback"
    validation: dict[str, Any] = field(default_factory=dict)

    def resolve(self, settings: HybridSettings) -> dict[str, float]:
        """These weights, each explicitly set one replacing its own."""
        weights = {name: float(self.weights.get(name, 0.0)) for name in PARTS}
        return weights | settings.explicit()

    def to_dict(self) -> dict[str, Any]:
        return {"weights": dict(self.weights), "source": self.source, **self.validation}


FALLBACK_BLEND = Blend(dict(FALLBACK_WEIGHTS), "fallback")


def fit_blend(
    models: Mapping[str, Model],
    users: UserBatch,
    relevant: sp.csr_matrix,
    exclude: sp.csr_matrix,
    k: int = 10,
) -> Blend:
    """Weights learnt on held-out books: `users` (their training rows as weights), `relevant`
    their held-out books and `exclude` their training books, both users × catalogue. The
    parts are the models given among cf, gnn, content and popular."""
    from bookrec.algorithms.blending import candidate_scores, fit_weights

    parts = {name: models[name] for name in PARTS if name in models}

    def score(rows: np.ndarray) -> dict[str, np.ndarray]:
        batch = UserBatch(users.user_ids[rows], users.weights[rows])
        return {name: validation_scores(model, batch) for name, model in parts.items()}

    candidates = candidate_scores(score, relevant, exclude)
    fit = fit_weights(candidates, k)
    if fit.users == 0:
        return FALLBACK_BLEND
    weights = {name: fit.weights.get(name, 0.0) for name in PARTS}
    validation = {
        "k": k,
        "users": fit.users,
        "ndcg": {
            **{name: round(v, 6) for name, v in fit.single.items()},
            "hybrid": round(fit.fused, 6),
        },
    }
    return Blend(weights, "learnt", validation)
