"""bookrec train cf --fold-in / train gnn --fold-in: vectors of the users and books that
changed since the last full run (or the last fold-in into it), in that run's space, without
retraining.

A fold-in holds the same training lock as the full run of its model, records a run of model
"cf-fold-in" / "gnn-fold-in" whose parameters name its base run, reads only the changed rows'
interactions and writes only the rows it solved, in one transaction that first checks the base
run is still the latest (a Ctrl-C or kill before that commit leaves every vector as it was).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from bookrec.errors import NoBaseRunError
from bookrec.progress import Phases
from bookrec.results import FoldInResult
from bookrec.services.training import recorded_run, training_lock
from bookrec.settings import Settings
from bookrec.storage.base import Repository, TrainingRun
from bookrec.storage.runs import FOLD_IN_SUFFIX

USER_GRAM, BOOK_GRAM = "user_gram", "book_gram"  # float64 FᵀF of each side, as artifacts


def fold_in_grams(user_vectors: np.ndarray, book_vectors: np.ndarray) -> dict[str, bytes]:
    """The artifacts of a full cf run that let a fold-in solve without reading every vector."""
    from bookrec.algorithms.cf import gram

    return {USER_GRAM: gram(user_vectors).tobytes(), BOOK_GRAM: gram(book_vectors).tobytes()}


def base_and_watermark(repo: Repository, model: str) -> tuple[TrainingRun, int, TrainingRun]:
    """(the latest succeeded full run, the id up to which it or a later fold-in into it has
    read the interactions, that run or fold-in); NoBaseRunError if there is no full run."""
    base = repo.latest_run(model)
    if base is None:
        raise NoBaseRunError(model, f"no bookrec train {model} has succeeded on this database")
    if base.max_interaction_id is None:
        raise NoBaseRunError(model, f"run {base.id} did not record the interactions it read")
    last = repo.latest_run(model + FOLD_IN_SUFFIX)
    if (
        last is not None
        and last.parameters.get("base_run_id") == base.id
        and (last.max_interaction_id or 0) > base.max_interaction_id
    ):
        return base, int(last.max_interaction_id), last
    return base, int(base.max_interaction_id), base


def fold_in_cf(
    repo: Repository, settings: Settings, phases: Phases, *, wait: bool = False
) -> FoldInResult:
    from bookrec.algorithms.cf import gram
    from bookrec.algorithms.foldin import updated_gram
    from bookrec.models.fold_in import cf_fold_in_parameters, fold_in_users

    started = time.perf_counter()
    with training_lock(repo, "cf", wait=wait):
        base, watermark, last = base_and_watermark(repo, "cf")
        params = cf_fold_in_parameters(base.parameters, base.id)
        changes = repo.changes_since(watermark)
        max_id = changes.max_interaction_id
        parameters = {"base_run_id": base.id, "watermark": watermark, **params.__dict__}
        with recorded_run(repo, "cf-fold-in", parameters, phases) as run_id:
            with phases.phase("load"):
                book_ids, book_vectors = repo.load_vectors("cf", "books")
                if book_vectors.shape[1:] != (params.factors,):
                    raise NoBaseRunError(
                        "cf", f"the stored book vectors are not the {params.factors}-d ones"
                        f" of run {base.id}",
                    )  # fmt: skip
                user_gram, book_gram = _grams(repo, "cf", base, last)
                if book_gram is None:
                    book_gram = gram(book_vectors)
                if user_gram is None:
                    user_gram = gram(repo.load_vectors("cf", "users")[1])
                now = _now(repo, params.weights, max_id)
                users = changes.user_ids
                user_rows = repo.interactions_of("users", users, max_id)
                new_books = changes.book_ids[~np.isin(changes.book_ids, book_ids)]
            with phases.phase("solve"):
                first = fold_in_users(
                    user_rows, users, book_ids, book_vectors, book_gram, params, now
                )
                old_ids, old_vectors = repo.vectors_of("cf", "users", users)
                gram_now = updated_gram(user_gram, old_vectors, first.vectors)
                solved_books = _solved_books(
                    repo, new_books, first, old_ids, old_vectors, gram_now, params, now, max_id
                )
                final = first
                if len(solved_books.ids):
                    all_ids = np.concatenate([book_ids, solved_books.ids])
                    order = np.argsort(all_ids)
                    all_vectors = np.concatenate([book_vectors, solved_books.vectors])[order]
                    book_gram = updated_gram(book_gram, np.empty(0), solved_books.vectors)
                    final = fold_in_users(
                        user_rows, users, all_ids[order], all_vectors, book_gram, params, now
                    )
                cleared = np.intersect1d(final.below_minimum, old_ids)
                user_gram = updated_gram(user_gram, old_vectors, final.vectors)
            result = {
                "n_users": len(final.ids),
                "n_books": len(solved_books.ids),
                "n_interactions": len(user_rows),
                "max_interaction_id": max_id,
                "metrics": {
                    "changed_users": len(users),
                    "users_cleared": len(cleared),
                    "new_books": len(new_books),
                    "books_below_minimum": len(solved_books.below_minimum),
                    "users_below_minimum": len(final.below_minimum),
                },
            }
            sides = (
                [("books", solved_books.ids, solved_books.vectors)] if len(solved_books.ids) else []
            )
            sides.append(("users", final.ids, final.vectors))
            with phases.phase("write", total=len(final.ids) + len(solved_books.ids)) as update:
                repo.write_fold_in(
                    "cf", "cf", base.id, run_id, {**result, "phases": phases.seconds},
                    sides=sides, cleared_users=cleared,
                    artifacts={USER_GRAM: user_gram.tobytes(), BOOK_GRAM: book_gram.tobytes()},
                    on_progress=update, books_read=(book_ids, book_vectors),
                )  # fmt: skip
        repo.finish_run(run_id, "succeeded", **{**result, "phases": phases.seconds})
    return FoldInResult(
        run_id=run_id, model="cf-fold-in", base_run_id=base.id, watermark=watermark,
        max_interaction_id=max_id, changed_users=len(users), users=len(final.ids),
        users_cleared=len(cleared), new_books=len(new_books), books=len(solved_books.ids),
        interactions=len(user_rows), phases=phases.seconds,
        seconds=round(time.perf_counter() - started, 3),
    )  # fmt: skip


def _solved_books(repo, new_books, first, old_ids, old_vectors, user_gram, params, now, max_id):
    """The new books' cf vectors against their readers' vectors: the ones just solved, else
    the stored ones (never a reader's vector that this fold-in clears)."""
    from bookrec.models.fold_in import SolvedRows, fold_in_books

    if not len(new_books):
        return SolvedRows(new_books, np.empty((0, params.factors), np.float32), new_books)
    book_rows = repo.interactions_of("books", new_books, max_id)
    readers = np.unique(book_rows.user_ids.astype(np.int64))
    stored_ids, stored = repo.vectors_of("cf", "users", np.setdiff1d(readers, first.ids))
    stored = stored.reshape(len(stored_ids), params.factors)
    stored_keep = ~np.isin(stored_ids, first.below_minimum)
    ids = np.concatenate([first.ids, stored_ids[stored_keep]])
    vectors = np.concatenate([first.vectors, stored[stored_keep]])
    order = np.argsort(ids)
    return fold_in_books(book_rows, new_books, ids[order], vectors[order], user_gram, params, now)


def fold_in_gnn(
    repo: Repository, settings: Settings, phases: Phases, *, wait: bool = False
) -> FoldInResult:
    from bookrec.models.fold_in import fold_in_gnn_books, gnn_fold_in_parameters

    started = time.perf_counter()
    with training_lock(repo, "gnn", wait=wait):
        base, watermark, _ = base_and_watermark(repo, "gnn")
        params = gnn_fold_in_parameters(base.parameters, base.id)
        changes = repo.changes_since(watermark)
        max_id = changes.max_interaction_id
        parameters = {"base_run_id": base.id, "watermark": watermark, **params.__dict__}
        with recorded_run(repo, "gnn-fold-in", parameters, phases) as run_id:
            with phases.phase("load"):
                vector_ids, vectors = repo.load_vectors("gnn", "books")
                new_books = changes.book_ids[~np.isin(changes.book_ids, vector_ids)]
                book_rows = repo.interactions_of("books", new_books, max_id)
                readers = np.unique(book_rows.user_ids.astype(np.int64))
                reader_rows = repo.interactions_of("users", readers, max_id)
                now = _now(repo, params.weights, max_id)
            with phases.phase("solve"):
                solved = fold_in_gnn_books(
                    book_rows, reader_rows, new_books, vector_ids, vectors, params, now
                )
            result = {
                "n_users": len(readers),
                "n_books": len(solved.ids),
                "n_interactions": len(book_rows) + len(reader_rows),
                "max_interaction_id": max_id,
                "metrics": {
                    "new_books": len(new_books),
                    "books_below_minimum": len(solved.below_minimum),
                },
            }
            with phases.phase("write", total=len(solved.ids)) as update:
                repo.write_fold_in(
                    "gnn", "gnn", base.id, run_id, {**result, "phases": phases.seconds},
                    sides=[("books", solved.ids, solved.vectors)] if len(solved.ids) else [],
                    on_progress=update, books_read=(vector_ids, vectors),
                )  # fmt: skip
        repo.finish_run(run_id, "succeeded", **{**result, "phases": phases.seconds})
    return FoldInResult(
        run_id=run_id, model="gnn-fold-in", base_run_id=base.id, watermark=watermark,
        max_interaction_id=max_id, changed_users=len(changes.user_ids), users=0,
        users_cleared=0, new_books=len(new_books), books=len(solved.ids),
        interactions=len(book_rows) + len(reader_rows), phases=phases.seconds,
        seconds=round(time.perf_counter() - started, 3),
    )  # fmt: skip


def _grams(repo: Repository, model: str, base: TrainingRun, last: TrainingRun) -> tuple[Any, Any]:
    """The Gram matrices stored by the run the watermark is of (None where it stored none)."""
    found = []
    for name in (USER_GRAM, BOOK_GRAM):
        artifact = repo.latest_artifact(last.model, name)
        found.append(
            np.frombuffer(artifact[1], dtype=np.float64)
            .reshape(int(np.sqrt(len(artifact[1]) // 8)), -1)
            .copy()
            if artifact is not None and artifact[0] == last.id
            else None
        )
    return found[0], found[1]


def _now(repo: Repository, weights: dict[str, Any], max_id: int) -> float | None:
    if weights.get("half_life_days") is None:
        return None
    newest = repo.newest_interaction_time(max_id)
    return None if newest is None else float(np.floor(newest))
