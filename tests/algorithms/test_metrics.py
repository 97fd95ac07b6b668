import math

import numpy as np
import pytest
import scipy.sparse as sp

from bookrec.algorithms.metrics import (
    average_precision_at_k,
    catalog_coverage,
    evaluate_rankings,
    hit_matrix,
    hit_rate_at_k,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
    relevant_pairs,
)

D2, D3 = 1 / math.log2(3), 1 / math.log2(4)  # discounts of ranks 2 and 3

# One row per case, k = 3, catalogue of 20 items.
RECOMMENDED = np.array(
    [
        [5, 2, 7],  # A: one hit at rank 2 of 2 relevant
        [1, 2, 3],  # B: all hits, 5 relevant (more than k)
        [4, 5, 6],  # C: no hit
        [10, 11, 12],  # D: no relevant items -> not evaluated
        [8, -1, -1],  # E: short list, its only relevant item at rank 1
        [0, 3, 1],  # F: hits at ranks 2 and 3 of 2 relevant
    ]
)
RELEVANT = [[2, 9], [1, 2, 3, 4, 5], [0], [], [8], [1, 3]]
N_ITEMS = 20

EXPECTED = {  # per user A, B, C, E, F; D is NaN everywhere
    "precision": [1 / 3, 1, 0, 1 / 3, 2 / 3],
    "recall": [1 / 2, 3 / 5, 0, 1, 1],
    "ndcg": [D2 / (1 + D2), 1, 0, 1, (D2 + D3) / (1 + D2)],
    "map": [(1 / 2) / 2, 1, 0, 1, (1 / 2 + 2 / 3) / 2],
    "hit_rate": [1, 1, 0, 1, 1],
}
PER_USER = {
    "precision": precision_at_k,
    "recall": recall_at_k,
    "ndcg": ndcg_at_k,
    "map": average_precision_at_k,
    "hit_rate": hit_rate_at_k,
}


def relevant_csr() -> sp.csr_matrix:
    rows = np.repeat(np.arange(len(RELEVANT)), [len(items) for items in RELEVANT])
    columns = np.concatenate([np.array(items, dtype=np.int64) for items in RELEVANT])
    return sp.csr_matrix((np.ones(len(columns)), (rows, columns)), shape=(6, N_ITEMS))


@pytest.mark.parametrize("name", list(PER_USER))
@pytest.mark.parametrize("as_csr", [True, False])
def test_per_user_metrics_match_hand_computed_values(name, as_csr):
    relevant = relevant_csr() if as_csr else [np.array(items) for items in RELEVANT]
    values = PER_USER[name](RECOMMENDED, relevant)
    assert math.isnan(values[3])
    np.testing.assert_allclose(np.delete(values, 3), EXPECTED[name])


def test_evaluate_rankings_averages_over_users_with_relevant_items():
    result = evaluate_rankings(RECOMMENDED, relevant_csr(), N_ITEMS)
    for name, values in EXPECTED.items():
        assert result[name] == pytest.approx(np.mean(values))
    assert result["users"] == 5
    # Items 0..8 appear in the evaluated lists; D's 10, 11, 12 do not count.
    assert result["coverage"] == pytest.approx(9 / 20)


def test_evaluate_rankings_without_evaluable_users_is_nan():
    result = evaluate_rankings(np.array([[1, 2]]), [np.array([], dtype=np.int64)], 5)
    assert result["users"] == 0
    assert all(math.isnan(result[name]) for name in (*EXPECTED, "coverage"))


def test_hit_matrix_ignores_padding_and_items_outside_the_catalogue():
    # Key arithmetic must not let -1 of row 1 match the last item (4) of row 0.
    relevant = sp.csr_matrix(np.array([[0, 0, 0, 0, 1], [0, 0, 0, 0, 0]]))
    hits, n_relevant = hit_matrix(np.array([[4, 7], [-1, -1]]), relevant)
    assert hits.tolist() == [[True, False], [False, False]]
    assert n_relevant.tolist() == [1, 0]


def test_explicit_zeros_and_duplicates_in_relevance():
    relevant = sp.csr_matrix(
        (np.array([1.0, 1.0, 0.0]), (np.array([0, 0, 0]), np.array([2, 2, 3]))), shape=(1, 5)
    )
    assert recall_at_k(np.array([[2, 3]]), relevant).tolist() == [1.0]


def test_ndcg_matches_scikit_learn_on_random_cases():
    from sklearn.metrics import ndcg_score

    rng = np.random.default_rng(0)
    n_users, n_items, k = 50, 30, 7
    truth = (rng.random((n_users, n_items)) < 0.15).astype(float)
    truth[truth.sum(axis=1) == 0, 0] = 1.0
    scores = rng.random((n_users, n_items))
    recommended = np.argsort(-scores, axis=1)[:, :k]
    ours = ndcg_at_k(recommended, sp.csr_matrix(truth))
    theirs = [ndcg_score(truth[[u]], scores[[u]], k=k) for u in range(n_users)]
    np.testing.assert_allclose(ours, theirs)


def test_catalog_coverage():
    assert catalog_coverage(np.array([[0, 1], [1, -1]]), 4) == 0.5
    with pytest.raises(ValueError):
        catalog_coverage(np.array([[0]]), 0)


def test_mismatched_users_are_rejected():
    with pytest.raises(ValueError, match="users"):
        precision_at_k(np.array([[0, 1]]), [np.array([0]), np.array([1])])


def test_relevant_pairs_keeps_test_pairs_unseen_in_training():
    users = np.array([0, 0, 0, 1, 1, 1])
    items = np.array([1, 1, 2, 0, 0, 3])
    test = np.array([False, True, True, True, True, False])
    relevant = relevant_pairs(users, items, test, shape=(3, 4))
    assert relevant.shape == (3, 4)
    # (0, 1) has a training event; (1, 0) appears twice in test but counts once.
    assert relevant.toarray().tolist() == [[0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
