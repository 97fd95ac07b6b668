"""Apache Spark as a training engine (the optional extra `bookrec[spark]`).

- `fit_als_spark`: `train cf` with MLlib's implicit ALS (the parameter mapping is in als.py);
- `gnn_vectors_spark`: `train gnn` with node2vec walks on Spark and MLlib's Word2Vec (or
  gensim on the walks brought back);
- `SparkOptions`: master, conf, staging location, memory, JDBC jar (settings section `spark`).

pyspark is imported only inside the functions, so importing this package is cheap.
"""

from bookrec.engines.spark.als import fit_als_spark, mllib_parameters
from bookrec.engines.spark.node2vec import gnn_vectors_spark
from bookrec.engines.spark.runtime import (
    JavaMissingError,
    SparkOptions,
    check_ready,
    java_executable,
)

__all__ = [
    "JavaMissingError",
    "SparkOptions",
    "check_ready",
    "fit_als_spark",
    "gnn_vectors_spark",
    "java_executable",
    "mllib_parameters",
]
