"""Fold-in in the model layer: new and changed rows' vectors in the space of a finished run.

cf: users solved against the run's book factors and new books against its user factors, with
the weighting, alpha, regularization and k-core minimum of that run (read from its
training_runs row): the same half-step as ALS itself (algorithms.foldin.solve_rows). gnn: new
books as the mean of their readers' other books' vectors (algorithms.foldin.neighbour_mean).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bookrec.algorithms.matrix import WeightScheme, build_matrix
from bookrec.domain import InteractionArrays
from bookrec.errors import NoBaseRunError


@dataclass(frozen=True)
class CfFoldInParameters:
    """What a cf fold-in takes from its base run."""

    factors: int
    alpha: float
    regularization: float
    min_interactions: int
    weights: dict[str, Any]

    def scheme(self) -> WeightScheme:
        return WeightScheme(**self.weights)


@dataclass(frozen=True)
class GnnFoldInParameters:
    dim: int
    min_interactions: int
    weights: dict[str, Any]

    def scheme(self) -> WeightScheme:
        return WeightScheme(**self.weights)


def cf_fold_in_parameters(parameters: dict[str, Any], run_id: int) -> CfFoldInParameters:
    """The base run's parameters, or NoBaseRunError saying why they cannot be reproduced."""
    if parameters.get("engine", "builtin") != "builtin":
        raise NoBaseRunError(
            "cf",
            f"run {run_id} trained with engine {parameters['engine']!r}, whose regularization"
            " differs from the implicit-ALS equation a fold-in solves",
        )
    missing = [
        key for key in ("factors", "alpha", "regularization_used", "min_interactions", "weights")
        if key not in parameters
    ]  # fmt: skip
    if missing:
        raise NoBaseRunError("cf", f"run {run_id} did not record {', '.join(missing)}")
    found = CfFoldInParameters(
        int(parameters["factors"]), float(parameters["alpha"]),
        float(parameters["regularization_used"]), int(parameters["min_interactions"]),
        dict(parameters["weights"]),
    )  # fmt: skip
    _check_scheme(found.weights, "cf", run_id)
    return found


def gnn_fold_in_parameters(parameters: dict[str, Any], run_id: int) -> GnnFoldInParameters:
    missing = [k for k in ("dim", "min_interactions", "weights") if k not in parameters]
    if missing:
        raise NoBaseRunError("gnn", f"run {run_id} did not record {', '.join(missing)}")
    found = GnnFoldInParameters(
        int(parameters["dim"]), int(parameters["min_interactions"]), dict(parameters["weights"])
    )
    _check_scheme(found.weights, "gnn", run_id)
    return found


def _check_scheme(weights: dict[str, Any], model: str, run_id: int) -> None:
    try:
        WeightScheme(**weights)
    except (TypeError, ValueError) as exc:
        reason = f"run {run_id} recorded weights this bookrec cannot use: {exc}"
        raise NoBaseRunError(model, reason) from exc


@dataclass(frozen=True, eq=False)
class SolvedRows:
    """Vectors solved for some rows (ascending ids), and the rows left below the minimum."""

    ids: np.ndarray
    vectors: np.ndarray
    below_minimum: np.ndarray


def fold_in_users(
    interactions: InteractionArrays,
    user_ids: np.ndarray,
    book_ids: np.ndarray,
    book_vectors: np.ndarray,
    book_gram: np.ndarray,
    parameters: CfFoldInParameters,
    now: float | None,
) -> SolvedRows:
    """Each user's vector against the fixed books (ascending `book_ids`), from all of their
    interactions with those books; users with fewer than `min_interactions` weighted pairs
    (a 1–2★ rating weighs nothing) get none."""
    from bookrec.algorithms.cf import solve_rows

    matrix = build_matrix(
        interactions, parameters.scheme(), now, user_ids=user_ids, book_ids=book_ids
    )
    return _solved(matrix.user_ids, matrix.matrix, book_vectors, book_gram, parameters, solve_rows)


def fold_in_books(
    interactions: InteractionArrays,
    book_ids: np.ndarray,
    reader_ids: np.ndarray,
    reader_vectors: np.ndarray,
    user_gram: np.ndarray,
    parameters: CfFoldInParameters,
    now: float | None,
) -> SolvedRows:
    """Each book's vector against the fixed vectors of its readers (ascending `reader_ids`),
    with YᵀY over every user vector (`user_gram`)."""
    from bookrec.algorithms.cf import solve_rows

    matrix = build_matrix(
        interactions, parameters.scheme(), now, user_ids=reader_ids, book_ids=book_ids
    )
    books_by_readers = matrix.matrix.T.tocsr()
    return _solved(
        matrix.book_ids, books_by_readers, reader_vectors, user_gram, parameters, solve_rows
    )


def _solved(ids, matrix, fixed, fixed_gram, parameters, solve_rows) -> SolvedRows:
    pairs = np.diff(matrix.indptr)
    enough = pairs >= parameters.min_interactions
    vectors = solve_rows(
        matrix[enough], fixed, regularization=parameters.regularization,
        alpha=parameters.alpha, fixed_gram=fixed_gram,
    )  # fmt: skip
    return SolvedRows(ids[enough], vectors, ids[~enough])


def fold_in_gnn_books(
    book_interactions: InteractionArrays,
    reader_interactions: InteractionArrays,
    book_ids: np.ndarray,
    vector_ids: np.ndarray,
    vectors: np.ndarray,
    parameters: GnnFoldInParameters,
    now: float | None,
) -> SolvedRows:
    """New books' gnn vectors: the two-step-walk mean over their readers' books that have a
    vector; books with fewer than `min_interactions` readers, or whose readers read no such
    book, get none."""
    from bookrec.algorithms.foldin import neighbour_mean

    scheme = parameters.scheme()
    readers = np.unique(book_interactions.user_ids.astype(np.int64))
    new = build_matrix(book_interactions, scheme, now, user_ids=readers, book_ids=book_ids)
    known = build_matrix(reader_interactions, scheme, now, user_ids=readers, book_ids=vector_ids)
    book_readers = new.matrix.T.tocsr()
    means = neighbour_mean(book_readers, known.matrix, vectors)
    enough = (np.diff(book_readers.indptr) >= parameters.min_interactions) & means.any(axis=1)
    return SolvedRows(new.book_ids[enough], means[enough], new.book_ids[~enough])
