import numpy as np
import pytest

from bookrec.algorithms.split import (
    describe_split,
    split_interactions,
    split_leave_last,
    split_random,
    split_temporal,
    temporal_cut,
)
from bookrec.domain import InteractionArrays


def random_interactions(n_users: int = 500, seed: int = 0) -> InteractionArrays:
    """Users with 1..40 distinct books (ids with gaps), each pair seen 1..3 times."""
    rng = np.random.default_rng(seed)
    users, books = [], []
    for user in range(n_users):
        n_books = rng.integers(1, 41)
        owned = rng.choice(np.arange(1000, 3000, 2), size=n_books, replace=False)
        repeats = rng.integers(1, 4, size=n_books)
        users.append(np.full(repeats.sum(), 10 * user + 7))
        books.append(np.repeat(owned, repeats))
    user_ids, book_ids = np.concatenate(users), np.concatenate(books)
    n = len(user_ids)
    return InteractionArrays(
        user_ids=user_ids,
        book_ids=book_ids,
        events=np.zeros(n, dtype=np.int8),
        ratings=np.full(n, np.nan, dtype=np.float32),
        timestamps=rng.integers(1_600_000_000, 1_700_000_000, size=n),
    )


def pairs(data: InteractionArrays, mask: np.ndarray) -> set[tuple[int, int]]:
    return set(zip(data.user_ids[mask].tolist(), data.book_ids[mask].tolist(), strict=True))


def distinct_books(data: InteractionArrays, mask: np.ndarray) -> dict[int, int]:
    result: dict[int, int] = {}
    for user, _ in pairs(data, mask):
        result[user] = result.get(user, 0) + 1
    return result


def test_random_split_holds_out_whole_pairs_at_about_the_fraction():
    data = random_interactions()
    test = split_random(data.user_ids, data.book_ids, 0.2, seed=42)
    train_pairs, test_pairs = pairs(data, ~test), pairs(data, test)
    assert not train_pairs & test_pairs
    all_books = distinct_books(data, np.ones(len(data), dtype=bool))
    eligible = sum(n for n in all_books.values() if n >= 2)
    assert len(test_pairs) / eligible == pytest.approx(0.2, abs=0.015)
    train_books = distinct_books(data, ~test)
    assert set(train_books) == set(all_books)  # every user keeps at least one book in train
    single = {user for user, n in all_books.items() if n == 1}
    assert single and not single & set(distinct_books(data, test))


def test_random_split_is_deterministic_and_independent_of_row_order():
    data = random_interactions(100)
    first = split_random(data.user_ids, data.book_ids, 0.3, seed=7)
    assert (first == split_random(data.user_ids, data.book_ids, 0.3, seed=7)).all()
    assert (first != split_random(data.user_ids, data.book_ids, 0.3, seed=8)).any()
    order = np.random.default_rng(3).permutation(len(data))
    shuffled = split_random(data.user_ids[order], data.book_ids[order], 0.3, seed=7)
    assert (shuffled == first[order]).all()


def test_random_split_of_a_two_book_user_never_empties_train():
    users, books = np.array([1, 1]), np.array([5, 6])
    held = [split_random(users, books, 0.9, seed=s).sum() for s in range(50)]
    assert set(held) == {1}


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_fraction_must_be_strictly_between_0_and_1(fraction):
    with pytest.raises(ValueError, match="test_fraction"):
        split_random(np.array([1]), np.array([1]), fraction, seed=0)
    with pytest.raises(ValueError, match="test_fraction"):
        split_temporal(np.array([1, 2]), fraction)


def test_temporal_split_cuts_at_the_quantile():
    timestamps = np.array([5, 1, 9, 3, 7, 10, 2, 8, 4, 6]) * 100
    test = split_temporal(timestamps, 0.2)
    assert temporal_cut(timestamps, 0.2) == 800
    assert sorted(timestamps[test].tolist()) == [900, 1000]


def test_temporal_split_keeps_ties_at_the_cut_in_train():
    timestamps = np.array([1, 2, 3, 3, 3, 3, 3, 4])
    assert split_temporal(timestamps, 0.25).tolist() == [False] * 7 + [True]
    assert not split_temporal(np.full(5, 42), 0.2).any()


def test_temporal_split_every_test_row_is_later_than_every_train_row():
    data = random_interactions(200)
    test = split_temporal(data.timestamps, 0.2)
    assert data.timestamps[test].min() > data.timestamps[~test].max()
    assert test.mean() == pytest.approx(0.2, abs=0.001)


def test_temporal_summary_reports_cold_start_users_and_books():
    data = InteractionArrays(
        user_ids=np.array([1, 1, 2, 2, 3]),
        book_ids=np.array([10, 11, 10, 12, 13]),
        events=np.zeros(5, dtype=np.int8),
        ratings=np.full(5, np.nan, dtype=np.float32),
        timestamps=np.array([1, 2, 3, 4, 5]),
    )
    test, summary = split_interactions(data, "temporal", test_fraction=0.4)
    assert test.tolist() == [False, False, False, True, True]
    assert summary.test_users.tolist() == [2]  # user 2 has training rows
    assert summary.cold_start_users.tolist() == [3]  # user 3 appears only after the cut
    assert summary.n_cold_start_books == 2  # books 12 and 13
    assert summary.to_dict() == {
        "method": "temporal",
        "test_fraction": 0.4,
        "cut_timestamp": 3,
        "train_interactions": 3,
        "test_interactions": 2,
        "test_users": 1,
        "cold_start_users": 1,
        "cold_start_books": 2,
    }


def test_leave_last_holds_out_the_newest_book_with_all_its_rows():
    # User 1 meets book 20 at t=1, book 21 at t=2, comes back to 20 at t=3: 21 is the newest.
    # User 2's books 30 and 31 are tied at t=5: the larger id is held out.
    # User 3 has one book (twice) and stays in train.
    users = np.array([1, 1, 1, 1, 2, 2, 2, 3, 3])
    books = np.array([20, 21, 20, 21, 30, 31, 30, 40, 40])
    times = np.array([1, 2, 3, 4, 5, 5, 0, 1, 9])
    test = split_leave_last(users, books, times)
    assert test.tolist() == [False, True, False, True, False, True, False, False, False]


def test_leave_last_on_random_data():
    data = random_interactions(200)
    test = split_leave_last(data.user_ids, data.book_ids, data.timestamps)
    assert not pairs(data, test) & pairs(data, ~test)
    held = distinct_books(data, test)
    all_books = distinct_books(data, np.ones(len(data), dtype=bool))
    assert held == {user: 1 for user, n in all_books.items() if n >= 2}
    for user, book in pairs(data, test):
        of_user = data.user_ids == user
        first_seen = {
            b: data.timestamps[of_user & (data.book_ids == b)].min()
            for b in np.unique(data.book_ids[of_user])
        }
        assert first_seen[book] == max(first_seen.values())
    order = np.random.default_rng(5).permutation(len(data))
    shuffled = split_leave_last(data.user_ids[order], data.book_ids[order], data.timestamps[order])
    assert (shuffled == test[order]).all()


def test_split_interactions_dispatches_and_rejects_unknown_methods():
    data = random_interactions(50)
    test, summary = split_interactions(data, "random", 0.2, seed=1)
    assert (test == split_random(data.user_ids, data.book_ids, 0.2, seed=1)).all()
    assert summary.n_train + summary.n_test == len(data)
    assert len(summary.cold_start_users) == 0
    _, summary = split_interactions(data, "leave-last")
    assert summary.test_fraction is None
    with pytest.raises(ValueError, match="unknown split"):
        split_interactions(data, "kfold")


def test_empty_input_gives_empty_masks():
    empty = np.zeros(0, dtype=np.int64)
    assert split_random(empty, empty, 0.2, seed=0).shape == (0,)
    assert split_temporal(empty, 0.2).shape == (0,)
    assert split_leave_last(empty, empty, empty).shape == (0,)
    summary = describe_split(empty, empty, np.zeros(0, dtype=bool), "random")
    assert summary.n_test == 0
