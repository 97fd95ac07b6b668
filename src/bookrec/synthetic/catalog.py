"""The book catalog the demo draws from: the bundled goodbooks-10k books or any such CSV."""

from __future__ import annotations

import csv
import gzip
import re
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np

from bookrec.errors import InputError

BUNDLED_BOOKS_FILE = "goodbooks-10k-books.csv.gz"
CATALOG_COLUMNS = (
    "book_id",
    "authors",
    "title",
    "original_publication_year",
    "language_code",
    "ratings_count",
)
ENGLISH_CODES = frozenset({"eng", "en", "en-US", "en-GB", "en-CA"})
_SERIES_SUFFIX = re.compile(r"\(([^()]*#[^()]*)\)\s*$")


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
