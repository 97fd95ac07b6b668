"""Seeded synthetic interactions: a demo set with planted taste and a large benchmark set.

Everything is drawn from ``numpy.random.default_rng(seed)``, never from the wall clock, so the
same arguments give the same rows and the same CSV bytes.
"""

from __future__ import annotations

import csv
import gzip
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np

from bookrec.domain import EVENT_CODES, EVENTS
from bookrec.errors import InputError

BUNDLED_BOOKS_FILE = "goodbooks-10k-books.csv.gz"
CSV_HEADER = "user_id,book_id,event,rating,timestamp"
CATALOG_COLUMNS = (
    "book_id",
    "authors",
    "title",
    "original_publication_year",
    "language_code",
    "ratings_count",
)
DEFAULT_START = datetime(2025, 1, 1, tzinfo=UTC)
DEFAULT_END = datetime(2026, 1, 1, tzinfo=UTC)

ENGLISH_CODES = frozenset({"eng", "en", "en-US", "en-GB", "en-CA"})
# (label, first year, last year), both inclusive; None is open-ended.
ERAS: tuple[tuple[str, int | None, int | None], ...] = (
    ("before 1900", None, 1899),
    ("1900-1959", 1900, 1959),
    ("1960-1989", 1960, 1989),
    ("1990s", 1990, 1999),
    ("2000s", 2000, 2009),
    ("2010 and later", 2010, None),
)

_VIEW, _CLICK, _LIKE, _RATE, _PURCHASE = (EVENT_CODES[e] for e in EVENTS)
_SERIES_SUFFIX = re.compile(r"\(([^()]*#[^()]*)\)\s*$")

# Demo recipe. Match levels of a (user, book) pair: 2 favourite author/series, 1 same era and
# language, 0 anything else.
MIN_FAVOURITE_BOOKS = 3
FAVOURITE_AUTHORS_P = (0.35, 0.40, 0.25)  # 1, 2 or 3 favourite authors
FAVOURITE_SERIES_P = (0.45, 0.40, 0.15)  # 0, 1 or 2 favourite series
FAVOURITE_POPULARITY_EXP = 0.75
SAME_ERA_FAVOURITE_BOOST = 4.0
SOURCE_SHARES = (0.60, 0.25, 0.15)  # favourites, era+language, general popularity
BOOKS_PER_USER_MEDIAN = 20
BOOKS_PER_USER_SIGMA = 0.7
BOOKS_PER_USER_RANGE = (6, 200)
CLICK_P = (0.30, 0.40, 0.60)  # by match level, given a view
AFTER_CLICK_P = {  # by match level, given a click
    _LIKE: (0.12, 0.20, 0.45),
    _RATE: (0.20, 0.25, 0.40),
    _PURCHASE: (0.06, 0.10, 0.25),
}
RATING_P = (  # P(rating 1..5) by match level
    (0.10, 0.18, 0.34, 0.26, 0.12),
    (0.05, 0.10, 0.30, 0.35, 0.20),
    (0.01, 0.03, 0.11, 0.37, 0.48),
)
CLICK_DELAY_MEAN_S = 90.0
FOLLOW_UP_DELAY_MEAN_S = 86_400.0

# Benchmark recipe.
BENCHMARK_EVENT_P = (0.55, 0.25, 0.08, 0.08, 0.04)
BENCHMARK_RATING_P = (0.06, 0.10, 0.24, 0.34, 0.26)
BENCHMARK_OUT_OF_CLUSTER_RATING_P = (0.15, 0.25, 0.30, 0.20, 0.10)
BOOK_ZIPF_EXPONENT = 1.0
BOOK_ZIPF_OFFSET = 5.0
USER_ZIPF_EXPONENT = 0.8
USER_ZIPF_OFFSET = 10.0
MAX_REFILL_ROUNDS = 100  # redraws of rows lost to duplicate (user, book, event, time)


@dataclass(frozen=True)
class BookCatalog:
    """The per-book fields the demo generator needs, as parallel sequences.

    ``languages`` folds the English variants (en, en-US, en-GB, en-CA) into "eng";
    ``years`` is float64 with NaN where unknown; ``series`` comes from the title's
    "(Series Name, #n)" suffix.
    """

    external_ids: tuple[str, ...]
    authors: tuple[str | None, ...]
    series: tuple[str | None, ...]
    years: np.ndarray
    languages: tuple[str | None, ...]
    ratings_counts: np.ndarray

    def __len__(self) -> int:
        return len(self.external_ids)


@dataclass(frozen=True)
class UserTaste:
    """The planted taste of one demo user; ``book_ids`` are the books it makes favourites."""

    user_id: str
    authors: tuple[str, ...]
    series: tuple[str, ...]
    era: str
    era_years: tuple[int | None, int | None]
    language: str
    book_ids: frozenset[str]


@dataclass(frozen=True)
class SyntheticInteractions:
    """Generated rows as parallel arrays plus the ground truth they were planted from.

    Row i is user ``users[user_index[i]]``, book ``books[book_index[i]]``, event code
    ``events[i]`` (see ``domain.EVENTS``), rating ``ratings[i]`` (NaN unless rate) and
    ``timestamps[i]`` (epoch seconds, UTC). Rows are sorted by time.
    """

    users: tuple[str, ...]
    books: tuple[str, ...]
    user_index: np.ndarray
    book_index: np.ndarray
    events: np.ndarray
    ratings: np.ndarray
    timestamps: np.ndarray
    description: str = ""
    tastes: tuple[UserTaste, ...] = ()  # demo: one per user, in the order of ``users``
    user_groups: np.ndarray | None = None  # benchmark with clusters: group of each user
    book_groups: np.ndarray | None = None  # ... and of each book

    def __len__(self) -> int:
        return len(self.events)

    def describe(self) -> str:
        """Plain-language account of what was generated and how."""
        return self.description

    def rows(self) -> Iterator[tuple[str, str, str, float | None, int]]:
        """(user_id, book_id, event, rating or None, epoch seconds) per row."""
        for u, b, e, r, t in zip(
            self.user_index.tolist(),
            self.book_index.tolist(),
            self.events.tolist(),
            self.ratings.tolist(),
            self.timestamps.tolist(),
            strict=True,
        ):
            yield self.users[u], self.books[b], EVENTS[e], None if math.isnan(r) else r, t


# --- book catalog ---------------------------------------------------------------------------


def bundled_books_path() -> Path:
    """Path of the goodbooks-10k books.csv.gz shipped inside the package."""
    return Path(str(files("bookrec").joinpath("data", BUNDLED_BOOKS_FILE)))


def parse_series(title: str) -> str | None:
    """Series name from a goodreads title suffix such as "(The Hunger Games, #1)"."""
    match = _SERIES_SUFFIX.search(title)
    if match is None:
        return None
    first = match.group(1).split(";")[0]
    name = first.split("#")[0].strip().rstrip(",").strip()
    return name or None


def read_book_catalog(path: str | Path | None = None) -> BookCatalog:
    """Read a goodbooks-style books CSV (plain or gzip); the bundled one by default."""
    path = Path(path) if path is not None else bundled_books_path()
    with path.open("rb") as raw:
        is_gzip = raw.read(2) == b"\x1f\x8b"
    opener = gzip.open if is_gzip else open
    with opener(path, "rt", encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = set(CATALOG_COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise InputError(
                f"{path.name}:1: header: missing column {', '.join(sorted(missing))}; "
                f"the book catalog needs {','.join(CATALOG_COLUMNS)}"
            )
        ids, authors, series, years, languages, counts = [], [], [], [], [], []
        for row in reader:
            try:
                years.append(float(row["original_publication_year"] or "nan"))
                counts.append(int(float(row["ratings_count"] or 0)))
            except (TypeError, ValueError):
                raise InputError(
                    f"{path.name}:{reader.line_num}: original_publication_year and "
                    "ratings_count must be numbers"
                ) from None
            ids.append(row["book_id"].strip())
            authors.append(row["authors"].split(",")[0].strip() or None)
            series.append(parse_series(row["title"]))
            language = row["language_code"].strip()
            languages.append("eng" if language in ENGLISH_CODES else language or None)
    return BookCatalog(
        external_ids=tuple(ids),
        authors=tuple(authors),
        series=tuple(series),
        years=np.array(years, dtype=np.float64),
        languages=tuple(languages),
        ratings_counts=np.array(counts, dtype=np.int64),
    )


# --- demo generator ---------------------------------------------------------------------------


class _Groups:
    """Books grouped by one label (author, series or language); code -1 means no label."""

    def __init__(self, labels: tuple[str | None, ...]) -> None:
        names = sorted({label for label in labels if label is not None})
        code_of = {name: code for code, name in enumerate(names)}
        self.names = names
        self.codes = np.array([code_of.get(label, -1) for label in labels], dtype=np.int64)
        labelled = np.flatnonzero(self.codes >= 0)
        order = labelled[np.argsort(self.codes[labelled], kind="stable")]
        bounds = np.searchsorted(self.codes[order], np.arange(len(names) + 1))
        self.members = [order[bounds[i] : bounds[i + 1]] for i in range(len(names))]
        self.sizes = np.diff(bounds)

    def mode_of(self, book_values: np.ndarray) -> np.ndarray:
        """Most common non-negative value among each group's books (-1 if none)."""
        modes = np.full(len(self.names), -1, dtype=np.int64)
        for code, members in enumerate(self.members):
            values = book_values[members]
            values = values[values >= 0]
            if len(values):
                modes[code] = np.bincount(values).argmax()
        return modes


class _TasteSpace:
    """Catalog indexes the demo draws tastes and books from."""

    def __init__(self, catalog: BookCatalog) -> None:
        self.catalog = catalog
        self.popularity = np.maximum(catalog.ratings_counts, 1).astype(np.float64)
        self.global_cdf = _cdf(self.popularity)
        self.eras = _era_codes(catalog.years)
        self.authors = _Groups(catalog.authors)
        self.series = _Groups(catalog.series)
        self.languages = _Groups(catalog.languages)
        self.language_codes = self.languages.codes
        self.favourites = {
            "authors": self._favourite_candidates(self.authors),
            "series": self._favourite_candidates(self.series),
        }
        author_languages = self.favourites["authors"][1]
        candidates_per_language = np.bincount(
            author_languages[author_languages >= 0], minlength=len(self.languages.names)
        )
        eligible = candidates_per_language >= len(FAVOURITE_AUTHORS_P)
        self.language_weights = np.where(eligible, self.languages.sizes, 0).astype(np.float64)
        if self.language_weights.sum() == 0:
            raise InputError(
                "the book catalog has too few authors with several books to plant tastes"
            )
        self._cache: dict[tuple[str | int, ...], Any] = {}

    def _favourite_candidates(self, groups: _Groups) -> tuple[np.ndarray, ...]:
        """(codes, language, era, weight) of the groups big enough to be someone's favourite."""
        codes = np.flatnonzero(groups.sizes >= MIN_FAVOURITE_BOOKS)
        languages = groups.mode_of(self.language_codes)[codes]
        eras = groups.mode_of(self.eras)[codes]
        popularity = np.array([self.popularity[groups.members[c]].sum() for c in codes])
        return codes, languages, eras, popularity**FAVOURITE_POPULARITY_EXP

    def era_probabilities(self, language: int) -> np.ndarray:
        """P(era) for users of a language: the share of its dated books in each era."""
        key = ("eras", language)
        if key not in self._cache:
            in_language = self.eras[(self.language_codes == language) & (self.eras >= 0)]
            counts = np.bincount(in_language, minlength=len(ERAS)).astype(np.float64)
            self._cache[key] = _normalised(counts)
        return self._cache[key]

    def era_pool(self, language: int, era: int) -> tuple[np.ndarray, np.ndarray]:
        """Books of one language and era with their popularity CDF."""
        key = ("pool", language, era)
        if key not in self._cache:
            books = np.flatnonzero((self.language_codes == language) & (self.eras == era))
            self._cache[key] = books, _cdf(self.popularity[books])
        return self._cache[key]

    def pick_favourites(
        self, rng: np.random.Generator, kind: str, count: int, language: int, era: int
    ) -> np.ndarray:
        """Up to ``count`` distinct author or series codes of the language, era favoured."""
        key = (kind, language, era)
        if key not in self._cache:
            codes, languages, eras, weights = self.favourites[kind]
            fits = languages == language
            boosted = np.where(eras[fits] == era, SAME_ERA_FAVOURITE_BOOST, 1.0)
            self._cache[key] = codes[fits], _normalised(weights[fits] * boosted)
        codes, probabilities = self._cache[key]
        count = min(count, len(codes))
        if count == 0:
            return codes[:0]
        return rng.choice(codes, size=count, replace=False, p=probabilities)


def generate_demo_interactions(
    catalog: BookCatalog | None = None,
    *,
    n_users: int = 500,
    seed: int = 42,
    start: datetime | int = DEFAULT_START,
    end: datetime | int = DEFAULT_END,
) -> SyntheticInteractions:
    """Interactions of ``n_users`` users ("u00001", ...) with a planted, explainable taste.

    Each user gets a language and an era (drawn in proportion to the catalog's books), 1-3
    favourite authors and 0-2 favourite series of that language (favouring that era and
    popular authors). About 60% of a user's books come from the favourites, 25% from books of
    the era and language and 15% from overall popularity (goodbooks ratings_count).
    Every book is viewed; clicks, likes, ratings and purchases follow with probabilities and
    ratings that are highest for favourites.
    """
    catalog = catalog if catalog is not None else read_book_catalog()
    if n_users < 1:
        raise ValueError("n_users must be at least 1")
    start_s, end_s = _window(start, end)
    rng = np.random.default_rng(seed)
    space = _TasteSpace(catalog)
    users = _user_ids(n_users)

    tastes: list[UserTaste] = []
    pair_users: list[np.ndarray] = []
    pair_books: list[np.ndarray] = []
    pair_levels: list[np.ndarray] = []
    for user, user_id in enumerate(users):
        taste, language, era, favourite_books = _draw_taste(rng, space, user_id)
        books, levels = _draw_user_books(rng, space, language, era, favourite_books)
        tastes.append(taste)
        pair_users.append(np.full(len(books), user, dtype=np.int32))
        pair_books.append(books.astype(np.int32))
        pair_levels.append(levels)

    user_index, book_index, events, ratings, timestamps = _funnel(
        rng,
        np.concatenate(pair_users),
        np.concatenate(pair_books),
        np.concatenate(pair_levels),
        n_users,
        start_s,
        end_s,
    )
    result = SyntheticInteractions(
        users=users,
        books=catalog.external_ids,
        user_index=user_index,
        book_index=book_index,
        events=events,
        ratings=ratings,
        timestamps=timestamps,
        tastes=tuple(tastes),
    )
    description = _describe_demo(result, np.concatenate(pair_levels), seed, start_s, end_s)
    return _with_description(result, description)


def _draw_taste(
    rng: np.random.Generator, space: _TasteSpace, user_id: str
) -> tuple[UserTaste, int, int, np.ndarray]:
    """A user's taste, its language and era codes and its favourite books' indices."""
    language = int(rng.choice(len(space.language_weights), p=_normalised(space.language_weights)))
    era = int(rng.choice(len(ERAS), p=space.era_probabilities(language)))
    n_authors = 1 + int(rng.choice(len(FAVOURITE_AUTHORS_P), p=FAVOURITE_AUTHORS_P))
    n_series = int(rng.choice(len(FAVOURITE_SERIES_P), p=FAVOURITE_SERIES_P))
    authors = space.pick_favourites(rng, "authors", n_authors, language, era)
    series = space.pick_favourites(rng, "series", n_series, language, era)
    groups = [space.authors.members[a] for a in authors]
    groups += [space.series.members[s] for s in series]
    favourite_books = np.unique(np.concatenate(groups))
    label, first_year, last_year = ERAS[era]
    taste = UserTaste(
        user_id=user_id,
        authors=tuple(space.authors.names[a] for a in authors),
        series=tuple(space.series.names[s] for s in series),
        era=label,
        era_years=(first_year, last_year),
        language=space.languages.names[language],
        book_ids=frozenset(space.catalog.external_ids[b] for b in favourite_books),
    )
    return taste, language, era, favourite_books


def _draw_user_books(
    rng: np.random.Generator,
    space: _TasteSpace,
    language: int,
    era: int,
    favourites: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct book indices of one user and their match levels (2, 1 or 0)."""
    low, high = BOOKS_PER_USER_RANGE
    n_books = int(
        np.clip(rng.lognormal(np.log(BOOKS_PER_USER_MEDIAN), BOOKS_PER_USER_SIGMA), low, high)
    )
    from_favourites, from_era, from_anywhere = rng.multinomial(n_books, SOURCE_SHARES)
    weights = np.sqrt(space.popularity[favourites])
    picked = [
        rng.choice(
            favourites,
            size=min(from_favourites, len(favourites)),
            replace=False,
            p=weights / weights.sum(),
        )
    ]
    era_books, era_cdf = space.era_pool(language, era)
    picked.append(era_books[_sample_cdf(rng, era_cdf, from_era)])
    picked.append(_sample_cdf(rng, space.global_cdf, from_anywhere))
    books = np.unique(np.concatenate(picked))
    levels = np.where(
        (space.language_codes[books] == language) & (space.eras[books] == era), 1, 0
    ).astype(np.int8)
    levels[np.isin(books, favourites, assume_unique=True)] = 2
    return books, levels


def _funnel(
    rng: np.random.Generator,
    pair_users: np.ndarray,
    pair_books: np.ndarray,
    levels: np.ndarray,
    n_users: int,
    start_s: int,
    end_s: int,
) -> tuple[np.ndarray, ...]:
    """Events of every (user, book) pair: a view, maybe a click, then maybe like/rate/buy."""
    span = end_s - start_s
    joined = start_s + (rng.random(n_users) * 0.7 * span).astype(np.int64)
    joined_at = joined[pair_users]
    viewed = joined_at + (rng.random(len(pair_users)) * (end_s - joined_at)).astype(np.int64)
    clicked = rng.random(len(pair_users)) < np.asarray(CLICK_P)[levels]
    clicked_at = viewed + 1 + rng.exponential(CLICK_DELAY_MEAN_S, len(pair_users)).astype(np.int64)

    parts = [(np.arange(len(pair_users)), np.full(len(pair_users), _VIEW), viewed)]
    clicks = np.flatnonzero(clicked)
    parts.append((clicks, np.full(len(clicks), _CLICK), clicked_at[clicks]))
    for event, probabilities in AFTER_CLICK_P.items():
        happens = clicks[rng.random(len(clicks)) < np.asarray(probabilities)[levels[clicks]]]
        delay = 1 + rng.exponential(FOLLOW_UP_DELAY_MEAN_S, len(happens)).astype(np.int64)
        parts.append((happens, np.full(len(happens), event), clicked_at[happens] + delay))

    pair = np.concatenate([p for p, _, _ in parts])
    events = np.concatenate([e for _, e, _ in parts]).astype(np.int8)
    timestamps = np.minimum(np.concatenate([t for _, _, t in parts]), end_s - 1)
    ratings = np.full(len(pair), np.nan, dtype=np.float32)
    rated = np.flatnonzero(events == _RATE)
    ratings[rated] = _draw_ratings(rng, levels[pair[rated]])

    user_index, book_index = pair_users[pair], pair_books[pair]
    order = np.lexsort((events, book_index, user_index, timestamps))
    return (
        user_index[order],
        book_index[order],
        events[order],
        ratings[order],
        timestamps[order],
    )


def _draw_ratings(rng: np.random.Generator, levels: np.ndarray) -> np.ndarray:
    ratings = np.empty(len(levels), dtype=np.float32)
    for level, probabilities in enumerate(RATING_P):
        at_level = np.flatnonzero(levels == level)
        ratings[at_level] = 1 + _sample_cdf(rng, _cdf(np.asarray(probabilities)), len(at_level))
    return ratings


def _describe_demo(
    result: SyntheticInteractions, pair_levels: np.ndarray, seed: int, start_s: int, end_s: int
) -> str:
    counts = np.bincount(result.events, minlength=len(EVENTS))
    plurals = ("views", "clicks", "likes", "ratings", "purchases")
    mix = ", ".join(f"{count:,} {name}" for count, name in zip(counts, plurals, strict=True))
    favourite_share = float(np.mean(pair_levels == 2)) if len(pair_levels) else 0.0
    rate_rows = np.flatnonzero(result.events == _RATE)
    favourite_rows = np.array(
        [
            result.books[b] in result.tastes[u].book_ids
            for u, b in zip(
                result.user_index[rate_rows].tolist(),
                result.book_index[rate_rows].tolist(),
                strict=True,
            )
        ],
        dtype=bool,
    )
    rated = result.ratings[rate_rows]
    mean_favourite = float(rated[favourite_rows].mean()) if favourite_rows.any() else float("nan")
    mean_other = float(rated[~favourite_rows].mean()) if (~favourite_rows).any() else float("nan")
    favourites, era, anywhere = SOURCE_SHARES
    example = result.tastes[0]
    series = f"; favourite series {', '.join(example.series)}" if example.series else ""
    return "\n".join(
        [
            f"These {len(result):,} interactions of {len(result.users):,} users are SYNTHETIC "
            f"(seed {seed}, {_iso(start_s)} to {_iso(end_s)}); no real person made them.",
            "Each user was given a planted taste: a language and an era, "
            f"1-{len(FAVOURITE_AUTHORS_P)} favourite authors and "
            f"0-{len(FAVOURITE_SERIES_P) - 1} favourite series.",
            f"A user's books were drawn {favourites:.0%} from their favourites, {era:.0%} from "
            f"popular books of their era and language, {anywhere:.0%} from overall popularity "
            f"(goodbooks ratings counts); {favourite_share:.0%} of all user-book pairs are "
            "favourites.",
            f"Every book is viewed; fewer are clicked, liked, rated or bought: {mix}.",
            f"Favourites are rated higher: mean {mean_favourite:.1f} against {mean_other:.1f}.",
            f"Example: {example.user_id} has favourite authors {', '.join(example.authors)}"
            f"{series}; era {example.era}; language {example.language}. "
            "Its recommendations should lean that way.",
        ]
    )


# --- benchmark generator ----------------------------------------------------------------------


def generate_benchmark_interactions(
    *,
    n_users: int = 20_000,
    n_books: int = 10_000,
    n_interactions: int = 1_000_000,
    seed: int = 42,
    clusters: int = 0,
    in_cluster_share: float = 0.8,
    start: datetime | int = DEFAULT_START,
    end: datetime | int = DEFAULT_END,
) -> SyntheticInteractions:
    """Exactly ``n_interactions`` unique (user, book, event, timestamp) rows.

    Book popularity is Zipf-like by id (book "1" the most popular, as in goodbooks), user
    activity Zipf-like over a random order of users. With ``clusters`` > 0, users and books
    are dealt round-robin into that many groups and ``in_cluster_share`` of the rows pick a
    book of the user's own group (rated higher than books outside it).
    """
    if n_users < 1 or n_books < 1 or n_interactions < 0:
        raise ValueError("n_users and n_books must be at least 1, n_interactions at least 0")
    if clusters < 0 or clusters > min(n_users, n_books):
        raise ValueError("clusters must be between 0 and min(n_users, n_books)")
    if not 0.0 <= in_cluster_share <= 1.0:
        raise ValueError("in_cluster_share must be between 0 and 1")
    start_s, end_s = _window(start, end)
    if n_interactions > n_users * n_books * len(EVENTS) * (end_s - start_s) // 2:
        raise ValueError("n_interactions is too large for unique rows in that window")

    rng = np.random.default_rng(seed)
    user_weights = _zipf_weights(n_users, USER_ZIPF_EXPONENT, USER_ZIPF_OFFSET)
    user_weights = user_weights[rng.permutation(n_users)]
    book_weights = _zipf_weights(n_books, BOOK_ZIPF_EXPONENT, BOOK_ZIPF_OFFSET)
    user_groups = np.arange(n_users) % clusters if clusters else None
    book_groups = np.arange(n_books) % clusters if clusters else None
    sampler = _BenchmarkSampler(
        user_weights, book_weights, clusters, in_cluster_share, start_s, end_s
    )

    columns = _sorted_unique(sampler.draw(rng, n_interactions))
    for _ in range(MAX_REFILL_ROUNDS):
        missing = n_interactions - len(columns[0])
        if missing == 0:
            break
        extra = sampler.draw(rng, missing)
        merged = tuple(np.concatenate(pair) for pair in zip(columns, extra, strict=True))
        columns = _sorted_unique(merged)
    else:
        raise ValueError("too many repeated rows: widen the time window or ask for fewer rows")
    user_index, book_index, events, ratings, timestamps = columns

    users = _user_ids(n_users)
    result = SyntheticInteractions(
        users=users,
        books=tuple(str(i) for i in range(1, n_books + 1)),
        user_index=user_index,
        book_index=book_index,
        events=events,
        ratings=ratings,
        timestamps=timestamps,
        user_groups=user_groups,
        book_groups=book_groups,
    )
    grouping = (
        f"planted clusters: {clusters} groups, {in_cluster_share:.0%} of rows inside the "
        "user's group"
        if clusters
        else "no planted clusters"
    )
    description = (
        f"These {n_interactions:,} interactions are SYNTHETIC benchmark data (seed {seed}): "
        f"{n_users:,} users with Zipf-like activity, {n_books:,} books with Zipf-like "
        f"popularity by id, events drawn independently, {grouping}."
    )
    return _with_description(result, description)


class _BenchmarkSampler:
    def __init__(
        self,
        user_weights: np.ndarray,
        book_weights: np.ndarray,
        clusters: int,
        in_cluster_share: float,
        start_s: int,
        end_s: int,
    ) -> None:
        self.n_users = len(user_weights)
        self.user_cdf = _cdf(user_weights)
        self.book_cdf = _cdf(book_weights)
        self.clusters = clusters
        self.in_cluster_share = in_cluster_share
        self.group_books = [np.arange(g, len(book_weights), clusters) for g in range(clusters)]
        self.group_cdfs = [_cdf(book_weights[books]) for books in self.group_books]
        self.start_s, self.end_s = start_s, end_s

    def draw(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
        users = _sample_cdf(rng, self.user_cdf, n).astype(np.int32)
        books = _sample_cdf(rng, self.book_cdf, n).astype(np.int32)
        inside = np.zeros(n, dtype=bool)
        if self.clusters:
            inside = rng.random(n) < self.in_cluster_share
            groups = users % self.clusters
            for group, (members, cdf) in enumerate(
                zip(self.group_books, self.group_cdfs, strict=True)
            ):
                rows = np.flatnonzero(inside & (groups == group))
                books[rows] = members[_sample_cdf(rng, cdf, len(rows))]
        events = _sample_cdf(rng, _cdf(np.asarray(BENCHMARK_EVENT_P)), n).astype(np.int8)
        ratings = np.full(n, np.nan, dtype=np.float32)
        rated = np.flatnonzero(events == _RATE)
        liked_p = BENCHMARK_RATING_P
        other_p = BENCHMARK_OUT_OF_CLUSTER_RATING_P if self.clusters else BENCHMARK_RATING_P
        for rows, probabilities in (
            (rated[inside[rated]], liked_p),
            (rated[~inside[rated]], other_p),
        ):
            ratings[rows] = 1 + _sample_cdf(rng, _cdf(np.asarray(probabilities)), len(rows))
        timestamps = rng.integers(self.start_s, self.end_s, n, dtype=np.int64)
        return users, books, events, ratings, timestamps


def _sorted_unique(columns: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """Rows sorted by time, keeping the first of each (user, book, event, timestamp)."""
    users, books, events, _, timestamps = columns
    order = np.lexsort((events, books, users, timestamps))
    key_columns = [c[order] for c in (timestamps, users, books, events)]
    repeated = np.zeros(len(order), dtype=bool)
    if len(order) > 1:
        repeated[1:] = np.logical_and.reduce([c[1:] == c[:-1] for c in key_columns])
    keep = order[~repeated]
    return tuple(c[keep] for c in columns)


# --- CSV --------------------------------------------------------------------------------------


def write_interactions_csv(
    path: str | Path, interactions: SyntheticInteractions, *, chunk_rows: int = 200_000
) -> int:
    """Write the generic interactions CSV (ISO 8601 UTC timestamps); returns the row count."""
    users = list(interactions.users)
    books = list(interactions.books)
    ratings_text = ["", "1", "2", "3", "4", "5"]
    with Path(path).open("w", encoding="utf-8", newline="") as out:
        out.write(CSV_HEADER + "\n")
        for begin in range(0, len(interactions), chunk_rows):
            window = slice(begin, begin + chunk_rows)
            ratings = np.nan_to_num(interactions.ratings[window], nan=0.0).astype(np.int64)
            times = np.datetime_as_string(
                interactions.timestamps[window].astype("datetime64[s]"), unit="s"
            )
            out.write(
                "".join(
                    [
                        f"{users[u]},{books[b]},{EVENTS[e]},{ratings_text[r]},{t}Z\n"
                        for u, b, e, r, t in zip(
                            interactions.user_index[window].tolist(),
                            interactions.book_index[window].tolist(),
                            interactions.events[window].tolist(),
                            ratings.tolist(),
                            times.tolist(),
                            strict=True,
                        )
                    ]
                )
            )
    return len(interactions)


def write_benchmark_csv(path: str | Path, **kwargs: object) -> SyntheticInteractions:
    """Generate benchmark interactions (kwargs of generate_benchmark_interactions) to CSV."""
    interactions = generate_benchmark_interactions(**kwargs)  # type: ignore[arg-type]
    write_interactions_csv(path, interactions)
    return interactions


# --- helpers ----------------------------------------------------------------------------------


def _user_ids(n_users: int) -> tuple[str, ...]:
    width = max(5, len(str(n_users)))
    return tuple(f"u{i:0{width}d}" for i in range(1, n_users + 1))


def _window(start: datetime | int, end: datetime | int) -> tuple[int, int]:
    start_s, end_s = _epoch(start), _epoch(end)
    if end_s <= start_s:
        raise ValueError("end must be after start")
    return start_s, end_s


def _epoch(moment: datetime | int) -> int:
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return int(moment.timestamp())
    return int(moment)


def _iso(epoch_s: int) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%d")


def _era_codes(years: np.ndarray) -> np.ndarray:
    codes = np.full(len(years), -1, dtype=np.int64)
    for code, (_, first, last) in enumerate(ERAS):
        inside = ~np.isnan(years)
        if first is not None:
            inside &= years >= first
        if last is not None:
            inside &= years <= last
        codes[inside] = code
    return codes


def _zipf_weights(n: int, exponent: float, offset: float) -> np.ndarray:
    return 1.0 / (np.arange(1, n + 1) + offset) ** exponent


def _normalised(weights: np.ndarray) -> np.ndarray:
    return weights / weights.sum()


def _cdf(weights: np.ndarray) -> np.ndarray:
    cdf = np.cumsum(weights, dtype=np.float64)
    return cdf / cdf[-1]


def _sample_cdf(rng: np.random.Generator, cdf: np.ndarray, n: int) -> np.ndarray:
    """n indices drawn with replacement from the distribution with this CDF."""
    return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(cdf) - 1)


def _with_description(result: SyntheticInteractions, description: str) -> SyntheticInteractions:
    return replace(result, description=description)


__all__ = [
    "CATALOG_COLUMNS",
    "CSV_HEADER",
    "DEFAULT_END",
    "DEFAULT_START",
    "ERAS",
    "BookCatalog",
    "SyntheticInteractions",
    "UserTaste",
    "bundled_books_path",
    "generate_benchmark_interactions",
    "generate_demo_interactions",
    "parse_series",
    "read_book_catalog",
    "write_benchmark_csv",
    "write_interactions_csv",
]
