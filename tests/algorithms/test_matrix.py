import itertools

import numpy as np
import pytest
import scipy.sparse as sp

from bookrec.algorithms.matrix import (
    InteractionMatrix,
    WeightScheme,
    build_matrix,
    event_weights,
    k_core,
    weight_row,
)
from bookrec.domain import EVENT_CODES, InteractionArrays

DAY = 86_400
NO = float("nan")


def arrays(rows: list[tuple[int, int, str, float, int]]) -> InteractionArrays:
    """InteractionArrays from (user, book, event, rating, timestamp) tuples."""
    users, books, events, ratings, times = zip(*rows, strict=True)
    return InteractionArrays(
        user_ids=np.array(users, dtype=np.int64),
        book_ids=np.array(books, dtype=np.int64),
        events=np.array([EVENT_CODES[e] for e in events], dtype=np.int8),
        ratings=np.array(ratings, dtype=np.float32),
        timestamps=np.array(times, dtype=np.int64),
    )


def dense(m: InteractionMatrix) -> dict[tuple[int, int], float]:
    """{(user id, book id): weight} of the nonzero cells."""
    coo = m.matrix.tocoo()
    return {
        (int(m.user_ids[r]), int(m.book_ids[c])): float(v)
        for r, c, v in zip(coo.row, coo.col, coo.data, strict=True)
    }


def test_event_weights_follow_the_default_scheme():
    events = np.array([EVENT_CODES[e] for e in ["view", "click", "like", "purchase"]] + [3] * 7)
    ratings = np.array([NO] * 4 + [1, 2, 3, 4, 5, 4.5, NO], dtype=np.float32)
    weights = event_weights(events, ratings, np.zeros(11, dtype=np.int64), WeightScheme())
    assert weights.dtype == np.float32
    # view, click, like, purchase; then 1★ 2★ 3★ 4★ 5★ 4.5★ and a rate without a rating
    assert weights.tolist() == [1, 2, 4, 6, 0, 0, 2, 4, 6, 5, 0]


def test_event_weights_decay_by_half_life():
    scheme = WeightScheme(half_life_days=10)
    now = 100 * DAY
    times = np.array([now, now - 10 * DAY, now - 20 * DAY, now + 5 * DAY])
    events = np.full(4, EVENT_CODES["like"])
    weights = event_weights(events, np.full(4, NO), times, scheme, now)
    # age 0, one half-life, two half-lives, in the future (not decayed)
    np.testing.assert_allclose(weights, [4, 2, 1, 4], rtol=1e-6)


def test_event_weights_reject_unknown_codes_and_missing_now():
    with pytest.raises(ValueError, match="event codes"):
        event_weights(np.array([5]), np.array([NO]), np.array([0]), WeightScheme())
    with pytest.raises(ValueError, match="now"):
        event_weights(np.array([0]), np.array([NO]), np.array([0]), WeightScheme(half_life_days=1))


def test_weight_scheme_rejects_nonsense():
    with pytest.raises(ValueError):
        WeightScheme(like=-1)
    with pytest.raises(ValueError):
        WeightScheme(cap=0)
    with pytest.raises(ValueError):
        WeightScheme(half_life_days=0)


def test_build_matrix_sums_events_keeps_latest_rating_and_caps():
    m = build_matrix(
        arrays(
            [
                (1, 100, "view", NO, 10),
                (1, 100, "click", NO, 20),  # 1 + 2 = 3
                (1, 200, "rate", 5, 100),
                (1, 200, "rate", 2, 200),  # re-rated 2★ later: 0
                (1, 200, "view", NO, 50),  # ... but the view still counts: 1
                (2, 100, "rate", 3, 300),
                (2, 100, "rate", 5, 100),  # older, listed later: the 3★ counts: 2
                (2, 300, "purchase", NO, 1),
                (2, 300, "purchase", NO, 2),  # 6 + 6 = 12, capped at 10
                (3, 300, "rate", 1, 5),  # only a 1★: user 3 is dropped
                (2, 400, "rate", 4, 7),
                (2, 400, "rate", 5, 7),  # same second: the later row wins: 6
            ]
        )
    )
    assert dense(m) == {(1, 100): 3, (1, 200): 1, (2, 100): 2, (2, 300): 10, (2, 400): 6}
    assert m.user_ids.tolist() == [1, 2]
    assert m.book_ids.tolist() == [100, 200, 300, 400]
    assert m.matrix.dtype == np.float32
    assert isinstance(m.matrix, sp.csr_matrix)
    assert m.matrix.has_canonical_format


def test_weight_row_is_the_users_row_of_build_matrix():
    history = [
        (2, 100, "rate", 3, 300),
        (2, 100, "rate", 5, 100),
        (2, 300, "purchase", NO, 1),
        (2, 300, "purchase", NO, 2),
        (2, 400, "rate", 4, 7),
        (2, 400, "rate", 5, 7),
        (2, 500, "view", NO, 3),  # a book outside the catalogue: ignored
        (2, 200, "view", NO, 3 * DAY),
    ]
    books = np.array([100, 200, 300, 400, 600])
    for scheme in (WeightScheme(), WeightScheme(half_life_days=1.0, cap=7.0)):
        row = weight_row(arrays(history), books, scheme)
        expected = build_matrix(arrays(history), scheme, user_ids=np.array([2]), book_ids=books)
        assert row.dtype == np.float32
        assert np.array_equal(row, expected.matrix.toarray()[0])
    assert weight_row(arrays(history), books).tolist() == [2, 1, 10, 6, 0]
    with pytest.raises(ValueError, match="one user"):
        weight_row(arrays([(1, 100, "view", NO, 1), (2, 100, "view", NO, 1)]), books)


def test_loading_ratings_twice_changes_nothing_but_events_accumulate():
    once = [(1, 100, "rate", 4, 10), (1, 200, "like", NO, 10), (2, 200, "rate", 5, 10)]
    m1, m2 = build_matrix(arrays(once)), build_matrix(arrays(once + once))
    assert dense(m1) == {(1, 100): 4, (1, 200): 4, (2, 200): 6}
    assert dense(m2) == {(1, 100): 4, (1, 200): 8, (2, 200): 6}


def test_build_matrix_decays_relative_to_the_newest_interaction():
    data = arrays(
        [
            (1, 100, "like", NO, 0),  # 10 days before the newest: 4 * 0.5
            (1, 100, "view", NO, 10 * DAY),  # the newest: 1
            (2, 100, "rate", 5, 0),  # 6 * 0.5
        ]
    )
    scheme = WeightScheme(half_life_days=10)
    assert dense(build_matrix(data, scheme)) == pytest.approx({(1, 100): 3, (2, 100): 3})
    later = build_matrix(data, scheme, now=20 * DAY)
    assert dense(later) == pytest.approx({(1, 100): 1.5, (2, 100): 1.5})


def test_build_matrix_on_fixed_ids_keeps_empty_rows_and_ignores_others():
    data = arrays([(1, 100, "view", NO, 0), (9, 100, "view", NO, 0), (1, 900, "like", NO, 0)])
    m = build_matrix(data, user_ids=np.array([2, 1]), book_ids=np.array([200, 100]))
    assert m.user_ids.tolist() == [1, 2]
    assert m.book_ids.tolist() == [100, 200]
    assert m.matrix.toarray().tolist() == [[1, 0], [0, 0]]
    # Fixing only the users: the books are those with weight left among these users.
    data = arrays([(1, 100, "view", NO, 0), (1, 200, "rate", 1, 0), (9, 300, "view", NO, 0)])
    m = build_matrix(data, user_ids=np.array([1, 2]))
    assert (m.user_ids.tolist(), m.book_ids.tolist()) == ([1, 2], [100])


def test_build_matrix_indexes_far_apart_ids():
    far = 2**40
    m = build_matrix(arrays([(far, 5, "view", NO, 0), (3, far, "like", NO, 0)]))
    assert m.user_ids.tolist() == [3, far]
    assert m.book_ids.tolist() == [5, far]
    assert dense(m) == {(far, 5): 1, (3, far): 4}


def test_build_matrix_of_nothing_is_empty():
    empty = InteractionArrays(
        *(np.array([], dtype=t) for t in (np.int64, np.int64, np.int8, np.float32, np.int64))
    )
    m = build_matrix(empty, WeightScheme(half_life_days=30))
    assert m.shape == (0, 0)
    assert m.user_ids.size == 0 and m.book_ids.size == 0


def test_id_lookups():
    m = build_matrix(arrays([(7, 300, "view", NO, 0), (5, 100, "view", NO, 0)]))
    assert (m.user_index(5), m.user_index(7), m.book_index(300)) == (0, 1, 1)
    with pytest.raises(KeyError):
        m.user_index(6)
    assert m.user_rows(np.array([7, 6, 5, 99])).tolist() == [1, -1, 0, -1]
    assert m.book_columns(np.array([100, 0])).tolist() == [0, -1]


# The k-core example, min 2 per user and 2 per book (x = interaction):
#
#          b100 b200 b300 b400
#   u10     x    x
#   u20     x    x    x
#   u30               x    x
#   u40                    x
#
# u40 has 1 book -> dropped; then b400 has only u30 -> dropped; then u30 has only b300 ->
# dropped; then b300 has only u20 -> dropped. u20 keeps b100 and b200: the 2-core is
# {u10, u20} x {b100, b200}.
K_CORE_EXAMPLE = [
    (10, 100),
    (10, 200),
    (20, 100),
    (20, 200),
    (20, 300),
    (30, 300),
    (30, 400),
    (40, 400),
]


def example_matrix() -> InteractionMatrix:
    return build_matrix(arrays([(u, b, "click", NO, 0) for u, b in K_CORE_EXAMPLE]))


def test_k_core_cascades_until_both_thresholds_hold():
    core = k_core(example_matrix(), 2, 2)
    assert core.user_ids.tolist() == [10, 20]
    assert core.book_ids.tolist() == [100, 200]
    assert core.matrix.toarray().tolist() == [[2, 2], [2, 2]]


def test_k_core_thresholds_apply_separately_to_users_and_books():
    # Users need 3 books: only u20; then every book has 1 user, which is enough.
    core = k_core(example_matrix(), 3, 1)
    assert core.user_ids.tolist() == [20]
    assert core.book_ids.tolist() == [100, 200, 300]
    # Books need 1 user, users 1 book: nothing goes.
    assert k_core(example_matrix(), 1, 1).nnz == len(K_CORE_EXAMPLE)


def test_k_core_can_empty_the_matrix():
    core = k_core(example_matrix(), 4, 1)
    assert core.shape == (0, 0)
    assert core.user_ids.size == 0 and core.book_ids.size == 0


def test_k_core_ignores_explicit_zeros():
    matrix = sp.csr_matrix(np.array([[1, 1], [1, 0]], dtype=np.float32))
    matrix.data[:] = [1, 0, 1]  # (u1, b200) becomes an explicit zero: b200 has no reader
    m = InteractionMatrix(matrix, np.array([1, 2]), np.array([100, 200]))
    core = k_core(m, 1, 1)
    assert core.user_ids.tolist() == [1, 2]
    assert core.book_ids.tolist() == [100]


# -- the streaming builder -------------------------------------------------------------------


def reference_build_matrix(interactions, scheme=None, now=None, *, user_ids=None, book_ids=None):
    """build_matrix as it was before MatrixBuilder (all interactions in one sparse sum): the
    oracle of the streamed and the new one-shot matrices."""
    from bookrec.algorithms.matrix import _drop_empty, _index, _superseded_ratings, _weights

    scheme = scheme or WeightScheme()
    timestamps, weights = _weights(interactions, scheme, now)
    users, rows = _index(np.asarray(interactions.user_ids, dtype=np.int64), user_ids)
    books, cols = _index(np.asarray(interactions.book_ids, dtype=np.int64), book_ids)
    known = (rows >= 0) & (cols >= 0)
    pair = rows.astype(np.int64) * len(books) + cols
    weights[_superseded_ratings(interactions.events, timestamps, pair, known)] = 0.0
    keep = known & (weights > 0)
    coo = sp.coo_matrix((weights[keep], (rows[keep], cols[keep])), shape=(len(users), len(books)))
    matrix = coo.tocsr()
    matrix.sum_duplicates()
    np.minimum(matrix.data, scheme.cap, out=matrix.data)
    result = InteractionMatrix(matrix.astype(np.float32), users, books)
    return _drop_empty(result, rows=user_ids is None, columns=book_ids is None)


def random_interactions(seed: int, n: int, users: int = 30, books: int = 20) -> InteractionArrays:
    """Few users and books, so that pairs repeat; ratings (some fractional, some missing) on
    a few distinct seconds, so that a pair's ratings tie; two years of timestamps."""
    rng = np.random.default_rng(seed)
    events = rng.choice(5, size=n, p=[0.3, 0.2, 0.1, 0.3, 0.1]).astype(np.int8)
    ratings = rng.choice([1, 2, 3, 4, 5, 4.5, np.nan], size=n).astype(np.float32)
    ratings[events != EVENT_CODES["rate"]] = np.nan
    times = rng.choice([0, DAY, 400 * DAY, 730 * DAY], size=n) + 1_700_000_000
    return InteractionArrays(
        user_ids=1 + rng.integers(0, users, n).astype(np.int32),
        book_ids=1 + rng.integers(0, books, n).astype(np.int32),
        events=events,
        ratings=ratings,
        timestamps=times.astype(np.int64),
    )


def split(data: InteractionArrays, bounds: list[int]) -> list[InteractionArrays]:
    edges = [0, *bounds, len(data)]
    columns = (data.user_ids, data.book_ids, data.events, data.ratings, data.timestamps)
    return [
        InteractionArrays(*(np.asarray(column)[a:b] for column in columns))
        for a, b in itertools.pairwise(edges)
    ]


def assert_same_matrix(got: InteractionMatrix, expected: InteractionMatrix) -> None:
    assert got.user_ids.tolist() == expected.user_ids.tolist()
    assert got.book_ids.tolist() == expected.book_ids.tolist()
    assert got.matrix.dtype == expected.matrix.dtype == np.float32
    assert got.matrix.has_canonical_format
    for part in ("indptr", "indices", "data"):
        assert np.array_equal(getattr(got.matrix, part), getattr(expected.matrix, part)), part


SCHEMES = [WeightScheme(), WeightScheme(half_life_days=30.0), WeightScheme(cap=3.0, like=2.5)]


@pytest.mark.parametrize("scheme", SCHEMES, ids=["default", "decay", "cap 3"])
@pytest.mark.parametrize("chunk", [1, 7, 64, 10_000])
def test_matrix_of_chunks_is_the_one_shot_matrix_exactly(scheme, chunk):
    from bookrec.algorithms.matrix import matrix_of_chunks

    for seed in range(4):
        data = random_interactions(seed, 600)
        now = float(data.timestamps.max())
        expected = reference_build_matrix(data, scheme)
        chunks = split(data, list(range(chunk, len(data), chunk)))
        assert_same_matrix(matrix_of_chunks(chunks, scheme, now), expected)
        assert_same_matrix(build_matrix(data, scheme), expected)


def test_a_later_chunk_supersedes_a_rating_even_in_the_same_second():
    from bookrec.algorithms.matrix import matrix_of_chunks

    data = arrays(
        [
            (1, 100, "rate", 5, 10),
            (1, 100, "view", NO, 3),
            (1, 200, "rate", 4, 20),  # chunk boundary inside both pairs
            (1, 100, "rate", 1, 10),  # same second, later row: the 1★ counts (0)
            (1, 200, "rate", 2, 5),  # an older rating, later row: the 4★ still counts
            (2, 100, "rate", 3, 1),
        ]
    )
    expected = {(1, 100): 1, (1, 200): 4, (2, 100): 2}
    for bounds in ([], [1], [2], [3], [1, 2, 3, 4, 5]):
        chunks = split(data, bounds)
        assert dense(matrix_of_chunks(chunks)) == expected
    assert dense(reference_build_matrix(data)) == expected


def test_the_one_shot_matrix_keeps_its_options_exactly():
    for seed in range(3):
        data = random_interactions(seed, 400)
        for kwargs in (
            {"user_ids": np.array([3, 1, 2, 99])},
            {"book_ids": np.arange(5, 30)},
            {"user_ids": np.arange(1, 10), "book_ids": np.arange(1, 10)},
        ):
            for scheme in SCHEMES:
                now = 1_700_000_000 + 800.0 * DAY
                assert_same_matrix(
                    build_matrix(data, scheme, now, **kwargs),
                    reference_build_matrix(data, scheme, now, **kwargs),
                )
    far = arrays([(2**40, 5, "view", NO, 0), (3, 2**41, "rate", 4, 0), (3, 2**41, "rate", 5, 1)])
    assert_same_matrix(build_matrix(far), reference_build_matrix(far))


def test_the_builder_refuses_what_it_cannot_stream():
    from bookrec.algorithms.matrix import MatrixBuilder

    with pytest.raises(ValueError, match="now"):
        MatrixBuilder(WeightScheme(half_life_days=1))
    builder = MatrixBuilder()
    with pytest.raises(ValueError, match=">= 0"):
        builder.add(np.array([-1]), np.array([1]), np.array([0]), np.array([NO]), np.array([0]))


def test_book_event_counter_of_chunks_counts_as_count_book_events():
    from bookrec.algorithms.matrix import BookEventCounter
    from bookrec.algorithms.scoring import count_book_events

    data = random_interactions(7, 3000, books=40)
    expected = count_book_events(data)
    for bounds in ([], [1], list(range(50, 3000, 50))):
        counter = BookEventCounter()
        counter.MERGE_ROWS = 100  # merge often
        for chunk in split(data, bounds):
            counter.add(chunk)
        got = counter.counts(max_interaction_id=9, first_at=1.5, last_at=2.5)
        for field in ("book_ids", "events", "ratings", "counts"):
            assert np.array_equal(getattr(got, field), getattr(expected, field), equal_nan=True), (
                field
            )
        assert (got.max_interaction_id, got.first_at, got.last_at) == (9, 1.5, 2.5)


def test_book_event_counter_of_far_ids_odd_ratings_and_nothing():
    from bookrec.algorithms.matrix import BookEventCounter
    from bookrec.algorithms.scoring import count_book_events

    data = arrays(
        [
            (1, 2**40, "view", NO, 0),  # far ids: counted by a sort, not in place
            (1, 2**40, "view", 4, 1),  # a rating on a view: its own key
            (2, 2**40, "rate", NO, 2),  # a rate without one
            (2, 5, "rate", 4.5, 3),
            (3, 5, "rate", 4.5, 4),
            (3, 2**40, "view", NO, 5),
        ]
    )
    counter = BookEventCounter()
    for chunk in split(data, [1, 3]):
        counter.add(chunk)

    def table(counts):
        return [
            (b, e, None if np.isnan(r) else r, n)
            for b, e, r, n in zip(counts.book_ids.tolist(), counts.events.tolist(),
                                  counts.ratings.tolist(), counts.counts.tolist(), strict=True)
        ]  # fmt: skip

    assert table(counter.counts()) == table(count_book_events(data))
    assert table(counter.counts()) == [
        (5, 3, 4.5, 2), (2**40, 0, None, 2), (2**40, 0, 4.0, 1), (2**40, 3, None, 1),
    ]  # fmt: skip
    empty = BookEventCounter().counts(7)
    assert len(empty.book_ids) == 0 and empty.max_interaction_id == 7
