"""What the serving API would answer: recommendations for a user, similar books for a book."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from bookrec.errors import InputError, NotReadyError
from bookrec.settings import Settings
from bookrec.storage.base import Repository

if TYPE_CHECKING:
    from bookrec.algorithms.matrix import WeightScheme

STRATEGIES = ("hybrid", "cf", "gnn", "content", "popular")
COMMANDS = {"cf": "bookrec train cf", "gnn": "bookrec train gnn", "content": "bookrec embed"}
SECONDS_PER_DAY = 86_400.0


@dataclass
class Recommendation:
    rank: int
    book: str
    title: str
    authors: str | None
    score: float
    strategies: list[str] = field(default_factory=list)


class _Catalogue:
    """All books as one index space, with vectors aligned to it on demand."""

    def __init__(self, repo: Repository, families: list[str]) -> None:
        self.repo = repo
        self.loaded = repo.load_vector_families(families) if families else {}
        # Vectors belong to books: the family with the most (usually content, which every
        # book with a text has) may hold every book's id already.
        largest = max((ids for ids, _ in self.loaded.values()), key=len, default=None)
        self.book_ids = repo.all_book_ids(known=largest)

    def columns(self, ids: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.book_ids, ids)

    def vectors(self, family: str) -> np.ndarray | None:
        """(n_books, d) with zero rows for books without a vector; None if none has one.
        Read-only where every book has one (the loaded array itself)."""
        ids, vectors = self.loaded[family]
        if len(ids) == 0:
            return None
        if np.array_equal(ids, self.book_ids):
            return vectors
        aligned = np.zeros((len(self.book_ids), vectors.shape[1]), dtype=np.float32)
        aligned[self.columns(ids)] = vectors
        return aligned

    def popularity(self, scheme: WeightScheme, recent_days: float | None) -> np.ndarray:
        """Σ of event weights per book (stars above rate_zero_at for ratings)."""
        from bookrec.algorithms.scoring import popularity_from_counts

        since = None
        if recent_days is not None:
            last = self.repo.counts()["last_interaction_at"] or 0.0
            since = last - recent_days * SECONDS_PER_DAY
        counts = self.repo.book_event_counts(since)
        return popularity_from_counts(counts, scheme, self.book_ids)


def recommend(
    repo: Repository,
    settings: Settings,
    user: str,
    *,
    k: int = 10,
    strategy: str = "hybrid",
    include_seen: bool = False,
    recent_days: float | None = None,
) -> dict[str, Any]:
    from bookrec.algorithms.matrix import weight_row
    from bookrec.algorithms.ranking import top_k
    from bookrec.algorithms.scoring import available, fuse
    from bookrec.services.training import weight_scheme

    if strategy not in STRATEGIES:
        raise InputError(f"unknown strategy {strategy!r} (expected one of {', '.join(STRATEGIES)})")
    user_id = repo.find_user(user)
    if user_id is None:
        raise InputError(
            f"unknown user {user!r}",
            hint="users appear with their interactions: bookrec ingest interactions FILE",
        )
    wanted = _wanted(strategy, settings)
    catalogue = _Catalogue(repo, [s for s in wanted if s in COMMANDS])
    history = repo.load_interactions(user_id)
    scheme = weight_scheme(settings)
    weights = weight_row(history, catalogue.book_ids, scheme)[None, :]
    popularity = catalogue.popularity(scheme, recent_days)
    parts = _score_parts(repo, catalogue, settings, user_id, weights, popularity, wanted, strategy)
    if strategy == "hybrid":
        hybrid_weights = settings.hybrid.model_dump()
        scores = fuse(parts, hybrid_weights, fallback="popular")
        used = [s for s in parts if hybrid_weights.get(s, 0) > 0 and available(parts[s])[0]]
        used = used or ["popular"]
    else:
        scores = parts[strategy]
        used = [strategy]
    seen = set(history.book_ids.tolist())  # np.unique would import numpy.ma: +30 ms
    if not include_seen and seen:
        scores[:, catalogue.columns(np.fromiter(seen, np.int64, len(seen)))] = -np.inf
    best = top_k(scores, k)[0]
    best = best[best >= 0]
    best = best[np.isfinite(scores[0, best])]
    books = {b.id: b for b in repo.book_summaries(catalogue.book_ids[best].tolist())}
    results = []
    for rank, column in enumerate(best.tolist(), start=1):
        book = books[int(catalogue.book_ids[column])]
        contributed = [s for s in used if np.isfinite(parts[s][0, column])]
        results.append(
            Recommendation(
                rank,
                book.external_id,
                book.title,
                book.authors,
                round(float(scores[0, column]), 4),
                contributed,
            )
        )
    return {
        "user": user,
        "strategy": strategy,
        "strategies_used": used,
        "interactions": len(history),
        "excluded_seen": 0 if include_seen else len(seen),
        "recommendations": [asdict(r) for r in results],
    }


def _wanted(strategy: str, settings: Settings) -> list[str]:
    if strategy != "hybrid":
        return [strategy]
    weights = settings.hybrid.model_dump()
    return [s for s in ("cf", "gnn", "content", "popular") if weights[s] > 0] or ["popular"]


def _score_parts(
    repo: Repository,
    catalogue: _Catalogue,
    settings: Settings,
    user_id: int,
    weights: np.ndarray,  # the user's row of the confidence matrix (1 × n_books)
    popularity: np.ndarray,
    wanted: list[str],
    strategy: str,
) -> dict[str, np.ndarray]:
    """Scores (1, n_books) of every wanted strategy that can serve this user. An explicitly
    asked strategy that cannot is an error naming what to run; hybrid just leaves it out."""
    from bookrec.algorithms.scoring import DEFAULT_PRIOR, EmbeddingScorer, cf_scores, popular_scores

    explicit = strategy != "hybrid"
    parts: dict[str, np.ndarray] = {}
    for name in wanted:
        if name == "popular":
            parts[name] = popular_scores(popularity, 1)
            continue
        vectors = catalogue.vectors(name)
        if vectors is None:
            if explicit:
                raise NotReadyError(f"no {name} vectors yet", hint=f"run {COMMANDS[name]}")
            continue
        if name == "cf":
            user_vector = repo.load_vector("cf", "users", user_id)
            if user_vector is None or user_vector.shape[0] != vectors.shape[1]:
                if explicit:
                    raise NotReadyError(
                        "this user has no cf vector (newer than the last training, or below"
                        " --min-interactions)",
                        hint="run bookrec train cf, or use --strategy hybrid",
                    )
                continue
            present = np.linalg.norm(vectors, axis=1) > 0
            parts[name] = cf_scores(user_vector[None, :], vectors, present)
            continue
        if not weights.any():
            if explicit:
                raise NotReadyError(
                    f"this user has no interactions to build a {name} profile from",
                    hint="use --strategy popular or hybrid",
                )
            continue
        scorer = EmbeddingScorer(vectors, popularity, DEFAULT_PRIOR.get(name, 0.0))
        scores = scorer.scores(weights)
        if np.isfinite(scores).any() or explicit:
            parts[name] = scores
    if "popular" not in parts:
        parts["popular"] = popular_scores(popularity, 1)
    return parts


def similar(repo: Repository, book: str, *, space: str = "content", k: int = 10) -> dict[str, Any]:
    from bookrec.algorithms.scoring import similar_books

    if space not in COMMANDS:
        raise InputError(f"unknown space {space!r} (expected cf, gnn or content)")
    book_id = repo.find_book(book)
    if book_id is None:
        raise InputError(f"unknown book {book!r}", hint="bookrec ingest books FILE")
    ids, vectors = repo.load_vectors(space, "books")
    if len(ids) == 0:
        raise NotReadyError(f"no {space} vectors yet", hint=f"run {COMMANDS[space]}")
    row = np.searchsorted(ids, book_id)
    if row >= len(ids) or ids[row] != book_id:
        raise NotReadyError(
            f"book {book!r} has no {space} vector (it has no interactions, or is newer than"
            " the last run)",
            hint=f"run {COMMANDS[space]}",
        )
    rows, cosines = similar_books(vectors, int(row), k)
    summaries = {b.id: b for b in repo.book_summaries([*ids[rows].tolist(), book_id])}
    query = summaries[book_id]
    return {
        "book": book,
        "title": query.title,
        "space": space,
        "similar": [
            asdict(
                Recommendation(
                    rank,
                    summaries[int(ids[r])].external_id,
                    summaries[int(ids[r])].title,
                    summaries[int(ids[r])].authors,
                    round(float(c), 4),
                    [space],
                )
            )
            for rank, (r, c) in enumerate(zip(rows.tolist(), cosines.tolist(), strict=True), 1)
        ],
    }
