import numpy as np
import pytest
import scipy.sparse as sp

from bookrec.algorithms.cf import gram, solve_rows
from bookrec.algorithms.foldin import neighbour_mean, updated_gram


def _matrix(n_users: int, n_books: int, density: float, seed: int) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    m = sp.random(n_users, n_books, density=density, format="csr", random_state=rng)
    m.data = np.ceil(m.data * 10).astype(np.float32)  # weights 1..10 as the scheme gives
    return m


@pytest.fixture(scope="module")
def model():
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    matrix = _matrix(300, 200, 0.05, 1)
    with threadpool_limits(limits=1, user_api="blas"):
        als = AlternatingLeastSquares(
            factors=16, regularization=2.5, alpha=4.0, iterations=5, random_state=7,
            use_cg=True, num_threads=1,
        )  # fmt: skip
        als.fit(matrix, show_progress=False)
    return als, matrix


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_user_solve_equals_implicit_recalculate_user(model):
    als, _ = model
    new_rows = _matrix(40, 200, 0.08, 2)  # users the model never saw
    new_rows = new_rows[np.diff(new_rows.indptr) > 0]
    expected = als.recalculate_user(np.arange(new_rows.shape[0]), new_rows)
    got = solve_rows(new_rows, als.item_factors, regularization=2.5, alpha=4.0)
    assert _cosine(got, expected).min() >= 0.999
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4)


def test_book_solve_equals_implicit_recalculate_item(model):
    als, matrix = model
    item_users = matrix.T.tocsr()[:30]
    item_users = item_users[np.diff(item_users.indptr) > 0]
    expected = als.recalculate_item(np.arange(item_users.shape[0]), item_users)
    got = solve_rows(item_users, als.user_factors, regularization=2.5, alpha=4.0)
    assert _cosine(got, expected).min() >= 0.999


def test_gram_over_all_rows_when_only_some_are_read(model):
    """A book's readers are a few rows of the users' factors; YᵀY is over all of them."""
    als, matrix = model
    item_users = matrix.T.tocsr()[:5]
    readers = np.unique(item_users.indices)
    full = solve_rows(item_users, als.user_factors, regularization=2.5, alpha=4.0)
    sub = solve_rows(
        item_users[:, readers], als.user_factors[readers], regularization=2.5, alpha=4.0,
        fixed_gram=gram(als.user_factors),
    )  # fmt: skip
    np.testing.assert_allclose(sub, full, rtol=1e-5, atol=1e-6)


def test_updated_gram_equals_recomputed():
    rng = np.random.default_rng(3)
    f = rng.normal(size=(50, 8))
    changed = np.array([3, 10, 11])
    new = f.copy()
    new[changed] = rng.normal(size=(3, 8))
    dropped = np.delete(new, [20], axis=0)
    g = updated_gram(gram(f), f[[*changed, 20]], new[changed])
    np.testing.assert_allclose(g, gram(dropped), atol=1e-10)


def test_row_without_pairs_gets_zeros(model):
    als, _ = model
    rows = sp.csr_matrix(([3.0], ([1], [5])), shape=(2, 200), dtype=np.float32)
    got = solve_rows(rows, als.item_factors, regularization=2.5, alpha=4.0)
    assert not got[0].any() and got[1].any()


def test_neighbour_mean_is_the_two_step_walk_mean():
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    book_readers = sp.csr_matrix([[1.0, 3.0]])  # reader 0 weight 1, reader 1 weight 3
    reader_books = sp.csr_matrix([[2.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    got = neighbour_mean(book_readers, reader_books, vectors)
    # 1/4 of the walk lands on book 0, 3/8 each on books 1 and 2
    np.testing.assert_allclose(got, [[0.25 + 0.375, 0.375 + 0.375]])
    empty = neighbour_mean(sp.csr_matrix((1, 2)), reader_books, vectors)
    assert not empty.any()
