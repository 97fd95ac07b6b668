"""bookrec demo: the whole guide's workflow on bundled books and synthetic interactions."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from bookrec.errors import InputError
from bookrec.progress import Phases
from bookrec.settings import Settings
from bookrec.storage.base import Repository

ATTRIBUTION = (
    "Book metadata: goodbooks-10k by Zygmunt Zając, CC BY-SA 4.0"
    " (https://creativecommons.org/licenses/by-sa/4.0/). Interactions: synthetic."
)
SHOWCASE_BOOKS = ("2", "1", "7")  # Harry Potter #1, The Hunger Games, The Hobbit


def check_empty(repo: Repository, force: bool) -> None:
    if force or repo.is_empty():
        return
    counts = repo.counts()
    raise InputError(
        f"{repo.url.where} already holds data ({counts['books']:,} books,"
        f" {counts['interactions']:,} interactions); the demo would mix synthetic data into it",
        hint="point --database-url at a new database, or pass --force",
    )


def run_demo(
    repo: Repository, settings: Settings, phases: Phases, *, users: int, seed: int, force: bool
) -> dict[str, Any]:
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
    steps: dict[str, Any] = {}
    books_file = bundled_books_path()
    steps["books"] = ingest_books(repo, books_file, phases).details["inserted"]
    steps["content"] = embed_books(repo, settings, phases)
    with phases.phase("generate"):
        synthetic = generate_demo_interactions(
            read_book_catalog(books_file), n_users=users, seed=seed
        )
    with tempfile.TemporaryDirectory(prefix="bookrec-demo-") as folder:
        events = Path(folder) / "demo-interactions.csv"
        write_interactions_csv(events, synthetic)
        steps["interactions"] = ingest_interactions(repo, events, phases).details
    steps["cf"] = train_cf(repo, settings, phases)
    steps["gnn"] = train_gnn(repo, settings, phases)
    status = collect_status(repo, settings)
    showcase_users = list(synthetic.users[:3])
    return {
        "attribution": ATTRIBUTION,
        "synthetic": synthetic.describe(),
        "steps": steps,
        "status": status,
        "recommendations": _recommendations(repo, settings, showcase_users),
        "similar": _similar(repo),
        "seconds": round(time.perf_counter() - started, 1),
    }


def _recommendations(repo, settings, users: list[str]) -> dict[str, dict[str, Any]]:
    from bookrec.services.recommend import recommend

    out: dict[str, dict[str, Any]] = {}
    for user in users:
        out[user] = {
            strategy: recommend(repo, settings, user, k=3, strategy=strategy)["recommendations"]
            for strategy in ("hybrid", "cf", "gnn", "content", "popular")
        }
    return out


def _similar(repo) -> dict[str, dict[str, Any]]:
    from bookrec.errors import NotReadyError
    from bookrec.services.recommend import similar

    out: dict[str, dict[str, Any]] = {}
    for book in SHOWCASE_BOOKS:
        for space in ("content", "cf", "gnn"):
            try:
                result = similar(repo, book, space=space, k=3)
            except NotReadyError:
                continue  # a book the synthetic readers never touched has no cf/gnn vector
            out.setdefault(book, {"title": result["title"]})[space] = result["similar"]
    return out
