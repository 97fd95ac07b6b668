"""bookrec embed: book text → content vectors (lsa or minilm) → books.content_embedding.

A full run fits on every book, so all content vectors come from one fit. --only-missing
embeds the books without a vector with the stored model of the last run (lsa models are
stored in model_artifacts with their run), or falls back to a full run when there is none.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from bookrec.errors import InputError, MissingExtraError
from bookrec.progress import Phases
from bookrec.settings import Settings
from bookrec.storage.base import Repository

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
) -> dict[str, Any]:
    check_model_available(settings)
    started = time.perf_counter()
    with repo.training_lock("content", wait=wait):
        fallback = None
        stored = None
        if only_missing:
            stored, fallback = _stored_model(repo, settings)
        if only_missing and fallback is None:
            with phases.phase("load"):
                missing = repo.books_without_vector("content")
                books = repo.book_texts(missing) if missing else []
            mode = "only-missing"
        else:
            with phases.phase("load"):
                books = repo.book_texts()
            mode = "full"
        summary = _embed(repo, settings, phases, books, mode, stored)
    summary["refit_reason"] = fallback
    summary["seconds"] = round(time.perf_counter() - started, 3)
    return summary


def _stored_model(repo: Repository, settings: Settings) -> tuple[Any, str | None]:
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


def _embed(repo, settings, phases, books, mode: str, stored) -> dict[str, Any]:
    from bookrec.algorithms.content import book_texts, encode_minilm, fit_lsa, zero_rows

    content = settings.content
    texts = book_texts(books, model=content.model)
    summary: dict[str, Any] = {
        "model": content.model,
        "mode": mode,
        "books_considered": len(books),
        "without_text": len(texts.without_text),
        "run_id": None,
        "embedded": 0,
    }
    if mode == "only-missing" and not texts.texts:
        summary["phases"] = phases.seconds
        return summary  # nothing new: no run, nothing written
    if mode == "full" and not texts.texts:
        raise InputError("no book has any text to embed: run bookrec ingest books FILE first")

    parameters = {**content.model_dump(), "mode": mode}
    artifacts: dict[str, bytes] = {}
    if stored is not None:
        parameters["dim"] = stored.dim
    from bookrec.services.training import recorded_run

    with recorded_run(repo, "content", parameters, phases) as run_id:
        with phases.phase("embed", total=len(texts.texts)) as update:
            if content.model == "minilm":
                vectors = encode_minilm(texts.texts, batch_size=content.batch_size, on_batch=update)
            elif stored is not None:
                vectors = stored.transform(texts.texts, on_batch=update)
            else:
                model, vectors = fit_lsa(
                    texts.texts, dim=content.dim, seed=content.seed, on_batch=update
                )
                artifacts[LSA_ARTIFACT] = model.to_bytes()
        empty = zero_rows(vectors)
        ids = np.array(texts.book_ids, dtype=np.int64)[~empty]
        vectors = vectors[~empty]
        result = {
            "n_books": len(ids),
            "phases": dict(phases.seconds),
            "metrics": {"without_text": len(texts.without_text) + int(empty.sum())},
        }
        with phases.phase("write", total=len(ids)) as update:
            if mode == "full":
                repo.replace_vectors(
                    "content", run_id, result, ids, vectors, artifacts=artifacts,
                    on_progress=update,
                )  # fmt: skip
            else:
                repo.update_vectors("content", run_id, result, ids, vectors, on_progress=update)
    repo.finish_run(run_id, "succeeded", **{**result, "phases": phases.seconds})
    summary.update(
        run_id=run_id,
        embedded=len(ids),
        without_text=len(texts.without_text) + int(empty.sum()),
        dim=int(vectors.shape[1]) if len(vectors) else parameters["dim"],
        books_per_second=round(len(texts.texts) / max(phases.seconds["embed"], 1e-9)),
        phases=phases.seconds,
    )
    return summary
