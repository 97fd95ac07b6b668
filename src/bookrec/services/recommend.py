"""What the serving API would answer: recommendations for a user, similar books for a book.

The models are the model layer's, built from the vectors stored in the database."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from bookrec.errors import InputError, NoProfileError, NotReadyError, NoUserVectorError
from bookrec.models import VECTOR_STRATEGIES
from bookrec.models.base import BookVectors, Model, UserBatch
from bookrec.results import Recommendation, Recommendations, SimilarBooks
from bookrec.settings import Settings
from bookrec.storage.base import Repository

if TYPE_CHECKING:
    from bookrec.algorithms.matrix import WeightScheme

STRATEGIES = ("hybrid", "cf", "gnn", "content", "popular")
SECONDS_PER_DAY = 86_400.0


class _Catalogue:
    """All books as one index space, with the stored vectors of the families asked for."""

    def __init__(self, repo: Repository, families: list[str]) -> None:
        self.repo = repo
        # Row blocks: a snapshot's chunks as fetched, never joined into one array.
        self.loaded = repo.load_vector_families(families, as_blocks=True) if families else {}
        # Vectors belong to books: the family with the most (usually content, which every
        # book with a text has) may hold every book's id already.
        largest = max((ids for ids, _ in self.loaded.values()), key=len, default=None)
        self.book_ids = repo.all_book_ids(known=largest)

    def columns(self, ids: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.book_ids, ids)

    def vectors(self, family: str) -> BookVectors | None:
        ids, vectors = self.loaded[family]
        return BookVectors(family, ids, vectors) if len(ids) else None

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
) -> Recommendations:
    from bookrec.algorithms.matrix import weight_row
    from bookrec.algorithms.ranking import top_k
    from bookrec.algorithms.scoring import available
    from bookrec.models.hybrid import HybridModel
    from bookrec.models.popular import PopularModel

    if strategy not in STRATEGIES:
        raise InputError(f"unknown strategy {strategy!r} (expected one of {', '.join(STRATEGIES)})")
    user_id = repo.find_user(user)
    if user_id is None:
        raise InputError(
            f"unknown user {user!r}",
            hint="users appear with their interactions: bookrec ingest interactions FILE",
        )
    weights = hybrid_weights(repo, settings)
    wanted = _wanted(strategy, weights)
    catalogue = _Catalogue(repo, [s for s in wanted if s in VECTOR_STRATEGIES])
    history = repo.load_interactions(user_id)
    scheme = settings.weights.scheme()
    users = UserBatch(
        np.array([user_id], dtype=np.int64), weight_row(history, catalogue.book_ids, scheme)[None]
    )
    popularity = catalogue.popularity(scheme, recent_days)
    models: dict[str, Model] = {"popular": PopularModel(catalogue.book_ids, popularity)}
    models |= _vector_models(
        repo, settings, catalogue, users, popularity, wanted, explicit=strategy != "hybrid"
    )
    if strategy == "hybrid":
        hybrid = HybridModel(models, weights)
        parts = hybrid.part_scores(users)
        scores = hybrid.fuse(parts)
        used = [s for s in parts if hybrid.weights.get(s, 0) > 0 and available(parts[s])[0]]
        used = used or ["popular"]
    else:
        scores = models[strategy].scores(users)
        parts = {strategy: scores}
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
        contributed = tuple(s for s in used if np.isfinite(parts[s][0, column]))
        score = round(float(scores[0, column]), 4)
        results.append(
            Recommendation(rank, book.external_id, book.title, book.authors, score, contributed)
        )
    return Recommendations(
        user=user,
        strategy=strategy,
        strategies_used=tuple(used),
        interactions=len(history),
        excluded_seen=0 if include_seen else len(seen),
        recommendations=tuple(results),
        k=k,
        rankable=int(np.isfinite(scores[0]).sum()),
    )


def hybrid_weights(repo: Repository, settings: Settings) -> dict[str, float]:
    """The fusion weights: the explicitly set ones over the published learnt ones (table
    hybrid_weights, written by the last train that passed the quality gate), or over the
    fallback's before any."""
    from bookrec.models.blend import FALLBACK_BLEND, Blend

    published = repo.hybrid_weights()
    if not published:
        return FALLBACK_BLEND.resolve(settings.hybrid)
    learnt = Blend({name: weight for name, (weight, _, _) in published.items()}, "learnt")
    return learnt.resolve(settings.hybrid)


def _wanted(strategy: str, weights: dict[str, float]) -> list[str]:
    if strategy != "hybrid":
        return [strategy]
    return [s for s in ("cf", "gnn", "content", "popular") if weights[s] > 0] or ["popular"]


def _vector_models(
    repo: Repository,
    settings: Settings,
    catalogue: _Catalogue,
    users: UserBatch,
    popularity: np.ndarray,
    wanted: list[str],
    *,
    explicit: bool,
) -> dict[str, Model]:
    """The models of the wanted vector strategies that can serve this user. A strategy asked
    for by name that cannot is an error naming what to run; hybrid just leaves it out."""
    from bookrec.models.cf import CfVectors
    from bookrec.models.embedding import EmbeddingModel

    commands = VECTOR_STRATEGIES
    models: dict[str, Model] = {}
    for name in wanted:
        if name not in commands:
            continue
        books = catalogue.vectors(name)
        if books is None:
            if explicit:
                raise NotReadyError(f"no {name} vectors yet", hint=f"run {commands[name]}")
            continue
        if name == "cf":
            user_id = int(users.user_ids[0])
            user_vector = repo.load_vector("cf", "users", user_id)
            if user_vector is None or user_vector.shape[0] != books.dim:
                if explicit:
                    raise NoUserVectorError(
                        "cf", "newer than the last training, or below --min-interactions"
                    )
                continue
            vectors = CfVectors(users.user_ids, user_vector[None], books.book_ids, books.vectors)
            models[name] = vectors.model(catalogue.book_ids)
            continue
        if not users.weights.any():
            if explicit:
                raise NoProfileError(name)
            continue
        prior = settings.gnn.prior if name == "gnn" else settings.content.prior
        models[name] = EmbeddingModel(books, catalogue.book_ids, popularity, prior)
    return models


def similar(repo: Repository, book: str, *, space: str = "content", k: int = 10) -> SimilarBooks:
    from bookrec.algorithms.scoring import similar_books

    commands = VECTOR_STRATEGIES
    if space not in commands:
        raise InputError(f"unknown space {space!r} (expected cf, gnn or content)")
    book_id = repo.find_book(book)
    if book_id is None:
        raise InputError(f"unknown book {book!r}", hint="bookrec ingest books FILE")
    ids, vectors = repo.load_vector_families([space], as_blocks=True)[space]
    if len(ids) == 0:
        raise NotReadyError(f"no {space} vectors yet", hint=f"run {commands[space]}")
    row = np.searchsorted(ids, book_id)
    if row >= len(ids) or ids[row] != book_id:
        raise NotReadyError(
            f"book {book!r} has no {space} vector (it has no interactions, or is newer than"
            " the last run)",
            hint=f"run {commands[space]}",
        )
    rows, cosines = similar_books(vectors, int(row), k)
    summaries = {b.id: b for b in repo.book_summaries([*ids[rows].tolist(), book_id])}
    found = []
    for rank, (r, cosine) in enumerate(zip(rows.tolist(), cosines.tolist(), strict=True), 1):
        summary = summaries[int(ids[r])]
        found.append(
            Recommendation(
                rank, summary.external_id, summary.title, summary.authors, round(cosine, 4),
                (space,),
            )
        )  # fmt: skip
    return SimilarBooks(
        book=book, title=summaries[book_id].title, space=space, similar=tuple(found), k=k,
        rankable=len(ids) - 1,
    )  # fmt: skip
