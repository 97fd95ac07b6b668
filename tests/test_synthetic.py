"""The seeded synthetic interaction generators and their CSV output."""

from __future__ import annotations

import csv
import gzip
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from bookrec.domain import EVENT_CODES, EVENTS
from bookrec.errors import InputError
from bookrec.synthetic import (
    BENCHMARK_EVENT_P,
    CSV_HEADER,
    DEFAULT_END,
    DEFAULT_START,
    ERAS,
    BookCatalog,
    SyntheticInteractions,
    bundled_books_path,
    generate_benchmark_interactions,
    generate_demo_interactions,
    parse_series,
    read_book_catalog,
    write_benchmark_csv,
    write_interactions_csv,
)

RATE = EVENT_CODES["rate"]
VIEW = EVENT_CODES["view"]


@pytest.fixture(scope="module")
def catalog() -> BookCatalog:
    return read_book_catalog()


@pytest.fixture(scope="module")
def demo(catalog: BookCatalog) -> SyntheticInteractions:
    return generate_demo_interactions(catalog, n_users=300, seed=7)


@pytest.fixture(scope="module")
def bench() -> SyntheticInteractions:
    return generate_benchmark_interactions(
        n_users=3_000, n_books=2_000, n_interactions=150_000, seed=5
    )


def csv_bytes(interactions: SyntheticInteractions, tmp_path: Path, name: str) -> bytes:
    path = tmp_path / name
    write_interactions_csv(path, interactions)
    return path.read_bytes()


def row_keys(interactions: SyntheticInteractions) -> np.ndarray:
    return np.rec.fromarrays(
        [
            interactions.user_index,
            interactions.book_index,
            interactions.events,
            interactions.timestamps,
        ]
    )


# --- catalog ---------------------------------------------------------------------------------


def test_bundled_catalog_has_the_goodbooks_fields(catalog: BookCatalog) -> None:
    assert bundled_books_path().name == "goodbooks-10k-books.csv.gz"
    assert len(catalog) == 10_000
    assert catalog.external_ids[:3] == ("1", "2", "3")
    assert catalog.authors[0] == "Suzanne Collins"
    assert catalog.authors[1] == "J.K. Rowling"  # first of "J.K. Rowling, Mary GrandPré"
    assert catalog.series[0] == "The Hunger Games"
    assert catalog.series[1] == "Harry Potter"
    assert catalog.years[0] == 2008
    assert catalog.languages[0] == "eng"
    assert catalog.ratings_counts[0] == 4_780_653
    assert set(catalog.languages) >= {"eng", None, "ara"}
    assert "en-US" not in set(catalog.languages)


def test_plain_csv_reads_like_the_gzip(tmp_path: Path, catalog: BookCatalog) -> None:
    with gzip.open(bundled_books_path(), "rt", encoding="utf-8") as source:
        head = [next(source) for _ in range(21)]
    plain = tmp_path / "books.csv"
    plain.write_text("".join(head), encoding="utf-8")
    small = read_book_catalog(plain)
    assert small.external_ids == catalog.external_ids[:20]
    assert small.series == catalog.series[:20]
    np.testing.assert_array_equal(small.ratings_counts, catalog.ratings_counts[:20])


def test_catalog_without_needed_columns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "books.csv"
    path.write_text("book_id,title\n1,Dune\n", encoding="utf-8")
    with pytest.raises(InputError, match="authors"):
        read_book_catalog(path)


def test_catalog_with_a_bad_number_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "books.csv"
    header = "book_id,authors,title,original_publication_year,language_code,ratings_count"
    path.write_text(f"{header}\n1,A,T,1999,eng,10\n2,B,U,soon,eng,5\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"books.csv:3"):
        read_book_catalog(path)


def test_catalog_too_small_to_plant_tastes_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "books.csv"
    header = "book_id,authors,title,original_publication_year,language_code,ratings_count"
    path.write_text(f"{header}\n1,A,T,1999,eng,10\n2,B,U,2001,eng,5\n", encoding="utf-8")
    with pytest.raises(InputError, match="too few authors"):
        generate_demo_interactions(read_book_catalog(path), n_users=3)


@pytest.mark.parametrize(
    ("title", "series"),
    [
        ("The Hunger Games (The Hunger Games, #1)", "The Hunger Games"),
        ("Dune (Dune Chronicles #1)", "Dune Chronicles"),
        ("Bullet (Anita Blake, Vampire Hunter #19)", "Anita Blake, Vampire Hunter"),
        ("Carpe Jugulum (Discworld #23; Witches #6)", "Discworld"),
        ("Night Play (Dark-Hunter #5, Were-Hunter #1)", "Dark-Hunter"),
        ("Beyond Exile (Day by Day Armageddon,# 2)", "Day by Day Armageddon"),
        ("To Kill a Mockingbird", None),
        ("Saga #1", None),
        ("Ranma ½, Vol. 1 (Ranma ½ (US 2nd), #1)", None),
    ],
)
def test_series_is_parsed_from_the_title_suffix(title: str, series: str | None) -> None:
    assert parse_series(title) == series


# --- demo ------------------------------------------------------------------------------------


def test_demo_is_byte_identical_per_seed(tmp_path: Path, catalog: BookCatalog) -> None:
    first = generate_demo_interactions(catalog, n_users=60, seed=11)
    again = generate_demo_interactions(catalog, n_users=60, seed=11)
    other = generate_demo_interactions(catalog, n_users=60, seed=12)
    assert csv_bytes(first, tmp_path, "a.csv") == csv_bytes(again, tmp_path, "b.csv")
    assert csv_bytes(first, tmp_path, "a.csv") != csv_bytes(other, tmp_path, "c.csv")
    assert first.tastes == again.tastes
    assert first.describe() == again.describe()


def test_demo_users_and_their_planted_tastes(demo: SyntheticInteractions) -> None:
    assert demo.users[:2] == ("u00001", "u00002")
    assert len(demo.users) == len(set(demo.users)) == len(demo.tastes) == 300
    assert set(np.unique(demo.user_index)) == set(range(300))
    era_labels = {label for label, _, _ in ERAS}
    for user_id, taste in zip(demo.users, demo.tastes, strict=True):
        assert taste.user_id == user_id
        assert 1 <= len(taste.authors) <= 3
        assert len(taste.series) <= 2
        assert taste.era in era_labels
        assert taste.language is not None
        assert taste.book_ids
    series_counts = Counter(len(t.series) for t in demo.tastes)
    assert series_counts[0] > 0 and series_counts[1] > 0


def test_favourite_books_are_the_planted_authors_and_series(
    demo: SyntheticInteractions, catalog: BookCatalog
) -> None:
    taste = demo.tastes[0]
    expected = {
        book_id
        for book_id, author, series in zip(
            catalog.external_ids, catalog.authors, catalog.series, strict=True
        )
        if author in taste.authors or series in taste.series
    }
    assert taste.book_ids == expected


def test_demo_event_mix_is_a_funnel(demo: SyntheticInteractions) -> None:
    counts = dict(zip(EVENTS, np.bincount(demo.events, minlength=len(EVENTS)), strict=True))
    pairs = np.unique(demo.user_index.astype(np.int64) * 100_000 + demo.book_index)
    assert counts["view"] == len(pairs)  # every (user, book) pair is viewed exactly once
    assert 0.3 < counts["click"] / counts["view"] < 0.7
    for later in ("like", "rate", "purchase"):
        assert 0.05 * counts["view"] < counts[later] < counts["click"]
    assert counts["purchase"] < min(counts["like"], counts["rate"])


def test_demo_follow_up_events_come_after_the_view(demo: SyntheticInteractions) -> None:
    viewed_at = {
        (u, b): t
        for u, b, e, t in zip(
            demo.user_index.tolist(),
            demo.book_index.tolist(),
            demo.events.tolist(),
            demo.timestamps.tolist(),
            strict=True,
        )
        if e == VIEW
    }
    for u, b, t in zip(
        demo.user_index.tolist(), demo.book_index.tolist(), demo.timestamps.tolist(), strict=True
    ):
        assert t >= viewed_at[u, b]


def test_ratings_exactly_on_rate_events(demo: SyntheticInteractions) -> None:
    rated = ~np.isnan(demo.ratings)
    np.testing.assert_array_equal(rated, demo.events == RATE)
    values = demo.ratings[rated]
    assert set(np.unique(values).tolist()) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert len(np.unique(values)) == 5


def test_favourites_are_rated_higher(demo: SyntheticInteractions) -> None:
    favourite, other = [], []
    for u, b, r in zip(
        demo.user_index.tolist(), demo.book_index.tolist(), demo.ratings.tolist(), strict=True
    ):
        if r == r:
            target = favourite if demo.books[b] in demo.tastes[u].book_ids else other
            target.append(r)
    assert np.mean(favourite) > np.mean(other) + 0.5


def test_demo_timestamps_in_the_window(demo: SyntheticInteractions, catalog: BookCatalog) -> None:
    assert DEFAULT_START.timestamp() <= demo.timestamps.min()
    assert demo.timestamps.max() < DEFAULT_END.timestamp()
    assert np.all(np.diff(demo.timestamps) >= 0)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    week = generate_demo_interactions(
        catalog, n_users=20, seed=1, start=start, end=start.timestamp() + 7 * 86_400
    )
    assert week.timestamps.min() >= start.timestamp()
    assert week.timestamps.max() < start.timestamp() + 7 * 86_400


def test_planted_authors_are_recoverable_by_counting(
    demo: SyntheticInteractions, catalog: BookCatalog
) -> None:
    series_authors: dict[str, set[str | None]] = defaultdict(set)
    for author, series in zip(catalog.authors, catalog.series, strict=True):
        series_authors[series].add(author)
    top_is_planted = planted_in_top = top_total = 0
    for user, taste in enumerate(demo.tastes):
        viewed = demo.book_index[(demo.user_index == user) & (demo.events == VIEW)]
        by_author = Counter(catalog.authors[b] for b in viewed.tolist())
        planted = set(taste.authors).union(*(series_authors[s] for s in taste.series))
        top = [author for author, _ in by_author.most_common(len(taste.authors))]
        top_is_planted += top[0] in planted
        planted_in_top += sum(author in planted for author in top)
        top_total += len(top)
    assert top_is_planted >= 0.9 * len(demo.tastes)
    assert planted_in_top >= 0.75 * top_total


def test_describe_says_synthetic_and_how(demo: SyntheticInteractions) -> None:
    text = demo.describe()
    assert "SYNTHETIC" in text
    assert "favourite authors" in text
    assert demo.tastes[0].authors[0] in text
    assert f"{len(demo):,}" in text
    assert len(text.splitlines()) <= 8


def test_demo_rejects_bad_arguments(catalog: BookCatalog) -> None:
    with pytest.raises(ValueError):
        generate_demo_interactions(catalog, n_users=0)
    with pytest.raises(ValueError):
        generate_demo_interactions(catalog, start=DEFAULT_END, end=DEFAULT_START)


# --- benchmark -------------------------------------------------------------------------------


def test_benchmark_sizes_and_ids(bench: SyntheticInteractions) -> None:
    assert len(bench) == 150_000
    assert bench.users[0] == "u00001" and len(bench.users) == 3_000
    assert bench.books == tuple(str(i) for i in range(1, 2_001))
    assert bench.user_index.max() < 3_000 and bench.book_index.max() < 2_000
    assert bench.user_groups is None and bench.book_groups is None
    assert "SYNTHETIC" in bench.describe()


def test_benchmark_rows_are_unique(bench: SyntheticInteractions) -> None:
    assert len(np.unique(row_keys(bench))) == len(bench)


def test_benchmark_refills_rows_lost_to_duplicates() -> None:
    # 5 users x 5 books x 5 events x 10 seconds leaves room for 1,250 distinct rows only.
    crowded = generate_benchmark_interactions(
        n_users=5, n_books=5, n_interactions=400, seed=3, start=0, end=10
    )
    assert len(crowded) == 400
    assert len(np.unique(row_keys(crowded))) == 400
    with pytest.raises(ValueError):
        generate_benchmark_interactions(n_users=1, n_books=1, n_interactions=10, start=0, end=2)


def test_benchmark_popularity_and_activity_are_skewed(bench: SyntheticInteractions) -> None:
    books = np.sort(np.bincount(bench.book_index, minlength=2_000))[::-1]
    users = np.sort(np.bincount(bench.user_index, minlength=3_000))[::-1]
    assert books[:200].sum() > 0.5 * len(bench)
    assert users[:300].sum() > 0.35 * len(bench)
    assert np.bincount(bench.book_index).argmax() == 0  # book "1" is the most popular


def test_benchmark_event_mix_and_ratings(bench: SyntheticInteractions) -> None:
    shares = np.bincount(bench.events, minlength=len(EVENTS)) / len(bench)
    np.testing.assert_allclose(shares, BENCHMARK_EVENT_P, atol=0.01)
    rated = ~np.isnan(bench.ratings)
    np.testing.assert_array_equal(rated, bench.events == RATE)
    assert set(np.unique(bench.ratings[rated]).tolist()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert DEFAULT_START.timestamp() <= bench.timestamps.min()
    assert bench.timestamps.max() < DEFAULT_END.timestamp()


def test_benchmark_is_deterministic_per_seed() -> None:
    kwargs = {"n_users": 200, "n_books": 100, "n_interactions": 5_000}
    first = generate_benchmark_interactions(seed=9, **kwargs)
    again = generate_benchmark_interactions(seed=9, **kwargs)
    other = generate_benchmark_interactions(seed=10, **kwargs)
    for name in ("user_index", "book_index", "events", "timestamps"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    np.testing.assert_array_equal(first.ratings, again.ratings)
    assert not np.array_equal(first.book_index, other.book_index)


def test_benchmark_clusters_keep_users_in_their_group() -> None:
    clustered = generate_benchmark_interactions(
        n_users=1_000, n_books=500, n_interactions=40_000, seed=2, clusters=4
    )
    assert clustered.user_groups is not None and clustered.book_groups is not None
    assert set(np.unique(clustered.book_groups).tolist()) == {0, 1, 2, 3}
    inside = (
        clustered.user_groups[clustered.user_index] == clustered.book_groups[clustered.book_index]
    )
    # 80% chosen inside the group, plus the outside picks that land there by chance.
    assert inside.mean() == pytest.approx(0.8 + 0.2 / 4, abs=0.03)
    rated = clustered.events == RATE
    assert (
        clustered.ratings[rated & inside].mean() > clustered.ratings[rated & ~inside].mean() + 0.5
    )


def test_benchmark_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        generate_benchmark_interactions(n_users=0)
    with pytest.raises(ValueError):
        generate_benchmark_interactions(n_users=10, n_books=10, clusters=11)


# --- CSV -------------------------------------------------------------------------------------


def test_csv_has_the_ingest_header_and_parses_back(
    demo: SyntheticInteractions, tmp_path: Path
) -> None:
    path = tmp_path / "demo.csv"
    assert write_interactions_csv(path, demo) == len(demo)
    with path.open(encoding="utf-8", newline="") as handle:
        assert handle.readline() == CSV_HEADER + "\n"
        handle.seek(0)
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(demo)
    parsed = [
        (
            row["user_id"],
            row["book_id"],
            row["event"],
            float(row["rating"]) if row["rating"] else None,
            int(datetime.fromisoformat(row["timestamp"]).timestamp()),
        )
        for row in rows
    ]
    assert parsed == list(demo.rows())
    assert all(row["timestamp"].endswith("Z") for row in rows[:100])


def test_write_benchmark_csv(tmp_path: Path) -> None:
    path = tmp_path / "bench.csv"
    written = write_benchmark_csv(path, n_users=50, n_books=40, n_interactions=1_000, seed=1)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == CSV_HEADER
    assert len(lines) == 1 + len(written) == 1_001
    user, book, event, rating, _ = lines[1].split(",")
    assert user.startswith("u0") and 1 <= int(book) <= 40 and event in EVENTS
    assert (rating != "") == (event == "rate")
