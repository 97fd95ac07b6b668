import math

import numpy as np
import pytest
import scipy.sparse as sp

from bookrec.algorithms.matrix import WeightScheme
from bookrec.algorithms.scoring import (
    RRF_OFFSET,
    EmbeddingScorer,
    available,
    cf_scores,
    count_book_events,
    fuse,
    normalised,
    popular_scores,
    popularity,
    popularity_from_counts,
    recent_interactions,
    similar_books,
    standardised,
)
from bookrec.domain import EVENT_CODES, InteractionArrays
from bookrec.models.base import UserBatch
from bookrec.models.cf import CfModel, CfVectors

INF = math.inf
Z3 = math.sqrt(1.5)  # z of 1, 2, 3 is -Z3, 0, Z3
R2 = 1 / math.sqrt(2)


def test_cf_scores_are_dot_products_with_unscorable_books_and_users_at_minus_inf():
    users = np.array([[1.0, 2.0], [np.nan, np.nan]])
    items = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 0.0], [-1.0, 3.0]])
    scores = cf_scores(users, items, item_present=np.array([True, True, False, True]))
    assert scores.dtype == np.float32
    assert scores[0].tolist() == [1.0, 1.5, -INF, 5.0]
    assert scores[1].tolist() == [-INF] * 4


def test_popularity_is_the_weighted_count_per_book():
    weights = sp.csr_matrix(np.array([[2.0, 0.0, 1.0], [4.0, 0.0, 0.0]]))
    assert popularity(weights).tolist() == [6.0, 0.0, 1.0]
    assert popular_scores(np.array([6.0, 0.0, 1.0]), 2).tolist() == [[6, 0, 1], [6, 0, 1]]


def test_popularity_from_counts_weighs_every_event_without_the_pair_cap():
    view, rate, buy = EVENT_CODES["view"], EVENT_CODES["rate"], EVENT_CODES["purchase"]
    interactions = InteractionArrays(
        user_ids=np.array([1, 1, 1, 2, 2, 3, 3]),
        book_ids=np.array([10, 10, 10, 10, 20, 20, 99]),
        events=np.array([buy, buy, rate, rate, view, rate, view], dtype=np.int8),
        ratings=np.array([np.nan, np.nan, 5, 5, np.nan, 1, np.nan], dtype=np.float32),
        timestamps=np.arange(7),
        max_interaction_id=7,
    )
    counts = count_book_events(interactions)
    assert counts.counts.sum() == 7 and counts.max_interaction_id == 7
    assert len(counts.book_ids) == 5  # (10 buy), (10 rate 5), (20 view), (20 rate 1), (99 view)
    # 10: two purchases 12 (no cap of 10 here) + two 5★ 2·6; 20: a view 1 + a 1★ 0; 30: none.
    result = popularity_from_counts(counts, WeightScheme(), np.array([10, 20, 30]))
    assert result.tolist() == [24.0, 1.0, 0.0]
    both = popularity_from_counts(
        type(counts)(*(np.concatenate([a, a]) for a in (counts.book_ids, counts.events,
                     counts.ratings, counts.counts))),
        WeightScheme(view=0.5),
        np.array([10, 20, 30]),
    )  # fmt: skip
    assert both.tolist() == [48.0, 1.0, 0.0]


def test_embedding_scorer_takes_dense_and_sparse_weights_alike():
    vectors = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [0.0, 0.0]], dtype=np.float32)
    scorer = EmbeddingScorer(vectors, np.array([1.0, 5.0, 2.0, 0.0]), prior=0.5)
    weights = np.array([[2.0, 0.0, 1.0, 0.0]], dtype=np.float32)
    assert np.array_equal(scorer.scores(weights), scorer.scores(sp.csr_matrix(weights)))


def test_recent_interactions_keeps_the_window_before_now():
    day = 86_400
    data = InteractionArrays(
        user_ids=np.array([1, 1, 2]),
        book_ids=np.array([1, 2, 3]),
        events=np.zeros(3, dtype=np.int8),
        ratings=np.full(3, np.nan, dtype=np.float32),
        timestamps=np.array([0, 9 * day, 10 * day]),
    )
    assert recent_interactions(data, 2).book_ids.tolist() == [2, 3]
    assert recent_interactions(data, 2, now=5 * day).book_ids.tolist() == []
    assert recent_interactions(data, 100).book_ids.tolist() == [1, 2, 3]


def test_standardised_rows_ignore_minus_inf_and_constant_rows_give_zero():
    z = standardised(np.array([[1.0, 2.0, 3.0, -INF], [5.0, 5.0, 5.0, 5.0], [-INF] * 4]))
    np.testing.assert_allclose(z[0, :3], [-Z3, 0.0, Z3], rtol=1e-6)
    assert z[0, 3] == -INF
    assert z[1].tolist() == [0.0] * 4
    assert z[2].tolist() == [-INF] * 4


# Books: b0 = (1, 0), b1 = (0, 2) (unit (0, 1)), b2 = (1, 1), b3 without a vector.
VECTORS = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [0.0, 0.0]])
# Users: A read b0 and b1 equally, B read b0 only, C only b3 (no vector), D nothing.
WEIGHTS = sp.csr_matrix(
    np.array([[1.0, 1.0, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 4.0], [0.0] * 4])
)


def test_embedding_scores_are_standardised_cosines_to_the_weighted_profile():
    scores = EmbeddingScorer(VECTORS, prior=0.0).scores(WEIGHTS)
    # A: profile (1, 1)/√2, cosines 1/√2, 1/√2, 1 -> z = -1/√2, -1/√2, √2.
    np.testing.assert_allclose(scores[0, :3], [-R2, -R2, math.sqrt(2)], rtol=1e-5)
    # B: profile (1, 0), cosines 1, 0, 1/√2.
    np.testing.assert_allclose(scores[1, :3], standardised(np.array([[1.0, 0.0, R2]]))[0])
    assert scores[0, 3] == scores[1, 3] == -INF  # b3 has no vector
    assert scores[2].tolist() == [-INF] * 4  # C's only book has no vector
    assert scores[3].tolist() == [-INF] * 4  # D has no interactions
    assert available(scores).tolist() == [True, True, False, False]


def test_weights_shape_the_profile():
    heavy_b1 = sp.csr_matrix(np.array([[1.0, 3.0, 0.0, 0.0]]))
    scores = EmbeddingScorer(VECTORS, prior=0.0).scores(heavy_b1)
    assert np.argmax(scores[0]) == 1  # profile (1, 3) is nearest to b1


def test_the_popularity_prior_adds_standardised_log_popularity():
    vectors = VECTORS[:3]
    book_popularity = np.array([0.0, math.e - 1, math.e**2 - 1])  # log1p = 0, 1, 2
    scorer = EmbeddingScorer(vectors, book_popularity, prior=2.0)
    scores = scorer.scores(WEIGHTS[:1, :3])
    np.testing.assert_allclose(scores[0], [-R2 - 2 * Z3, -R2, math.sqrt(2) + 2 * Z3], rtol=1e-5)


def test_normalisations_for_fusion():
    scores = np.array([[1.0, 3.0, 2.0, -INF]])
    np.testing.assert_allclose(normalised(scores, "minmax"), [[0.0, 1.0, 0.5, 0.0]])
    rrf = 1 / (RRF_OFFSET + np.array([3.0, 1.0, 2.0]))
    np.testing.assert_allclose(normalised(scores, "rrf")[0, :3], rrf, rtol=1e-6)
    assert normalised(scores, "rrf")[0, 3] == 0.0
    # zscore: -inf becomes the row's lowest z.
    np.testing.assert_allclose(normalised(scores, "zscore"), [[-Z3, Z3, 0.0, -Z3]], rtol=1e-6)
    assert normalised(np.array([[-INF, -INF]]), "zscore").tolist() == [[0.0, 0.0]]
    with pytest.raises(ValueError, match="unknown fusion"):
        normalised(scores, "mean")  # type: ignore[arg-type]


@pytest.mark.parametrize("method", ["zscore", "minmax", "rrf"])
def test_normalised_in_row_blocks_equals_the_whole_matrix_at_once(monkeypatch, method):
    from bookrec.algorithms import scoring

    rng = np.random.default_rng(4)
    scores = rng.normal(size=(37, 50)).astype(np.float32)
    scores[rng.random(scores.shape) < 0.3] = -INF
    scores[5] = -INF  # a row without a finite score
    scores[9] = 2.5  # a constant row
    whole = normalised(scores, method)
    whole_z = scoring.standardised(scores)
    monkeypatch.setattr(scoring, "ROW_BLOCK_CELLS", 3 * 50)  # blocks of 3 rows, 13 blocks
    blocks = normalised(scores, method)
    assert blocks.dtype == np.float32 and np.array_equal(blocks, whole)
    assert np.array_equal(scoring.standardised(scores), whole_z)


@pytest.mark.parametrize("block_rows", [1, 3, 100])
def test_standardised_at_columns_equals_normalised_at_those_columns(monkeypatch, block_rows):
    from bookrec.algorithms import scoring

    rng = np.random.default_rng(8)
    scores = (rng.normal(size=(37, 50)) * 3 + 1).astype(np.float32)
    scores[rng.random(scores.shape) < 0.3] = -INF
    scores[rng.random(scores.shape) < 0.05] = np.nan
    scores[5] = -INF  # a row without a finite score
    scores[9] = 2.5  # a constant row
    scores[11, :49] = -INF  # one finite score
    columns = rng.integers(0, 50, size=(37, 12))
    expected = np.take_along_axis(normalised(scores), columns, 1)
    monkeypatch.setattr(scoring, "ROW_BLOCK_CELLS", block_rows * 50)
    got = scoring.standardised_at(scores, columns)
    assert got.dtype == np.float32 and np.array_equal(got, expected)
    assert (got[5] == 0).all() and (got[9] == 0).all()


@pytest.mark.parametrize("block_rows", [1, 3, 100])
@pytest.mark.parametrize("layout", ["C", "F", "strided"])
def test_standardised_at_of_all_finite_scores_equals_normalised(monkeypatch, block_rows, layout):
    """Rows without a non-finite score take a shorter path: the same float32 numbers."""
    from bookrec.algorithms import scoring

    rng = np.random.default_rng(9)
    scores = (rng.normal(size=(37, 100)) * 3 + 1).astype(np.float32)
    scores[9] = 2.5  # a constant row
    scores = {
        "C": scores[:, :50].copy(), "F": np.asfortranarray(scores[:, :50]),
        "strided": scores[:, ::2],
    }[layout]  # fmt: skip
    columns = rng.integers(0, 50, size=(37, 12))
    expected = np.take_along_axis(normalised(np.ascontiguousarray(scores)), columns, 1)
    monkeypatch.setattr(scoring, "ROW_BLOCK_CELLS", block_rows * 50)
    moments = scoring.row_moments(scores)
    got = moments.z_at(scores, columns)
    assert moments.all_finite and moments.served.all()
    assert got.dtype == np.float32 and np.array_equal(got, expected)
    assert (got[9] == 0).all()


WEIGHTS_HYBRID = {"cf": 1.0, "gnn": 0.5, "popular": 0.1}


def test_hybrid_sums_weighted_z_scores_of_the_strategies_serving_each_user():
    cf = np.array([[1.0, 2.0, 3.0], [-INF] * 3, [-INF] * 3])
    gnn = np.array([[1.0, 1.0, -INF], [1.0, 2.0, 3.0], [-INF] * 3])
    popular = np.array([[3.0, 2.0, 1.0]] * 3)
    fused = fuse({"cf": cf, "gnn": gnn, "popular": popular}, WEIGHTS_HYBRID)
    # User 0: cf z (-Z3, 0, Z3); gnn z (0, 0) with b2 at its lowest z 0; popular z (Z3, 0, -Z3).
    np.testing.assert_allclose(fused[0], [-0.9 * Z3, 0.0, 0.9 * Z3], rtol=1e-5)
    # User 1 has no cf vector: gnn and popular serve it.
    np.testing.assert_allclose(fused[1], [-0.4 * Z3, 0.0, 0.4 * Z3], rtol=1e-5)
    # User 2 has no interactions: popular alone.
    np.testing.assert_allclose(fused[2], [0.1 * Z3, 0.0, -0.1 * Z3], rtol=1e-5)


def test_hybrid_falls_back_to_popular_even_when_its_weight_is_zero():
    cf = np.array([[-INF, -INF]])
    popular = np.array([[1.0, 3.0]])
    fused = fuse({"cf": cf, "popular": popular}, {"cf": 1.0, "popular": 0.0})
    assert np.argmax(fused[0]) == 1 and np.isfinite(fused).all()


def test_hybrid_leaves_a_book_no_serving_strategy_scored_at_minus_inf():
    cf = np.array([[-INF, -INF, -INF]])
    gnn = np.array([[1.0, 2.0, -INF]])
    fused = fuse({"cf": cf, "gnn": gnn}, WEIGHTS_HYBRID)
    assert fused[0, 2] == -INF and np.isfinite(fused[0, :2]).all()
    nobody = fuse({"cf": cf}, WEIGHTS_HYBRID)
    assert nobody.tolist() == [[-INF] * 3]


def test_hybrid_parts_must_share_one_shape():
    with pytest.raises(ValueError, match="one shape"):
        fuse({"cf": np.zeros((1, 2)), "gnn": np.zeros((1, 3))}, WEIGHTS_HYBRID)


def test_similar_books_by_cosine_without_itself_and_books_without_vector():
    books, cosines = similar_books(VECTORS, 0, k=5)
    assert books.tolist() == [2, 1]
    np.testing.assert_allclose(cosines, [R2, 0.0], atol=1e-6)
    with pytest.raises(ValueError, match="no vector"):
        similar_books(VECTORS, 3)


# --------------------------------------------------------------------------- row blocks


def _former_embedding_scores(aligned, weights, popularity, prior):
    """The formula as it was computed before row blocks: unit vectors of the whole aligned
    catalogue, the profile over every column."""
    norms = np.linalg.norm(aligned, axis=1, keepdims=True)
    unit = np.divide(aligned, norms, out=np.zeros_like(aligned), where=norms > 0)
    profile = weights @ unit
    profile_norms = np.linalg.norm(profile, axis=1, keepdims=True)
    profile = np.divide(profile, profile_norms, out=np.zeros_like(profile), where=profile_norms > 0)
    cosine = (profile @ unit.T).astype(np.float32)
    cosine[:, norms[:, 0] == 0] = -np.inf
    cosine[profile_norms[:, 0] == 0] = -np.inf
    return standardised(cosine) + prior * standardised(np.log1p(popularity)[None, :])[0]


@pytest.mark.parametrize("cuts", [(), (7, 30), (1, 2, 49)])
def test_scores_from_row_blocks_equal_the_former_whole_catalogue_formulas(monkeypatch, cuts):
    import bookrec.algorithms.scoring as scoring

    monkeypatch.setattr(scoring, "ROWS_PER_PIECE", 5)
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((50, 6)).astype(np.float32)
    vectors[[4, 17]] = 0  # books without a vector
    columns = np.sort(rng.choice(60, 50, replace=False))  # 10 catalogue books have no row
    weights = np.zeros((3, 60), dtype=np.float32)
    weights[0, columns[[1, 5, 30]]] = [1, 2, 3]
    weights[1, columns[4]] = 1  # only a zero vector: no profile
    weights[2, np.setdiff1d(np.arange(60), columns)[:2]] = 1  # only books without rows
    popularity = rng.random(60) * 10
    blocks = np.split(vectors, list(cuts))
    aligned = np.zeros((60, 6), dtype=np.float32)
    aligned[columns] = vectors

    scorer = EmbeddingScorer(blocks, popularity, 1.5, columns=columns, n_books=60)
    got = scorer.scores(weights)
    np.testing.assert_allclose(got, _former_embedding_scores(aligned, weights, popularity, 1.5),
                               rtol=1e-5, atol=1e-5)  # fmt: skip
    assert np.isneginf(got[1:]).all()
    assert np.array_equal(scorer.scores(weights), got)  # again, from the pieces it kept

    # Rows not in the catalogue (-1) before consecutive columns, and rows in their own order.
    ordered = np.concatenate([[-1, -1], np.arange(48)])
    in_order = np.zeros((48, 6), dtype=np.float32)
    in_order[:] = vectors[2:]
    some = np.zeros((2, 48), dtype=np.float32)
    some[0, [3, 9]] = 1
    some[1, 20] = 2
    for scorer_columns in (ordered, None):
        rows = vectors if scorer_columns is not None else in_order
        got = EmbeddingScorer(np.split(rows, [7]), popularity[:48], 1.5, columns=scorer_columns,
                              n_books=48).scores(some)  # fmt: skip
        np.testing.assert_allclose(got, _former_embedding_scores(in_order, some,
                                   popularity[:48], 1.5), rtol=1e-5, atol=1e-5)  # fmt: skip

    users = rng.standard_normal((2, 6)).astype(np.float32)
    present = np.zeros(60, dtype=bool)
    present[columns] = True
    want = cf_scores(users, aligned, present)
    vectors_of_cf = CfVectors(np.array([1, 2]), users, columns + 100, tuple(blocks))
    model = CfModel(vectors_of_cf, np.arange(60) + 100)
    got_cf = model.scores(UserBatch(np.array([1, 2]), weights[:2]))
    np.testing.assert_allclose(got_cf, want, rtol=1e-6, atol=1e-6)

    norms = np.linalg.norm(vectors, axis=1)
    former = vectors @ vectors[9] / np.where(norms > 0, norms, 1.0) / norms[9]
    former[norms == 0] = -np.inf
    former[9] = -np.inf
    best = np.lexsort((np.arange(50), -former))[:8]
    block_rows, cosines = similar_books(blocks, 9, k=8)
    np.testing.assert_array_equal(block_rows, best)
    np.testing.assert_allclose(cosines, former[best], rtol=1e-6)
