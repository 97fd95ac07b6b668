"""The Spark engine's functions in local[2]: the built-in engines' contracts and their quality."""

from __future__ import annotations

import numpy as np
import pytest

from bookrec.algorithms.cf import regularization_for
from bookrec.algorithms.matrix import k_core
from bookrec.models.base import BookVectors
from bookrec.models.cf import CfVectors, cf_core, fit_cf
from bookrec.models.embedding import EmbeddingModel
from bookrec.models.evaluate import score_function
from bookrec.models.gnn import fit_gnn, gnn_core
from bookrec.progress import Phases
from bookrec.settings import CfSettings, GnnSettings

pytestmark = pytest.mark.spark


def _ndcg(held, model) -> float:
    return held.measure(score_function(model, held), 10)[0]["ndcg"]


def _gnn_model(held, book_ids, vectors) -> EmbeddingModel:
    return EmbeddingModel(BookVectors("gnn", book_ids, vectors), held.catalogue, held.popularity)


def test_als_factors_match_the_builtin_contract_and_quality(holdout, local_options, tmp_path):
    from bookrec.engines.spark import fit_als_spark

    params = CfSettings(factors=16, iterations=8)
    core = k_core(holdout.full, 2, 2)
    regularization = regularization_for(None, core.nnz, params.alpha)
    stages: list[tuple[str, int, int]] = []
    timings: dict[str, float] = {}
    factors = fit_als_spark(
        core.matrix, factors=16, iterations=8, regularization=regularization, alpha=params.alpha,
        seed=1, options=local_options, on_progress=lambda *s: stages.append(s), timings=timings,
    )  # fmt: skip
    assert factors.user_factors.shape == (core.shape[0], 16)
    assert factors.item_factors.shape == (core.shape[1], 16)
    for array in (factors.user_factors, factors.item_factors):
        assert array.dtype == np.float32 and np.isfinite(array).all()
        assert (np.abs(array).sum(axis=1) > 0).all()  # every row trained
    assert set(timings) == {"start", "stage", "read", "fit", "collect", "stop"}
    assert stages and all(done <= total for _, done, total in stages)
    assert not list((tmp_path / "staging").iterdir())  # the hand-off is cleaned up

    builtin = _ndcg(holdout, fit_cf(cf_core(holdout.full, params), params).vectors.model(
        holdout.catalogue
    ))  # fmt: skip
    vectors = CfVectors(core.user_ids, factors.user_factors, core.book_ids, factors.item_factors)
    spark = _ndcg(holdout, vectors.model(holdout.catalogue))
    assert builtin > 0.1  # the planted clusters are learnable at all
    assert spark >= 0.9 * builtin, (spark, builtin)


def test_als_parameter_mapping_gives_implicits_confidence():
    from bookrec.engines.spark import mllib_parameters

    mapped = mllib_parameters(100, 300, 2_000, regularization=8.0, alpha=4.0)
    # MLlib's 1 + alpha·(r − 1/alpha) is implicit's alpha·r.
    assert 1 + mapped["alpha"] * (2.5 + mapped["rating_offset"]) == pytest.approx(4.0 * 2.5)
    # The same total regularization: λ·(users + books) = regParam · 2 · pairs.
    assert mapped["regParam"] * 2 * 2_000 == pytest.approx(8.0 * 400)


@pytest.mark.parametrize("skipgram", ["mllib", "gensim"])
def test_gnn_vectors_match_the_builtin_contract_and_quality(
    holdout, local_options, skipgram, tmp_path
):
    from dataclasses import replace

    from bookrec.engines.spark import gnn_vectors_spark

    params = GnnSettings(dim=32, walk_length=20, walks_per_node=5, window=5, workers=1)
    core = k_core(holdout.full, 1, 1)
    # An isolated book: a column without pairs must come back as a zero row.
    import scipy.sparse as sp

    weights = sp.hstack([core.matrix, sp.csr_matrix((core.shape[0], 1))]).tocsr()
    timings: dict[str, float] = {}
    vectors = gnn_vectors_spark(
        weights, dim=32, walk_length=20, walks_per_node=5, window=5, seed=3,
        options=replace(local_options, skipgram=skipgram), timings=timings,
    )  # fmt: skip
    n_nodes = weights.shape[0] + weights.shape[1]
    assert vectors.shape == (n_nodes, 32) and vectors.dtype == np.float32
    assert np.isfinite(vectors).all()
    assert not vectors[-1].any() and (np.abs(vectors[:-1]).sum(axis=1) > 0).all()
    assert {"start", "graph", "walks", "skipgram"} <= set(timings)

    builtin_fit = fit_gnn(gnn_core(holdout.full, params), params, Phases()).vectors
    builtin = _ndcg(holdout, _gnn_model(holdout, builtin_fit.book_ids, builtin_fit.vectors))
    spark = _ndcg(holdout, _gnn_model(holdout, core.book_ids, vectors[weights.shape[0] : -1]))
    assert builtin > 0.1
    assert spark >= 0.85 * builtin, (spark, builtin)


def test_spark_walks_follow_the_graph(local_options):
    """Every step of a Spark walk is an edge of the graph; each node starts walks_per_node."""
    import scipy.sparse as sp

    from bookrec.algorithms.walks import build_graph
    from bookrec.engines.spark.node2vec import spark_walks
    from bookrec.engines.spark.runtime import spark_session

    weights = sp.random(30, 40, density=0.15, random_state=1, format="csr") * 5
    weights.data += 0.1
    graph = build_graph(weights)
    with spark_session(local_options) as spark:
        table = spark_walks(
            spark, graph, walk_length=7, walks_per_node=3, p=0.5, q=2.0, seed=4, partitions=3
        ).toArrow()
    walks = np.array(table.column("walk").to_pylist(), dtype=np.int64)
    adjacency = set()
    for node in range(graph.n_nodes):
        for edge in range(graph.indptr[node], graph.indptr[node + 1]):
            adjacency.add((node, int(graph.indices[edge])))
    steps = set(zip(walks[:, :-1].ravel().tolist(), walks[:, 1:].ravel().tolist(), strict=True))
    assert steps <= adjacency
    starts, counts = np.unique(walks[:, 0], return_counts=True)
    assert set(starts.tolist()) == set(np.flatnonzero(graph.has_edges).tolist())
    assert (counts == 3).all()
