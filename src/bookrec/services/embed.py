"""bookrec embed: book text → content vectors (lsa or minilm) → books.content_embedding.

A full run fits on every book, so all content vectors come from one fit. --only-missing
embeds the books without a vector with the stored model of the last run (lsa models are
stored in model_artifacts with their run), or falls back to a full run when there is none.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from bookrec.domain import BookText
from bookrec.errors import InputError, MissingExtraError
from bookrec.models.content import content_dim, content_documents, fit_content
from bookrec.progress import Phases
from bookrec.results import EmbedResult
from bookrec.services.training import recorded_run, training_lock
from bookrec.settings import Settings
from bookrec.storage.base import Repository

if TYPE_CHECKING:
    from bookrec.algorithms.content import LsaModel

LSA_ARTIFACT = "lsa"


def check_model_available(settings: Settings) -> None:
    """Fail before any write when the configured model needs an extra that is missing."""
    from bookrec.algorithms.content import minilm_available

    if settings.content.model == "minilm" and not minilm_available():
        raise MissingExtraError("transformers", "the minilm content model")


def embed_books(
    repo: Repository,
    settings: Settings,
    phases: Phases,
    *,
    only_missing: bool = False,
    wait: bool = False,
) -> EmbedResult:
    check_model_available(settings)
    started = time.perf_counter()
    with training_lock(repo, "content", wait=wait):
        refit_reason = None
        stored = None
        if only_missing:
            stored, refit_reason = _stored_model(repo, settings)
        if only_missing and refit_reason is None:
            with phases.phase("load"):
                missing = repo.books_without_vector("content")
                books = repo.book_texts(missing) if missing else []
            mode = "only-missing"
        else:
            with phases.phase("load"):
                books = repo.book_texts()
            mode = "full"
        return _embed(repo, settings, phases, books, mode, stored, refit_reason, started)


def _stored_model(repo: Repository, settings: Settings) -> tuple[LsaModel | None, str | None]:
    """The model --only-missing continues with, or why a full run is needed instead."""
    from bookrec.algorithms.content import IncompatibleModelError, LsaModel

    last = repo.latest_run("content")
    if last is None:
        return None, "no content model fitted yet"
    if last.parameters.get("model") != settings.content.model:
        return None, f"the stored vectors come from {last.parameters.get('model')}"
    if settings.content.model == "minilm":
        return None, None  # a fixed pre-trained model: nothing to store
    artifact = repo.latest_artifact("content", LSA_ARTIFACT)
    if artifact is None:
        return None, "no stored lsa model"
    try:
        model = LsaModel.from_bytes(artifact[1])
    except IncompatibleModelError as exc:
        return None, str(exc)
    return model, None


def _embed(
    repo: Repository,
    settings: Settings,
    phases: Phases,
    books: list[BookText],
    mode: str,
    stored: LsaModel | None,
    refit_reason: str | None,
    started: float,
) -> EmbedResult:
    content = settings.content
    documents = content_documents(books, content)

    def result(
        run_id: int | None,
        embedded: int,
        without_text: int,
        dim: int | None = None,
        books_per_second: int | None = None,
    ) -> EmbedResult:
        return EmbedResult(
            model=content.model, mode=mode, books_considered=len(books),
            without_text=without_text, run_id=run_id, embedded=embedded,
            dim=dim, books_per_second=books_per_second,
            phases=phases.seconds, refit_reason=refit_reason,
            seconds=round(time.perf_counter() - started, 3),
        )  # fmt: skip

    if mode == "only-missing" and not documents.texts:
        return result(None, 0, len(documents.without_text))  # nothing new: no run, no write
    if mode == "full" and not documents.texts:
        raise InputError("no book has any text to embed: run bookrec ingest books FILE first")
    parameters = {**content.model_dump(), "mode": mode}
    if stored is not None:
        parameters["dim"] = stored.dim
    with recorded_run(repo, "content", parameters, phases) as run_id:
        with phases.phase("embed", total=len(documents.texts)) as update:
            fit = fit_content(documents, content, stored, on_batch=update)
        artifacts = {LSA_ARTIFACT: fit.fitted.to_bytes()} if fit.fitted is not None else {}
        vectors = fit.vectors
        run = {
            "n_books": len(vectors.book_ids),
            "phases": dict(phases.seconds),
            "metrics": {"without_text": fit.without_text},
        }
        with phases.phase("write", total=len(vectors.book_ids)) as update:
            if mode == "full":
                repo.replace_vectors(
                    "content", run_id, run, vectors.book_ids, vectors.vectors,
                    artifacts=artifacts, on_progress=update,
                )  # fmt: skip
            else:
                repo.update_vectors(
                    "content", run_id, run, vectors.book_ids, vectors.vectors, on_progress=update
                )
    repo.finish_run(run_id, "succeeded", **{**run, "phases": phases.seconds})
    dim = vectors.dim if len(vectors.book_ids) else content_dim(content, stored)
    books_per_second = round(len(documents.texts) / max(phases.seconds["embed"], 1e-9))
    return result(run_id, len(vectors.book_ids), fit.without_text, dim=dim,
                  books_per_second=books_per_second)  # fmt: skip
