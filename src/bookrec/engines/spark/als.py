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
from bookrec.algorithms.matrix import WeightScheme
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
        users, books = als_on_pairs(
            read_pairs(spark, uri, blocks), matrix.shape, factors=factors,
            iterations=iterations, regularization=regularization, alpha=alpha, seed=seed,
            blocks=blocks, timings=timings,
        )  # fmt: skip
        with timed(timings, "collect"):
            return AlsFactors(
                user_factors=dense_rows(users, matrix.shape[0], "id", "features", factors),
                item_factors=dense_rows(books, matrix.shape[1], "id", "features", factors),
            )


def als_on_pairs(
    pairs: DataFrame,
    shape: tuple[int, int] | None,
    *,
    factors: int,
    iterations: int,
    regularization: float,
    alpha: float,
    seed: int,
    blocks: int,
    timings: dict[str, float] | None = None,
) -> tuple[Any, Any]:
    """MLlib ALS on a DataFrame of (user, book, confidence): Arrow tables of (id, features) of
    the users and of the books. `shape` (users, books) when known, else counted."""
    from pyspark.ml.recommendation import ALS
    from pyspark.sql import functions as F

    with timed(timings, "read"):
        n_pairs = pairs.count()
    if shape is None:
        shape = (pairs.select("user").distinct().count(), pairs.select("book").distinct().count())
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
        return model.userFactors.toArrow(), model.itemFactors.toArrow()


def fit_als_jdbc(
    database_url: str,
    max_interaction_id: int,
    scheme: WeightScheme,
    *,
    min_interactions: int = 2,
    factors: int = 128,
    iterations: int = 15,
    regularization: float | None = None,
    alpha: float = 1.0,
    seed: int = 42,
    options: SparkOptions = SparkOptions(),
    on_progress: ProgressFn | None = None,
    timings: dict[str, float] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`train cf` with the JDBC hand-off: executors read a PostgreSQL database's interactions
    (id ≤ max_interaction_id) in `options.partitions` ranges, Spark builds the k-core confidence
    matrix (`confidence.confidence_pairs`) and fits. Needs `options.jdbc_jar`. Returns (user
    ids, user factors, book ids, book factors), database ids ascending. `regularization` None
    is the built-in default scaled with the pairs. `timings` gets start, matrix, fit, collect."""
    from pyspark.sql import functions as F

    from bookrec.algorithms.cf import regularization_for
    from bookrec.engines.spark.confidence import confidence_pairs
    from bookrec.engines.spark.handoff import interactions_over_jdbc

    if not options.jdbc_jar:
        raise ValueError("the JDBC hand-off needs spark.jdbc_jar (BOOKREC_SPARK_JDBC_JAR)")
    with spark_session(options, on_progress, what="train cf", timings=timings) as spark:
        partitions = default_parallelism(spark, options)
        with timed(timings, "matrix"):
            rows = interactions_over_jdbc(
                spark, database_url, partitions, max_id=max_interaction_id
            )
            pairs = confidence_pairs(
                rows, scheme, min_user_interactions=min_interactions,
                min_book_interactions=min_interactions,
            ).select(
                F.col("user_id").cast("int").alias("user"),
                F.col("book_id").cast("int").alias("book"), "confidence",
            )  # fmt: skip
            n_pairs = pairs.count()
        if n_pairs == 0:
            raise ValueError("no pairs left after the k-core")
        users, books = als_on_pairs(
            pairs, None, factors=factors, iterations=iterations,
            regularization=regularization_for(regularization, n_pairs, alpha), alpha=alpha,
            seed=seed, blocks=partitions, timings=timings,
        )  # fmt: skip
    return (*_id_rows(users, factors), *_id_rows(books, factors))


def _id_rows(table, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids ascending, float32 vectors) of an Arrow table of (id, features)."""
    table = table.sort_by("id")
    ids = table.column("id").to_numpy().astype(np.int64)
    return ids, dense_rows(
        table.append_column("row", [np.arange(len(ids))]), len(ids), "row", "features", dim
    )
