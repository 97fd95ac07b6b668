"""Seeded synthetic interactions: a demo set with planted taste and a large benchmark set.

Everything is drawn from ``numpy.random.default_rng(seed)``, never from the wall clock, so the
same arguments give the same rows and the same CSV bytes.
"""

from bookrec.synthetic.benchmark import BENCHMARK_EVENT_P, generate_benchmark_interactions
from bookrec.synthetic.catalog import (
    CATALOG_COLUMNS,
    BookCatalog,
    bundled_books_path,
    parse_series,
    read_book_catalog,
)
from bookrec.synthetic.csvfile import CSV_HEADER, write_benchmark_csv, write_interactions_csv
from bookrec.synthetic.demo import generate_demo_interactions
from bookrec.synthetic.interactions import (
    DEFAULT_END,
    DEFAULT_START,
    SyntheticInteractions,
    UserTaste,
)
from bookrec.synthetic.taste import ERAS

__all__ = [
    "BENCHMARK_EVENT_P",
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
