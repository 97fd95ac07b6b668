"""The realistic rating-set generator: shape, determinism per seed, what the presets promise,
and that bookrec ingests what it writes."""

from __future__ import annotations

import csv
import json
from dataclasses import replace

import numpy as np
import pytest

from bookrec.synthetic.rating_sets import (
    PRESETS,
    STAR_SHARES,
    RatingSetSpec,
    generate_rating_set,
)

SMALL = RatingSetSpec("small", 120, 400, 6_000, "taste")


@pytest.fixture(scope="module")
def small():
    return generate_rating_set(SMALL, seed=3)


def test_shape_and_no_repeated_pair(small):
    assert len(small) == SMALL.n_ratings
    pairs = small.user_index.astype(np.int64) * SMALL.n_books + small.book_index
    assert len(np.unique(pairs)) == len(small)
    assert small.user_index.max() < SMALL.n_users and small.book_index.max() < SMALL.n_books
    assert set(np.unique(small.stars)) == {1, 2, 3, 4, 5}
    assert np.all(np.diff(small.timestamps) >= 0)


def test_same_seed_same_rows_other_seed_other_rows(small):
    again = generate_rating_set(SMALL, seed=3)
    other = generate_rating_set(SMALL, seed=4)
    for name in ("user_index", "book_index", "stars", "timestamps"):
        assert np.array_equal(getattr(small, name), getattr(again, name))
    assert small.titles == again.titles
    assert not np.array_equal(small.book_index, other.book_index)


def test_every_user_has_the_floor_and_activity_is_heavy_tailed(small):
    per_user = np.bincount(small.user_index, minlength=SMALL.n_users)
    assert per_user.min() >= SMALL.min_user_ratings
    assert per_user.max() >= 3 * np.median(per_user)
    assert per_user.max() <= SMALL.n_books // 2


def test_star_shares_and_a_long_popularity_tail(small):
    shares = np.bincount(small.stars, minlength=6)[1:] / len(small)
    assert np.allclose(shares, STAR_SHARES, atol=0.01)
    per_book = np.sort(np.bincount(small.book_index, minlength=SMALL.n_books))[::-1]
    top_decile = per_book[: SMALL.n_books // 10].sum() / per_book.sum()
    assert top_decile > 0.3  # a head ...
    assert per_book[0] > 4 * np.median(per_book)  # ... and a long tail


def test_presets_have_the_promised_sizes():
    expected = {
        "ml100k-like": (943, 1_682, 100_000, "taste"),
        "sparse-like": (610, 9_000, 100_000, "placeholder"),
        "large-like": (3_000, 3_700, 490_000, "placeholder"),
    }
    assert {name: (s.n_users, s.n_books, s.n_ratings, s.titles) for name, s in PRESETS.items()} == (
        expected
    )


def test_sparse_preset_is_sparse_with_many_books_rated_once_or_never():
    rs = generate_rating_set("sparse-like", seed=1)
    per_book = np.bincount(rs.book_index, minlength=rs.spec.n_books)
    assert len(rs) == 100_000
    assert np.count_nonzero(per_book <= 2) > 0.25 * rs.spec.n_books


def test_titles_carry_taste_or_are_placeholders(small):
    words = [set(t.lower().split()) for t in small.titles]
    assert len({w for ws in words for w in ws}) > 30
    placeholder = generate_rating_set(replace(SMALL, titles="placeholder"), seed=3)
    assert placeholder.titles[:2] == ("Book 1", "Book 2")


def test_bad_specs_are_refused():
    with pytest.raises(ValueError, match="n_ratings"):
        RatingSetSpec("x", 10, 100, 50, "taste")  # below 20 per user
    with pytest.raises(ValueError, match="unknown preset"):
        generate_rating_set("nope")


def test_written_files_ingest_and_evaluate(small, tmp_path, cli):
    books, ratings = small.write(tmp_path / "set")
    with books.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["external_id", "title", "authors"] and len(rows) == SMALL.n_books
    with ratings.open() as handle:
        assert handle.readline().strip() == "user_id,book_id,event,rating,timestamp"
    cli.ok("ingest", "books", str(books))
    cli.ok("ingest", "interactions", str(ratings))
    result = cli.ok("evaluate", "--strategies", "popular,cf", "--factors", "8", "--json")
    report = json.loads(result.stdout)
    ndcg = {r["strategy"]: r["ndcg"] for r in report["results"]}
    assert ndcg["cf"] > ndcg["popular"] > 0
