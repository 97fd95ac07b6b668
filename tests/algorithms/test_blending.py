"""Learnt fusion weights: never below the best part on validation, 0 for a useless part."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from bookrec.algorithms.blending import candidate_scores, fit_weights, fused_ndcg
from bookrec.algorithms.split import hold_out_entries


def _problem(n_users: int = 600, n_books: int = 400, seed: int = 0):
    """Relevant books, a strong and a weak informative strategy, noise, and popularity."""
    rng = np.random.default_rng(seed)
    relevant = sp.random(n_users, n_books, density=0.02, random_state=seed, format="csr")
    relevant.data[:] = 1
    truth = relevant.toarray()
    parts = {
        "cf": truth * 2.0 + rng.normal(size=truth.shape),
        "gnn": truth * 1.0 + rng.normal(size=truth.shape),
        "content": rng.normal(size=truth.shape),  # useless
        "popular": np.tile(rng.random(n_books), (n_users, 1)),
    }
    exclude = sp.csr_matrix((n_users, n_books))
    return parts, relevant, exclude


def _candidates(parts, relevant, exclude):
    return candidate_scores(lambda rows: {n: s[rows] for n, s in parts.items()}, relevant, exclude)


def test_useless_strategy_gets_weight_zero_and_fusion_beats_best_part():
    parts, relevant, exclude = _problem()
    candidates = _candidates(parts, relevant, exclude)
    fit = fit_weights(candidates, k=10)
    assert fit.weights["content"] == 0.0
    assert fit.weights["cf"] == 1.0  # the best single part anchors the fusion
    assert fit.weights["gnn"] > 0  # informative and independent noise: it helps
    assert fit.fused >= max(fit.single.values())
    assert fit.single["cf"] > fit.single["gnn"] > fit.single["content"]


def test_only_noise_beside_the_best_part_leaves_the_best_part_alone():
    parts, relevant, exclude = _problem(seed=3)
    noise_only = {"cf": parts["cf"], "content": parts["content"], "popular": parts["popular"]}
    fit = fit_weights(_candidates(noise_only, relevant, exclude), k=10)
    assert fit.weights == {"cf": 1.0, "content": 0.0, "popular": 0.0}
    assert fit.fused == fit.single["cf"]


def test_candidates_do_not_depend_on_the_batch_of_users_scored_at_once():
    parts, relevant, exclude = _problem(n_users=300, seed=2)

    def score(rows):
        return {n: s[rows] for n, s in parts.items()}

    default = candidate_scores(score, relevant, exclude)
    small = candidate_scores(score, relevant, exclude, batch_size=7)
    for field in ("z", "served", "hits", "n_relevant"):
        assert np.array_equal(getattr(default, field), getattr(small, field)), field


def test_fused_ndcg_of_one_part_matches_the_exact_metric():
    from bookrec.algorithms.metrics import ndcg_at_k
    from bookrec.algorithms.ranking import top_k

    parts, relevant, exclude = _problem(n_users=50, seed=5)
    candidates = _candidates(parts, relevant, exclude)
    approx = fused_ndcg(candidates, {"cf": 1.0}, 10)
    users = np.flatnonzero(np.diff(relevant.indptr) > 0)
    exact = ndcg_at_k(top_k(parts["cf"][users].astype(np.float32), 10), relevant[users])
    np.testing.assert_allclose(approx, exact, atol=1e-6)


IDS = (np.arange(300) * 7, np.arange(80))


def test_hold_out_entries_never_keeps_a_held_entry_in_train():
    rng = np.random.default_rng(1)
    matrix = sp.random(300, 80, density=0.1, random_state=1, format="csr", dtype=np.float32)
    matrix.data[:] = rng.random(matrix.nnz) + 0.5
    split = hold_out_entries(matrix, *IDS, n_users=50, max_share=0.1, seed=3)
    assert len(split.rows) == min(50, int(0.1 * np.count_nonzero(np.diff(matrix.indptr) >= 3)))
    assert split.train.multiply(split.held).nnz == 0
    assert (split.train + split.held != matrix).nnz == 0
    assert set(np.unique(split.held.nonzero()[0])) == set(split.rows.tolist())
    again = hold_out_entries(matrix, *IDS, n_users=50, max_share=0.1, seed=3)
    assert (again.held != split.held).nnz == 0


def test_candidates_among_tied_scores_are_the_lowest_books_as_serving_ranks_them():
    n_books = 300
    popular = np.zeros((4, n_books))
    popular[:, :5] = 10.0  # five clear leaders, then 295 books tied for the last 95 places
    relevant = np.zeros((4, n_books), dtype=np.int8)
    relevant[[0, 1, 2, 3], [99, 100, 3, 250]] = 1
    candidates = candidate_scores(
        lambda rows: {"popular": popular[rows]}, sp.csr_matrix(relevant),
        sp.csr_matrix((4, n_books)),
    )  # fmt: skip
    assert (np.isfinite(candidates.z[0]).sum(axis=1) == 100).all()
    assert candidates.hits.any(axis=1).tolist() == [True, False, True, False]


def test_a_strategy_given_as_one_broadcast_row_has_the_candidates_of_its_dense_copy():
    rng = np.random.default_rng(4)
    n_users, n_books = 90, 700
    row = rng.integers(0, 40, n_books).astype(np.float32)  # many ties
    row[rng.choice(n_books, 30, replace=False)] = -np.inf
    row[rng.choice(n_books, 5, replace=False)] = np.nan
    relevant = sp.random(n_users, n_books, density=0.01, random_state=4, format="csr")
    relevant.data[:] = 1
    exclude = sp.random(n_users, n_books, density=0.2, random_state=5, format="lil")  # seen
    exclude[0, :] = 1.0  # a user who has seen everything
    exclude = sp.csr_matrix(exclude)
    cf = rng.normal(size=(n_users, n_books)).astype(np.float32)

    def score(broadcast: bool):
        def parts(rows):
            popular = np.broadcast_to(row, (len(rows), n_books))
            return {"cf": cf[rows], "popular": popular if broadcast else popular.copy()}

        return parts

    one_row = candidate_scores(score(True), relevant, exclude, batch_size=16)
    dense = candidate_scores(score(False), relevant, exclude, batch_size=16)
    for field in ("z", "served", "hits", "n_relevant"):
        assert np.array_equal(getattr(one_row, field), getattr(dense, field)), field
    assert np.isfinite(dense.z[1]).any()  # the popular part has candidates to compare


def test_all_finite_scores_give_the_candidates_of_the_general_path(monkeypatch):
    """Scores without -inf or NaN are masked and standardised by a shorter path: it must give
    the same candidates, z-scores and hits as the general one."""
    from bookrec.algorithms import scoring

    rng = np.random.default_rng(11)
    n_users, n_books = 120, 900
    relevant = sp.random(n_users, n_books, density=0.01, random_state=11, format="csr")
    relevant.data[:] = 1
    exclude = sp.random(n_users, n_books, density=0.05, random_state=12, format="csr")
    cf = rng.normal(size=(n_users, n_books)).astype(np.float32)  # all finite
    gnn = rng.normal(size=(n_users, n_books)).astype(np.float32)
    gnn[rng.random(gnn.shape) < 0.2] = -np.inf  # the general path
    row = rng.random(n_books).astype(np.float32)

    def score(rows):
        popular = np.broadcast_to(row, (len(rows), n_books))
        return {"cf": cf[rows], "gnn": gnn[rows], "popular": popular}

    short = candidate_scores(score, relevant, exclude, batch_size=32)
    general = scoring.row_moments

    def without_shortcut(scores):
        moments = general(scores)
        if not moments.all_finite:
            return moments
        finite = np.isfinite(scores[:1] if scoring.is_one_row(scores) else scores)
        return scoring.RowMoments(
            moments.served, *scoring._row_moments(scores, finite)[1:], all_finite=False
        )

    monkeypatch.setattr(scoring, "row_moments", without_shortcut)
    long = candidate_scores(score, relevant, exclude, batch_size=32)
    for field in ("z", "served", "hits", "n_relevant"):
        assert np.array_equal(getattr(short, field), getattr(long, field)), field
    assert np.isfinite(short.z[0]).sum() > n_users * 50  # cf had its candidates
