import importlib.util
import sys

import numpy as np
import pytest

from bookrec.algorithms.node2vec_engine import Node2VecPackageMissing, node2vec_package_embeddings
from tests.algorithms.test_skipgram import neighbour_precision, planted_clusters

HAS_PACKAGE = all(importlib.util.find_spec(name) for name in ("node2vec", "networkx"))
needs_package = pytest.mark.skipif(
    not HAS_PACKAGE,
    reason='the node2vec package is not installed (pip install "bookrec[node2vec]")',
)


def test_missing_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "node2vec", None)
    weights, _ = planted_clusters()
    with pytest.raises(Node2VecPackageMissing, match=r"bookrec\[node2vec\]"):
        node2vec_package_embeddings(weights, dim=8)


@needs_package
def test_package_engine_finds_planted_clusters():
    weights, book_cluster = planted_clusters()
    n_users = weights.shape[0]
    phases = []
    vectors = node2vec_package_embeddings(
        weights,
        dim=32,
        walk_length=20,
        walks_per_node=10,
        p=1.0,
        q=0.5,
        window=5,
        epochs=2,
        negative=5,
        seed=1,
        workers=1,
        on_phase=phases.append,
    )
    assert vectors.shape == (weights.shape[0] + weights.shape[1], 32)
    assert phases == ["graph", "walks", "skipgram"]
    assert neighbour_precision(vectors[n_users:], book_cluster) >= 0.9


@needs_package
def test_package_engine_leaves_isolated_nodes_zero():
    weights, _ = planted_clusters(n_clusters=2, users_per_cluster=10, books_per_cluster=12)
    weights = weights.tolil()
    weights[:, 0] = 0.0
    vectors = node2vec_package_embeddings(weights.tocsr(), dim=8, walk_length=5, workers=1)
    n_users = weights.shape[0]
    assert not vectors[n_users].any()
    assert np.abs(vectors[n_users + 1 :]).sum(axis=1).min() > 0
