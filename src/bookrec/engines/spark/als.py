"""`train cf` on Spark: MLlib's implicit-feedback ALS on the built-in engine's confidence matrix.

Mapping the parameters (both engines minimise Σ c_ui (p_ui − x_u·y_i)² + regularization over
all user-book pairs, p = 1 for a stored pair and 0 for the rest, c = 1 for the rest):

- confidence: implicit 0.7 takes c = alpha·r for a stored pair of value r (`algorithms/cf.py`);
  MLlib takes c = 1 + alpha·rating. Spark is given rating = r − 1/alpha, so c = alpha·r exactly,
  with the same alpha; a pair whose alpha·r is at or below 1 (possible only with time decay or
  tiny weights) gets a rating of RATING_FLOOR, i.e. c just above 1 and p = 1 — implicit would
  give it c = alpha·r ≤ 1 — because MLlib reads a rating ≤ 0 as p = 0.
- regularization: implicit adds λ·I to every user's and every book's normal equations; MLlib
  adds regParam · n·I, n the user's (book's) number of stored pairs ("ALS-WR"). regParam =
  λ · (users + books) / (2 · pairs) gives both the same total regularization Σ λ_u + Σ λ_i;
  it is the built-in engine's λ, whether given or scaled with the data (0.06·alpha·√pairs).
- factors = rank, iterations = maxIter, seed = seed. MLlib solves each least-squares problem
  exactly (Cholesky), implicit with three conjugate-gradient steps, so equal parameters give
  vectors of the same quality, never the same vectors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from bookrec.algorithms.cf import AlsFactors
from bookrec.engines.spark.handoff import dense_rows, read_pairs, staging_dir, write_pairs
from bookrec.engines.spark.runtime import (
    ProgressFn,
    SparkOptions,
    default_parallelism,
    spark_session,
    timed,
)

if TYPE_CHECKING:
    import scipy.sparse as sp
    from pyspark.sql import DataFrame

RATING_FLOOR = 1e-6


def mllib_parameters(
    n_users: int, n_books: int, n_pairs: int, *, regularization: float, alpha: float
) -> dict[str, float]:
    """MLlib's regParam and alpha for the built-in engine's λ and alpha (see the module doc)."""
    reg_param = regularization * (n_users + n_books) / (2.0 * max(n_pairs, 1))
    return {"regParam": reg_param, "alpha": alpha, "rating_offset": -1.0 / alpha}


def fit_als_spark(
    matrix: sp.csr_matrix,
    *,
    factors: int = 128,
    iterations: int = 15,
    regularization: float = 0.01,
    alpha: float = 1.0,
    seed: int = 42,
    options: SparkOptions = SparkOptions(),
    on_progress: ProgressFn | None = None,
    timings: dict[str, float] | None = None,
) -> AlsFactors:
    """`algorithms.cf.fit_als` on Spark: the same matrix and parameters in, (user factors,
    item factors) float32 out, one row per matrix row and column.

    The matrix goes to Spark as Parquet in `options.staging`. `timings`, when given, receives
    the seconds of each step: start (the session), stage (Parquet written), fit, collect.
    """
    if matrix.shape[0] == 0 or matrix.shape[1] == 0 or matrix.nnz == 0:
        raise ValueError("cannot fit ALS on an empty matrix")
    if factors < 1 or iterations < 1:
        raise ValueError("factors and iterations must be >= 1")
    with (
        spark_session(options, on_progress, what="train cf", timings=timings) as spark,
        staging_dir(options.staging) as staged,
    ):
        with timed(timings, "stage"):
            uri = write_pairs(matrix, staged)
        spark.sparkContext.setCheckpointDir(staged.child("checkpoints")[0])
        blocks = default_parallelism(spark, options)
        return als_on_pairs(
            read_pairs(spark, uri, blocks), matrix.shape, factors=factors,
            iterations=iterations, regularization=regularization, alpha=alpha, seed=seed,
            blocks=blocks, timings=timings,
        )  # fmt: skip


def als_on_pairs(
    pairs: DataFrame,
    shape: tuple[int, int],
    *,
    factors: int,
    iterations: int,
    regularization: float,
    alpha: float,
    seed: int,
    blocks: int,
    timings: dict[str, float] | None = None,
) -> AlsFactors:
    """MLlib ALS on a DataFrame of (user, book, confidence) with user < shape[0] and book <
    shape[1]: the factors as dense arrays (zero rows for ids without pairs)."""
    from pyspark.ml.recommendation import ALS
    from pyspark.sql import functions as F

    n_pairs = pairs.count()
    params = mllib_parameters(
        shape[0], shape[1], n_pairs, regularization=regularization, alpha=alpha
    )
    ratings = pairs.select(
        "user",
        "book",
        F.greatest(F.col("confidence") + F.lit(params["rating_offset"]), F.lit(RATING_FLOOR))
        .cast("float")
        .alias("rating"),
    )
    als = ALS(
        rank=factors,
        maxIter=iterations,
        regParam=params["regParam"],
        alpha=alpha,
        implicitPrefs=True,
        seed=seed,
        userCol="user",
        itemCol="book",
        ratingCol="rating",
        numUserBlocks=blocks,
        numItemBlocks=blocks,
        nonnegative=False,
        checkpointInterval=10,
        coldStartStrategy="nan",
    )
    with timed(timings, "fit"):
        model = als.fit(ratings)
        # fit() is lazy about the last iteration's factors: counting makes them.
        model.userFactors.count()
        model.itemFactors.count()
    with timed(timings, "collect"):
        users = dense_rows(model.userFactors.toArrow(), shape[0], "id", "features", factors)
        books = dense_rows(model.itemFactors.toArrow(), shape[1], "id", "features", factors)
    return AlsFactors(user_factors=users, item_factors=books)


def spark_run_parameters(
    shape: tuple[int, int], n_pairs: int, *, regularization: float, alpha: float
) -> dict[str, Any]:
    """What a run record shows of the mapping (rounded)."""
    params = mllib_parameters(
        shape[0], shape[1], n_pairs, regularization=regularization, alpha=alpha
    )
    return {key: float(np.round(value, 8)) for key, value in params.items()}
