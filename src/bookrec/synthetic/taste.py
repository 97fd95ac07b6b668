"""Planted demo tastes: catalog indexes by author, series, language and era, and taste draws."""

from __future__ import annotations

from typing import Any

import numpy as np

from bookrec.errors import InputError
from bookrec.synthetic.catalog import BookCatalog
from bookrec.synthetic.interactions import UserTaste
from bookrec.synthetic.sampling import cdf, normalised

# (label, first year, last year), both inclusive; None is open-ended.
ERAS: tuple[tuple[str, int | None, int | None], ...] = (
    ("before 1900", None, 1899),
    ("1900-1959", 1900, 1959),
    ("1960-1989", 1960, 1989),
    ("1990s", 1990, 1999),
    ("2000s", 2000, 2009),
    ("2010 and later", 2010, None),
)
MIN_FAVOURITE_BOOKS = 3
FAVOURITE_AUTHORS_P = (0.35, 0.40, 0.25)  # 1, 2 or 3 favourite authors
FAVOURITE_SERIES_P = (0.45, 0.40, 0.15)  # 0, 1 or 2 favourite series
FAVOURITE_POPULARITY_EXP = 0.75
SAME_ERA_FAVOURITE_BOOST = 4.0


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


class TasteSpace:
    """Catalog indexes the demo draws tastes and books from."""

    def __init__(self, catalog: BookCatalog) -> None:
        self.catalog = catalog
        self.popularity = np.maximum(catalog.ratings_counts, 1).astype(np.float64)
        self.global_cdf = cdf(self.popularity)
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
            self._cache[key] = normalised(counts)
        return self._cache[key]

    def era_pool(self, language: int, era: int) -> tuple[np.ndarray, np.ndarray]:
        """Books of one language and era with their popularity CDF."""
        key = ("pool", language, era)
        if key not in self._cache:
            books = np.flatnonzero((self.language_codes == language) & (self.eras == era))
            self._cache[key] = books, cdf(self.popularity[books])
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
            self._cache[key] = codes[fits], normalised(weights[fits] * boosted)
        codes, probabilities = self._cache[key]
        count = min(count, len(codes))
        if count == 0:
            return codes[:0]
        return rng.choice(codes, size=count, replace=False, p=probabilities)


def draw_taste(
    rng: np.random.Generator, space: TasteSpace, user_id: str
) -> tuple[UserTaste, int, int, np.ndarray]:
    """A user's taste, its language and era codes and its favourite books' indices."""
    language = int(rng.choice(len(space.language_weights), p=normalised(space.language_weights)))
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
