import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from bookrec.algorithms.cf import fit_als

GROUP_USERS, GROUP_BOOKS, BOOKS_PER_USER = 30, 20, 8


def two_groups(seed: int = 0) -> sp.csr_matrix:
    """Users 0-29 read only books 0-19, users 30-59 only books 20-39, 8 books each."""
    rng = np.random.default_rng(seed)
    rows, cols = [], []
    for user in range(2 * GROUP_USERS):
        group = user // GROUP_USERS
        books = rng.choice(GROUP_BOOKS, size=BOOKS_PER_USER, replace=False) + group * GROUP_BOOKS
        rows += [user] * BOOKS_PER_USER
        cols += books.tolist()
    weights = rng.choice([1.0, 2.0, 4.0, 6.0], size=len(rows)).astype(np.float32)
    return sp.csr_matrix((weights, (rows, cols)), shape=(2 * GROUP_USERS, 2 * GROUP_BOOKS))


def test_top_unseen_books_come_from_the_users_own_group():
    matrix = two_groups()
    # Two factors for two planted tastes: within a group the picks are uniform noise, which
    # more factors than that would fit (on data this small) and blur the groups.
    result = fit_als(matrix, factors=2, iterations=15, seed=1)
    assert result.user_factors.shape == (60, 2)
    assert result.item_factors.shape == (40, 2)
    assert result.user_factors.dtype == result.item_factors.dtype == np.float32

    scores = result.user_factors @ result.item_factors.T
    scores[matrix.nonzero()] = -np.inf
    top5 = np.argsort(-scores, axis=1, kind="stable")[:, :5]
    user_group = np.arange(60)[:, None] // GROUP_USERS
    assert (top5 // GROUP_BOOKS == user_group).all()


def test_same_seed_same_vectors_whatever_the_thread_count():
    matrix = two_groups()
    runs = [fit_als(matrix, factors=16, iterations=5, seed=7, threads=t) for t in (2, 2, 1)]
    for other in runs[1:]:
        np.testing.assert_array_equal(runs[0].user_factors, other.user_factors)
        np.testing.assert_array_equal(runs[0].item_factors, other.item_factors)
    different = fit_als(matrix, factors=16, iterations=5, seed=8, threads=2)
    assert not np.array_equal(runs[0].user_factors, different.user_factors)


def test_alpha_scales_the_confidence():
    matrix = two_groups()
    base = fit_als(matrix, factors=8, iterations=3, alpha=2.0)
    doubled = fit_als(matrix * 2, factors=8, iterations=3, alpha=1.0)
    np.testing.assert_allclose(base.user_factors, doubled.user_factors, rtol=1e-5, atol=1e-6)
    assert not np.allclose(base.user_factors, fit_als(matrix, factors=8, iterations=3).user_factors)


def test_reports_every_iteration():
    calls = []
    fit_als(two_groups(), factors=4, iterations=3, on_iteration=lambda i, n: calls.append((i, n)))
    assert calls == [(1, 3), (2, 3), (3, 3)]


def test_limits_blas_threads_so_implicit_does_not_warn(monkeypatch):
    import implicit.utils

    monkeypatch.setattr(implicit.utils, "_checked_blas_config", False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit_als(two_groups(), factors=4, iterations=1)


def test_empty_matrix_is_refused():
    with pytest.raises(ValueError, match="empty"):
        fit_als(sp.csr_matrix((3, 0), dtype=np.float32))
    with pytest.raises(ValueError, match="empty"):
        fit_als(sp.csr_matrix((3, 4), dtype=np.float32))
