import numpy as np
import pytest
import scipy.sparse as sp

from bookrec.algorithms.ranking import seen_matrix, top_k, top_k_batched


def reference_top_k(scores: np.ndarray, k: int, exclude: np.ndarray) -> np.ndarray:
    """Full sort per row by (-score, index); excluded items dropped, -1 padding."""
    result = np.full((scores.shape[0], k), -1)
    for row, (values, banned) in enumerate(zip(scores, exclude, strict=True)):
        allowed = np.flatnonzero(~banned & (values > -np.inf))
        ordered = allowed[np.lexsort((allowed, -values[allowed]))][:k]
        result[row, : len(ordered)] = ordered
    return result


def test_top_k_orders_best_first():
    scores = np.array([[0.1, 0.9, 0.5, 0.7], [4.0, 3.0, 2.0, 1.0]])
    assert top_k(scores, 2).tolist() == [[1, 3], [0, 1]]


def test_ties_are_broken_by_lowest_item_index():
    scores = np.array(
        [
            [1, 1, 1, 1, 0],  # more ties than places
            [0, 2, 2, 2, 2],
            [3, 1, 2, 2, 2],  # tie at the k-th place only
        ],
        dtype=float,
    )
    assert top_k(scores, 3).tolist() == [[0, 1, 2], [1, 2, 3], [0, 2, 3]]


def test_many_ties_give_the_lowest_indices_not_argpartition_order():
    scores = np.zeros((3, 5000))
    scores[:, ::7] = 1.0
    expected = np.arange(0, 5000, 7)[:50]
    assert (top_k(scores, 50) == expected).all()


def test_excluded_items_are_never_recommended_and_short_rows_are_padded():
    scores = np.array([[9.0, 8.0, 7.0, 6.0], [1.0, 2.0, 3.0, 4.0]])
    exclude = sp.csr_matrix(np.array([[1, 0, 1, 0], [1, 1, 1, 0]]))
    assert top_k(scores, 3, exclude).tolist() == [[1, 3, -1], [3, -1, -1]]


def test_minus_inf_and_nan_scores_are_never_recommended():
    scores = np.array([[np.nan, -np.inf, 0.5, np.inf]])
    assert top_k(scores, 4).tolist() == [[3, 2, -1, -1]]


def test_k_larger_than_catalogue_pads():
    assert top_k(np.array([[0.2, 0.4]]), 4).tolist() == [[1, 0, -1, -1]]


def test_explicit_zero_in_exclude_still_excludes():
    exclude = sp.csr_matrix((np.array([0.0]), (np.array([0]), np.array([1]))), shape=(1, 3))
    assert top_k(np.array([[1.0, 5.0, 2.0]]), 1, exclude).tolist() == [[2]]


@pytest.mark.parametrize("batch_size", [1, 3, 1024])
def test_top_k_matches_full_sort_on_random_tied_scores(batch_size):
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 4, size=(40, 60)).astype(np.float32)  # many ties
    banned = rng.random((40, 60)) < 0.3
    banned[0, 5:] = True  # fewer allowed items than k
    result = top_k(scores, 8, sp.csr_matrix(banned), batch_size=batch_size)
    np.testing.assert_array_equal(result, reference_top_k(scores, 8, banned))


def test_batched_scoring_of_a_subset_of_users():
    rng = np.random.default_rng(2)
    scores = rng.random((10, 12))
    exclude = sp.csr_matrix(rng.random((10, 12)) < 0.25)
    rows = np.array([7, 2, 9, 0, 4])
    asked, progress = [], []

    def score_fn(user_rows):
        asked.append(len(user_rows))
        return scores[user_rows]

    result = top_k_batched(
        score_fn, rows, 4, exclude, batch_size=2, on_progress=lambda d, t: progress.append((d, t))
    )
    np.testing.assert_array_equal(result, top_k(scores, 4, exclude)[rows])
    assert asked == [2, 2, 1]
    assert progress == [(2, 5), (4, 5), (5, 5)]


def test_scores_are_not_modified():
    scores = np.array([[1.0, np.nan, 3.0]])
    top_k(scores, 2, sp.csr_matrix(np.array([[1, 0, 0]])))
    np.testing.assert_array_equal(scores, [[1.0, np.nan, 3.0]])


def test_integer_scores_are_accepted():
    assert top_k(np.array([[1, 3, 2]]), 2).tolist() == [[1, 2]]


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="k must be"):
        top_k(np.ones((2, 3)), 0)
    with pytest.raises(ValueError, match="2-d"):
        top_k(np.ones(3), 1)
    with pytest.raises(ValueError, match="items"):
        top_k(np.ones((2, 3)), 1, sp.csr_matrix((2, 4)))


def test_seen_matrix_is_binary_and_deduplicated():
    seen = seen_matrix(np.array([0, 0, 1]), np.array([2, 2, 0]), shape=(2, 3))
    assert seen.toarray().tolist() == [[0, 0, 1], [1, 0, 0]]
    assert seen.nnz == 2


@pytest.mark.parametrize("k", [1, 10, 100])
def test_a_large_catalogue_ranks_above_a_sampled_threshold_exactly_as_a_full_sort(k):
    """Past PREFILTER_ITEMS columns: ties, -inf, NaN, rows whose best values the sample
    misses (ranked whole), a row of one repeated value."""
    from bookrec.algorithms.ranking import PREFILTER_ITEMS

    rng = np.random.default_rng(k)
    n_items = PREFILTER_ITEMS * 2
    scores = rng.integers(0, 50_000, size=(12, n_items)).astype(np.float32)
    scores[1] = rng.integers(0, 3, n_items)  # almost all tied
    scores[2] = 7.0  # one value
    scores[3, :] = -np.inf
    scores[3, rng.choice(n_items, k // 2, replace=False)] = 1.0  # fewer finite than k
    scores[4, ::2] = np.nan
    scores[5] = -1.0
    step = max(1, n_items // (k * 64))
    best = np.arange(n_items)[np.arange(n_items) % step != 0][: 3 * k]
    scores[5, best] = 100.0  # the best values all between the sampled columns
    scores[6] = np.arange(n_items, dtype=np.float32)  # ascending: the best at the end
    scores[7] = 0.0  # only the sampled columns stand out: fewer than k above the threshold
    scores[7, ::step] = np.arange(len(scores[7, ::step]), 0, -1)
    banned = rng.random(scores.shape) < 0.2
    result = top_k(scores, k, sp.csr_matrix(banned))
    cleaned = np.where(np.isnan(scores), -np.inf, scores)
    np.testing.assert_array_equal(result, reference_top_k(cleaned, k, banned))


@pytest.mark.parametrize("shape", [(0, 5), (4, 0), (1, 1), (7, 300), (300, 7)])
def test_nonzero_2d_is_numpys_nonzero(shape):
    from bookrec.algorithms.ranking import nonzero_2d

    mask = np.random.default_rng(sum(shape)).random(shape) < 0.3
    rows, columns = nonzero_2d(mask)
    expected_rows, expected_columns = np.nonzero(mask)
    assert np.array_equal(rows, expected_rows) and np.array_equal(columns, expected_columns)
