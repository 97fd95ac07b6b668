"""bookrec demo: the whole guide's workflow on bundled books and synthetic interactions."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bookrec.errors import DatabaseNotEmptyError, NotReadyError
from bookrec.progress import Phases
from bookrec.results import DemoResult, Recommendations, SimilarBooks
from bookrec.settings import Settings
from bookrec.storage.base import Repository

ATTRIBUTION = (
    "Book metadata: goodbooks-10k by Zygmunt Zając, CC BY-SA 4.0"
    " (https://creativecommons.org/licenses/by-sa/4.0/). Interactions: synthetic."
)
SHOWCASE_BOOKS = ("2", "1", "7")  # Harry Potter #1, The Hunger Games, The Hobbit
SHOWCASE_STRATEGIES = ("hybrid", "cf", "gnn", "content", "popular")


def check_empty(repo: Repository, force: bool) -> None:
    if force or repo.is_empty():
        return
    counts = repo.counts()
    raise DatabaseNotEmptyError(repo.url.where, counts["books"], counts["interactions"])


def run_demo(
    repo: Repository, settings: Settings, phases: Phases, *, users: int, seed: int, force: bool
) -> DemoResult:
    from bookrec.services.embed import embed_books
    from bookrec.services.ingest import ingest_books, ingest_interactions
    from bookrec.services.status import collect_status
    from bookrec.services.train_cf import train_cf
    from bookrec.services.train_gnn import train_gnn
    from bookrec.synthetic import (
        bundled_books_path,
        generate_demo_interactions,
        read_book_catalog,
        write_interactions_csv,
    )

    check_empty(repo, force)
    started = time.perf_counter()
    repo.migrate()
    books_file = bundled_books_path()
    books = ingest_books(repo, books_file, phases)
    content = embed_books(repo, settings, phases)
    with phases.phase("generate"):
        synthetic = generate_demo_interactions(
            read_book_catalog(books_file), n_users=users, seed=seed
        )
    with tempfile.TemporaryDirectory(prefix="bookrec-demo-") as folder:
        events = Path(folder) / "demo-interactions.csv"
        write_interactions_csv(events, synthetic)
        interactions = ingest_interactions(repo, events, phases)
    cf = train_cf(repo, settings, phases)
    gnn = train_gnn(repo, settings, phases)
    return DemoResult(
        attribution=ATTRIBUTION,
        synthetic=synthetic.describe(),
        database=repo.url.masked,
        books=books.inserted,
        content=content,
        interactions=interactions,
        cf=cf,
        gnn=gnn,
        status=collect_status(repo, settings),
        recommendations=_recommendations(repo, settings, list(synthetic.users[:3])),
        similar=_similar(repo),
        seconds=round(time.perf_counter() - started, 1),
    )


def _recommendations(
    repo: Repository, settings: Settings, users: list[str]
) -> dict[str, dict[str, Recommendations]]:
    from bookrec.services.recommend import recommend

    return {
        user: {
            strategy: recommend(repo, settings, user, k=3, strategy=strategy)
            for strategy in SHOWCASE_STRATEGIES
        }
        for user in users
    }


def _similar(repo: Repository) -> dict[str, dict[str, SimilarBooks]]:
    from bookrec.services.recommend import similar

    found: dict[str, dict[str, SimilarBooks]] = {}
    for book in SHOWCASE_BOOKS:
        for space in ("content", "cf", "gnn"):
            try:
                found.setdefault(book, {})[space] = similar(repo, book, space=space, k=3)
            except NotReadyError:
                continue  # a book the synthetic readers never touched has no cf/gnn vector
    return {book: spaces for book, spaces in found.items() if spaces}
