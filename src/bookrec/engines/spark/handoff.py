"""Getting the training data to Spark and results back.

Two ways in:
- **Parquet staging** (any database, the default): this process writes the confidence matrix
  as Parquet of (user, book, confidence) — matrix row and column indices, int32, and the
  matrix value, float32 — into a fresh directory under the staging location, which every
  executor must be able to read (a local directory for `local[N]` or workers on this host,
  `hdfs://…` or `s3a://…` on a cluster). The directory is deleted when the job ends.
- **JDBC** (PostgreSQL, with `spark.jdbc_jar` set): executors read the interactions table in
  `partitions` ranges of its id straight from the server (`interactions_over_jdbc`), and
  `spark_confidence.confidence_pairs` builds the same matrix in Spark.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import numpy as np

if TYPE_CHECKING:
    import scipy.sparse as sp
    from pyspark.sql import DataFrame, SparkSession

PAIR_COLUMNS = ("user", "book", "confidence")
ROWS_PER_GROUP = 1 << 20


@dataclass(frozen=True)
class StagingDir:
    """One job's directory: `uri` as Spark reads it, `path` as pyarrow's filesystem writes it."""

    uri: str
    path: str
    filesystem: object  # pyarrow.fs.FileSystem

    def child(self, name: str) -> tuple[str, str]:
        return f"{self.uri}/{name}", f"{self.path}/{name}"


@contextmanager
def staging_dir(location: str | None) -> Iterator[StagingDir]:
    """A new directory `bookrec-<random>` under `location` (None: the system's temporary
    directory), deleted with everything in it at the end."""
    import tempfile

    from pyarrow import fs

    base = location or tempfile.gettempdir()
    name = f"bookrec-{uuid.uuid4().hex[:12]}"
    scheme = urlsplit(base).scheme
    if scheme in ("", "file"):
        local = base[len("file://") :] if scheme == "file" else base
        filesystem, root = fs.LocalFileSystem(), str(_absolute(local))
        uri_root = f"file://{root}"
    else:
        # Hadoop's s3a:// is pyarrow's s3://; the rest (hdfs://, gs://, abfs://) name the same.
        arrow_uri = "s3" + base[3:] if scheme == "s3a" else base
        filesystem, root = fs.FileSystem.from_uri(arrow_uri)
        uri_root = base
    path = f"{root.rstrip('/')}/{name}"
    filesystem.create_dir(path, recursive=True)
    staged = StagingDir(uri=f"{uri_root.rstrip('/')}/{name}", path=path, filesystem=filesystem)
    try:
        yield staged
    finally:
        with suppress(Exception):
            filesystem.delete_dir(path)


def _absolute(path: str):
    from pathlib import Path

    return Path(path).expanduser().resolve()


def write_pairs(matrix: sp.csr_matrix, staged: StagingDir, name: str = "pairs") -> str:
    """The nonzero entries of a users × books matrix as Parquet; returns the URI to read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if max(matrix.shape) >= np.iinfo(np.int32).max:
        raise ValueError("Spark's ALS takes int32 ids: the matrix is too large")
    coo = matrix.tocoo()
    table = pa.table(
        {
            "user": coo.row.astype(np.int32, copy=False),
            "book": coo.col.astype(np.int32, copy=False),
            "confidence": coo.data.astype(np.float32, copy=False),
        }
    )
    uri, path = staged.child(f"{name}.parquet")
    with staged.filesystem.open_output_stream(path) as out:  # type: ignore[attr-defined]
        pq.write_table(table, out, row_group_size=ROWS_PER_GROUP, compression="snappy")
    return uri


def read_pairs(spark: SparkSession, uri: str, partitions: int) -> DataFrame:
    return spark.read.parquet(uri).repartition(partitions)


def dense_rows(table, n_rows: int, id_column: str, vector_column: str, dim: int) -> np.ndarray:
    """An (n_rows, dim) float32 array from an Arrow table of (id, list<float>) rows; rows of
    ids missing from the table are zeros."""
    out = np.zeros((n_rows, dim), dtype=np.float32)
    if table.num_rows == 0:
        return out
    ids = table.column(id_column).to_numpy().astype(np.int64)
    vectors = table.column(vector_column).combine_chunks()
    values = vectors.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    out[ids] = values.reshape(len(ids), dim)
    return out


def jdbc_url(database_url: str) -> tuple[str, dict[str, str]]:
    """(jdbc:postgresql://host:port/db, {"user":…, "password":…}) of a postgresql:// URL. The
    password travels as a connection property (Spark redacts it), never inside the URL."""
    from psycopg.conninfo import conninfo_to_dict

    parts = conninfo_to_dict(database_url)
    host = str(parts.get("host") or "localhost")
    port = str(parts.get("port") or 5432)
    database = str(parts.get("dbname") or parts.get("user") or "postgres")
    properties = {"driver": "org.postgresql.Driver"}
    if parts.get("user"):
        properties["user"] = str(parts["user"])
    if parts.get("password"):
        properties["password"] = str(parts["password"])
    return f"jdbc:postgresql://{host}:{port}/{database}", properties


def interactions_over_jdbc(
    spark: SparkSession, database_url: str, partitions: int, *, max_id: int
) -> DataFrame:
    """The interactions table (user_id, book_id, event, rating, ts as epoch seconds, id) read
    by `partitions` executors, each a range of the id column up to `max_id`."""
    from pyspark.sql import functions as F

    url, properties = jdbc_url(database_url)
    frame = spark.read.jdbc(
        url,
        "interactions",
        column="id",
        lowerBound=1,
        upperBound=max(max_id, 1) + 1,
        numPartitions=max(partitions, 1),
        properties={**properties, "fetchsize": "20000"},
    )
    return frame.select(
        F.col("id"),
        F.col("user_id"),
        F.col("book_id"),
        F.col("event"),
        F.col("rating"),
        F.unix_timestamp(F.col("occurred_at")).alias("ts"),
    )
