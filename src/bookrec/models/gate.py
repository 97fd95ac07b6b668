"""The quality gate's measurements: held-out pairs of a hashed sample of users, and nDCG@k of
the candidate, popularity and the published vectors on exactly those pairs.

The candidate is fitted on the training matrix without the held pairs, so it is never scored
on a pair it trained on; the published cf model is scored with the held users' vectors
re-solved from its book vectors on their training rows only. The same scores give the hybrid
weights (algorithms.blending) that a passing run publishes.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from bookrec.algorithms.matrix import InteractionMatrix
from bookrec.algorithms.split import MatrixHoldout
from bookrec.models.base import Model, UserBatch, validation_scores
from bookrec.models.blend import PARTS, Blend
from bookrec.models.cf import CfVectors
from bookrec.settings import GateSettings

MAX_SHARE = 0.1  # of the eligible users (with 3 books or more)
MIN_USERS = 10  # fewer held-out users than this: too few to judge, the gate is skipped
PUBLISHED = "published"
# Scores the gate computes per strategy at most: the default 5,000 users up to 200k books
# (issue 16's 10M shape); past that catalogue fewer users, never fewer than MIN_BUDGET_USERS.
CELL_BUDGET = 5_000 * 200_000
MIN_BUDGET_USERS = 1_000


def held_users(requested: int, n_books: int) -> int:
    """How many users the gate holds out of a catalogue of n_books (before MAX_SHARE)."""
    return min(requested, max(MIN_BUDGET_USERS, CELL_BUDGET // max(n_books, 1)))


def gate_split(core: InteractionMatrix, gate: GateSettings) -> MatrixHoldout:
    """One held-out pair of each of a hashed sample of the core's users. The sample of fewer
    users is the start of the larger one (the same hash order), so vectors fitted without a
    larger sample's pairs were fitted without this one's."""
    from bookrec.algorithms.split import hold_out_entries

    return hold_out_entries(
        core.matrix, core.user_ids, core.book_ids,
        n_users=held_users(gate.users, core.shape[1]), max_share=MAX_SHARE, per_user=1,
        seed=gate.seed,
    )  # fmt: skip


def training_part(core: InteractionMatrix, split: MatrixHoldout) -> InteractionMatrix:
    return InteractionMatrix(split.train, core.user_ids, core.book_ids)


class Stopped(Exception):
    """The gate's scoring was stopped before its end (its caller no longer waits for it)."""


@dataclass(frozen=True)
class GateFigures:
    """Mean nDCG@k on the held-out pairs of each model scored (the candidate under its own
    family's name, the published model under "published"), the users, and the blend."""

    ndcg: dict[str, float]
    users: int
    blend: Blend
    per_user: dict[str, np.ndarray]


def measure(
    models: Mapping[str, Model],
    split: MatrixHoldout,
    core: InteractionMatrix,
    k: int,
    *,
    stop: threading.Event | None = None,
) -> GateFigures:
    """Score the held-out users with every model (and learn the blend of the PARTS); once
    `stop` is set, Stopped at the next batch of users."""
    from bookrec.algorithms.blending import candidate_scores, fit_weights, fused_ndcg

    rows = split.rows
    users = UserBatch(core.user_ids[rows], split.train[rows])
    relevant = sp.csr_matrix(split.held[rows] > 0, dtype=np.int8)

    def score(batch_rows: np.ndarray) -> dict[str, np.ndarray]:
        if stop is not None and stop.is_set():
            raise Stopped
        batch = UserBatch(users.user_ids[batch_rows], users.weights[batch_rows])
        return {name: validation_scores(model, batch) for name, model in models.items()}

    candidates = candidate_scores(score, relevant, split.train[rows])
    per_user = {name: fused_ndcg(candidates, {name: 1.0}, k) for name in models}
    ndcg = {name: float(v.mean()) if len(v) else 0.0 for name, v in per_user.items()}
    blend_names = [name for name in candidates.names if name in PARTS]
    fit = fit_weights(_subset(candidates, blend_names), k)
    weights = {name: fit.weights.get(name, 0.0) for name in PARTS}
    blend = Blend(weights, "learnt", {"k": k, "users": fit.users})
    rounded = {n: round(v, 6) for n, v in ndcg.items()}
    return GateFigures(rounded, candidates.n_users, blend, per_user)


def _subset(candidates, names):
    from bookrec.algorithms.blending import CandidateScores

    index = [candidates.names.index(name) for name in names]
    return CandidateScores(
        tuple(names), candidates.z[index], candidates.served[index], candidates.hits,
        candidates.n_relevant,
    )  # fmt: skip


def resolved_cf(
    book_ids: np.ndarray,
    book_vectors: np.ndarray,
    core: InteractionMatrix,
    user_rows: np.ndarray,
    weights: sp.csr_matrix,
    regularization: float,
    alpha: float,
) -> CfVectors:
    """cf vectors of the users at `user_rows` of the core solved from fixed book vectors on
    their rows of `weights` (users × core books)."""
    from bookrec.algorithms.cf import solve_rows
    from bookrec.algorithms.matrix import positions

    at = positions(book_ids, core.book_ids)
    aligned = np.zeros((len(core.book_ids), book_vectors.shape[1]), dtype=np.float32)
    aligned[at >= 0] = book_vectors[at[at >= 0]]
    solved = solve_rows(weights[user_rows], aligned, regularization=regularization, alpha=alpha)
    return CfVectors(core.user_ids[user_rows], solved, core.book_ids, aligned)


def verdict(figures: GateFigures, family: str, tolerance: float) -> str | None:
    """Why the candidate is rejected, or None when it passes: it ranks below popularity (by
    more than two standard errors of the paired per-user differences: noise is no verdict),
    or below the published model by more than `tolerance` (absolute nDCG@k)."""
    from bookrec.algorithms.blending import significant_gain

    ndcg = figures.ndcg
    candidate, popular = ndcg[family], ndcg["popular"]
    per_user = figures.per_user
    if candidate < popular and significant_gain(per_user["popular"], per_user[family], 2.0):
        return f"nDCG {candidate:.4f} is below popularity's {popular:.4f}"
    published = ndcg.get(PUBLISHED)
    if published is not None and candidate < published - tolerance:
        return (
            f"nDCG {candidate:.4f} is below the published vectors' {published:.4f}"
            f" minus the tolerance {tolerance:g}"
        )
    return None
