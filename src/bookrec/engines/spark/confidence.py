"""The confidence matrix of `algorithms.matrix.build_matrix` + `k_core`, built in Spark from
interaction rows (for the JDBC hand-off, where the interactions never pass through here).

Same rules, column for column: event weights, a rating worth `rate_per_star` per star above
`rate_zero_at` and only a pair's latest rating counting (by timestamp, then id), time decay from
the newest interaction, the sum per pair capped, pairs weighing 0 dropped, then users and books
dropped until every one keeps the minimum.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bookrec.algorithms.matrix import SECONDS_PER_DAY, WeightScheme
from bookrec.domain import EVENTS, RATING_MAX, RATING_MIN

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def confidence_pairs(
    interactions: DataFrame,
    scheme: WeightScheme,
    *,
    min_user_interactions: int,
    min_book_interactions: int,
) -> DataFrame:
    """(user_id, book_id, confidence float) of interactions with columns id, user_id, book_id,
    event (a name of EVENTS), rating, ts (epoch seconds)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    table = scheme.event_table()
    weight = F.lit(0.0)
    for code, name in enumerate(EVENTS):
        if name != "rate":
            weight = F.when(F.col("event") == name, F.lit(float(table[code]))).otherwise(weight)
    stars = F.least(
        F.greatest(F.col("rating").cast("double"), F.lit(RATING_MIN)), F.lit(RATING_MAX)
    )
    rated = F.coalesce(
        F.lit(scheme.rate_per_star) * F.greatest(stars - F.lit(scheme.rate_zero_at), F.lit(0.0)),
        F.lit(0.0),
    )
    weight = F.when(F.col("event") == "rate", rated).otherwise(weight)
    if scheme.half_life_days is not None:
        now = interactions.agg(F.max("ts")).first()[0] or 0
        age_days = F.greatest(F.lit(float(now)) - F.col("ts"), F.lit(0.0)) / SECONDS_PER_DAY
        weight = weight * F.pow(F.lit(0.5), age_days / F.lit(scheme.half_life_days))
    latest_rating = Window.partitionBy("user_id", "book_id").orderBy(
        F.col("ts").desc(), F.col("id").desc()
    )
    rates = (
        interactions.where(F.col("event") == "rate")
        .withColumn("n", F.row_number().over(latest_rating))
        .where(F.col("n") == 1)
        .drop("n")
    )
    rows = interactions.where(F.col("event") != "rate").unionByName(rates)
    # float32 per interaction, as event_weights returns them, then summed in float64.
    pairs = (
        rows.select("user_id", "book_id", weight.cast("float").cast("double").alias("w"))
        .where(F.col("w") > 0)
        .groupBy("user_id", "book_id")
        .agg(F.least(F.sum("w"), F.lit(scheme.cap)).cast("float").alias("confidence"))
    )
    return k_core_pairs(pairs, min_user_interactions, min_book_interactions)


def k_core_pairs(pairs: DataFrame, min_user: int, min_book: int) -> DataFrame:
    """Drop users and books with too few pairs until none is left to drop."""
    from pyspark.sql import functions as F

    current = pairs.cache()
    size = current.count()
    while size:
        users = current.groupBy("user_id").count().where(F.col("count") >= min_user)
        books = current.groupBy("book_id").count().where(F.col("count") >= min_book)
        kept = (
            current.join(users.select("user_id"), "user_id", "left_semi")
            .join(books.select("book_id"), "book_id", "left_semi")
            .cache()
        )
        kept_size = kept.count()
        current.unpersist()
        current = kept
        if kept_size == size:
            break
        size = kept_size
    return current.select("user_id", "book_id", "confidence")
