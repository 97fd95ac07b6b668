"""Rating sets shaped like public ones: harder than the planted clusters.

Each user has a low-rank taste (a point in a small latent space), each book a position in the
same space and a popularity drawn from a long Zipf-like tail. A user with n ratings rates the n
books of largest log-popularity + taste_strength · affinity + Gumbel noise (a draw without
replacement from the softmax of those logits), so what a user rates is mostly popular books and
partly their taste, as in MovieLens-style sets. Activity is heavy-tailed with a floor (every
user has at least `min_user_ratings`, as the public sets keep). The stars are a noisy function
of affinity, book quality and the user's own leniency, cut at global quantiles into the shares
of 1–5★ public sets show (about a sixth at 1–2★, which bookrec reads as "not approval").

Titles either carry some taste (words of the book's strongest latent dimensions among filler
words, as real titles and genres carry some) or are placeholders ("Book 123"), as a catalogue
with poor metadata has.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np

TitleKind = Literal["taste", "placeholder"]
# Share of 1, 2, 3, 4, 5 stars in MovieLens-style sets.
STAR_SHARES = (0.06, 0.11, 0.27, 0.34, 0.22)
START = int(datetime(2015, 1, 1, tzinfo=UTC).timestamp())
END = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp())
USER_BLOCK = 256
MAX_USER_SHARE = 0.5  # nobody rates more than half of the catalogue


@dataclass(frozen=True)
class RatingSetSpec:
    """The shape of one generated set (see the module docstring for the model)."""

    name: str
    n_users: int
    n_books: int
    n_ratings: int
    titles: TitleKind
    factors: int = 6
    taste_strength: float = 1.4  # weight of affinity against log-popularity in what is rated
    popularity_exponent: float = 1.15  # Zipf exponent of book popularity
    popularity_offset: float = 10.0
    min_user_ratings: int = 20
    activity_sigma: float = 1.0  # lognormal spread of ratings per user above the floor
    rating_noise: float = 1.0  # std of the noise on the latent rating (affinity has std 1)
    quality_weight: float = 0.5  # weight of book quality (correlated with popularity)
    leniency_weight: float = 0.5  # weight of the user's own bias

    def __post_init__(self) -> None:
        if self.n_users < 1 or self.n_books < 2 or self.factors < 1:
            raise ValueError("need at least 1 user, 2 books and 1 factor")
        most = self.n_users * int(self.n_books * MAX_USER_SHARE)
        if not self.n_users * self.min_user_ratings <= self.n_ratings <= most:
            raise ValueError(
                f"n_ratings must be between {self.n_users * self.min_user_ratings} "
                f"(the floor per user) and {most} (half the catalogue per user)"
            )


PRESETS: dict[str, RatingSetSpec] = {
    spec.name: spec
    for spec in (
        # ~MovieLens 100k: 943 users, 1,682 items, 100k ratings, titles that say something.
        RatingSetSpec("ml100k-like", 943, 1_682, 100_000, "taste"),
        # ~MovieLens latest-small: 610 users, ~9,000 items (most rated once or twice).
        RatingSetSpec("sparse-like", 610, 9_000, 100_000, "placeholder"),
        # ~a 490k slice of MovieLens 1M: 3,000 users, 3,700 items.
        RatingSetSpec("large-like", 3_000, 3_700, 490_000, "placeholder"),
    )
}


@dataclass(frozen=True, eq=False)
class RatingSet:
    """Generated ratings as parallel arrays (user index, book index, stars, epoch seconds) and
    the catalogue (external ids "1".."n", titles, authors); rows sorted by time."""

    spec: RatingSetSpec
    seed: int
    titles: tuple[str, ...]
    authors: tuple[str, ...]
    user_index: np.ndarray
    book_index: np.ndarray
    stars: np.ndarray
    timestamps: np.ndarray

    def __len__(self) -> int:
        return len(self.stars)

    @property
    def book_ids(self) -> tuple[str, ...]:
        return tuple(str(i) for i in range(1, self.spec.n_books + 1))

    @property
    def user_ids(self) -> tuple[str, ...]:
        width = max(5, len(str(self.spec.n_users)))
        return tuple(f"u{i:0{width}d}" for i in range(1, self.spec.n_users + 1))

    def write(self, directory: str | Path) -> tuple[Path, Path]:
        """books.csv (external_id,title,authors) and ratings.csv (user_id,book_id,event,
        rating,timestamp; every event `rate`), as `bookrec ingest books` and `ingest
        interactions` read them. Returns both paths."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        books_path, ratings_path = directory / "books.csv", directory / "ratings.csv"
        with books_path.open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(("external_id", "title", "authors"))
            writer.writerows(zip(self.book_ids, self.titles, self.authors, strict=True))
        users, books = self.user_ids, self.book_ids
        times = np.datetime_as_string(self.timestamps.astype("datetime64[s]"), unit="s")
        with ratings_path.open("w", encoding="utf-8", newline="") as out:
            out.write("user_id,book_id,event,rating,timestamp\n")
            out.writelines(
                f"{users[u]},{books[b]},rate,{r},{t}Z\n"
                for u, b, r, t in zip(
                    self.user_index.tolist(),
                    self.book_index.tolist(),
                    self.stars.tolist(),
                    times.tolist(),
                    strict=True,
                )
            )
        return books_path, ratings_path

    def describe(self) -> str:
        s = self.spec
        return (
            f"SYNTHETIC rating set {s.name} (seed {self.seed}): {s.n_users:,} users, "
            f"{s.n_books:,} books, {len(self):,} ratings; {s.factors}-factor tastes, "
            f"Zipf({s.popularity_exponent:g}) popularity, {s.titles} titles."
        )


def generate_rating_set(spec: RatingSetSpec | str, seed: int = 1) -> RatingSet:
    """The set of `spec` (or a preset's name) for `seed`: the same arguments, the same rows."""
    if isinstance(spec, str):
        if spec not in PRESETS:
            raise ValueError(f"unknown preset {spec!r}; choose from {', '.join(PRESETS)}")
        spec = PRESETS[spec]
    rng = np.random.default_rng(seed)
    user_taste = rng.standard_normal((spec.n_users, spec.factors))
    book_taste = rng.standard_normal((spec.n_books, spec.factors))
    user_taste /= np.linalg.norm(user_taste, axis=1, keepdims=True)
    book_taste /= np.linalg.norm(book_taste, axis=1, keepdims=True)
    # Affinity u·v has std 1/sqrt(factors); rescale to std 1.
    scale = np.sqrt(spec.factors)
    ranks = rng.permutation(spec.n_books) + 1.0
    log_popularity = -spec.popularity_exponent * np.log(ranks + spec.popularity_offset)
    quality = _standard(log_popularity) * 0.5 + rng.standard_normal(spec.n_books) * 0.87
    leniency = rng.standard_normal(spec.n_users)
    counts = _activity(spec, rng)

    user_rows, book_rows, latent = [], [], []
    for begin in range(0, spec.n_users, USER_BLOCK):
        block = slice(begin, min(begin + USER_BLOCK, spec.n_users))
        affinity = (user_taste[block] @ book_taste.T) * scale
        logits = log_popularity[None, :] + spec.taste_strength * affinity
        keys = logits + rng.gumbel(size=logits.shape)
        for row, n in enumerate(counts[block]):
            chosen = np.argpartition(-keys[row], n - 1)[:n]
            user = begin + row
            user_rows.append(np.full(n, user, dtype=np.int32))
            book_rows.append(chosen.astype(np.int32))
            latent.append(
                affinity[row, chosen]
                + spec.quality_weight * quality[chosen]
                + spec.leniency_weight * leniency[user]
                + spec.rating_noise * rng.standard_normal(n)
            )
    users, books, value = (np.concatenate(c) for c in (user_rows, book_rows, latent))
    cuts = np.quantile(value, np.cumsum(STAR_SHARES)[:-1])
    stars = (np.searchsorted(cuts, value) + 1).astype(np.int8)
    timestamps = rng.integers(START, END, len(stars), dtype=np.int64)
    order = np.lexsort((books, users, timestamps))
    titles, authors = _catalogue_text(spec, book_taste, rng)
    return RatingSet(
        spec=spec,
        seed=seed,
        titles=titles,
        authors=authors,
        user_index=users[order],
        book_index=books[order],
        stars=stars[order],
        timestamps=timestamps[order],
    )


def _activity(spec: RatingSetSpec, rng: np.random.Generator) -> np.ndarray:
    """Ratings per user: the floor plus a lognormal share of the rest, summing to n_ratings,
    none above half the catalogue."""
    most = int(spec.n_books * MAX_USER_SHARE)
    counts = np.full(spec.n_users, spec.min_user_ratings, dtype=np.int64)
    shares = rng.lognormal(0.0, spec.activity_sigma, spec.n_users)
    while (rest := spec.n_ratings - int(counts.sum())) > 0:
        room = most - counts
        weights = np.where(room > 0, shares, 0.0)
        extra = np.floor(rest * weights / weights.sum()).astype(np.int64)
        if extra.sum() == 0:  # the last few: one each to the most active with room
            extra = np.zeros_like(counts)
            extra[np.argsort(-weights)[:rest]] = 1
        counts += np.minimum(extra, room)
    return counts


_FILLER = [
    "the",
    "of",
    "a",
    "in",
    "and",
    "night",
    "day",
    "man",
    "woman",
    "story",
    "last",
    "first",
    "city",
    "love",
    "life",
    "war",
    "home",
    "world",
    "house",
    "king",
    "girl",
    "boy",
    "road",
    "time",
    "return",
    "secret",
    "river",
    "summer",
    "winter",
    "dark",
    "light",
]
_SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "ne",
    "ru",
    "sa",
    "ti",
    "vo",
    "be",
    "da",
    "fe",
    "gi",
    "ho",
    "ju",
    "ly",
    "pa",
    "qu",
    "ri",
    "so",
    "tu",
    "wa",
    "xe",
    "yo",
    "zi",
]


def _catalogue_text(
    spec: RatingSetSpec, book_taste: np.ndarray, rng: np.random.Generator
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if spec.titles == "placeholder":
        titles = tuple(f"Book {i}" for i in range(1, spec.n_books + 1))
        return titles, ("",) * spec.n_books
    # Two made-up genre words per latent direction (positive and negative end); a title
    # carries the word of its strongest direction, sometimes the second, among filler words.
    words = ["".join(rng.choice(_SYLLABLES, 3)) for _ in range(2 * book_taste.shape[1])]
    titles = []
    for i, taste in enumerate(book_taste):
        strongest = np.argsort(-np.abs(taste))[:2]
        genre = [words[2 * d + int(taste[d] < 0)] for d in strongest]
        parts = list(rng.choice(_FILLER, rng.integers(1, 4)))
        parts.insert(int(rng.integers(0, len(parts) + 1)), genre[0])
        if rng.random() < 0.5:
            parts.append(genre[1])
        title = " ".join(parts).capitalize()
        titles.append(f"{title} ({1930 + int(rng.integers(0, 68))})" if i % 3 else title)
    return tuple(titles), ("",) * spec.n_books


def _standard(values: np.ndarray) -> np.ndarray:
    return (values - values.mean()) / values.std()
