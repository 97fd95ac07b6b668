"""The same node2vec job run through the `node2vec` PyPI package (optional extra bookrec[node2vec]).

The package precomputes a transition table for every (previous, current) node pair, in pure
Python over networkx: far slower and larger than walks.py, kept as a reference engine.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
from scipy.sparse import csr_matrix

from bookrec.errors import MissingExtraError


class Node2VecPackageMissing(MissingExtraError):
    """The optional `node2vec` package (or networkx) is not installed."""

    def __init__(self) -> None:
        super().__init__("node2vec", "the node2vec engine")


def require_package() -> None:
    """Node2VecPackageMissing unless the package and networkx can be imported."""
    from importlib.util import find_spec

    if find_spec("node2vec") is None or find_spec("networkx") is None:
        raise Node2VecPackageMissing()


def node2vec_package_embeddings(
    weights: csr_matrix,
    *,
    dim: int = 256,
    walk_length: int = 80,
    walks_per_node: int = 10,
    p: float = 1.0,
    q: float = 1.0,
    window: int = 5,
    epochs: int = 1,
    negative: int = 5,
    sample: float | None = None,
    learning_rate: float = 0.025,
    seed: int = 42,
    workers: int = 1,
    on_phase: Callable[[str], None] | None = None,
) -> np.ndarray:
    """Node vectors (n_users + n_books, dim) float32 of the users × books `weights` matrix.

    Node ids are as in walks.py (users first, then books); nodes without edges get zero rows.
    `on_phase(name)` is called as each phase starts: "graph", "walks" (the package's
    transition tables and walks), "skipgram". The package seeds Python's and numpy's global
    random generators; its walks are repeatable only with workers=1.
    """
    with _no_pkg_resources_warning():
        return _embeddings(
            weights, dim=dim, walk_length=walk_length, walks_per_node=walks_per_node, p=p, q=q,
            window=window, epochs=epochs, negative=negative, sample=sample,
            learning_rate=learning_rate, seed=seed, workers=workers, on_phase=on_phase,
        )  # fmt: skip


PKG_RESOURCES_WARNING = "pkg_resources is deprecated"


@contextmanager
def _no_pkg_resources_warning() -> Iterator[None]:
    """Without setuptools' deprecation warning for `import pkg_resources`, which node2vec 0.4.3
    (the last release that allows numpy 2) does: printed by this process and by each of
    joblib's worker processes, which import the package again (3 times with 2 workers). The
    workers start inside the package's first walk and read PYTHONWARNINGS at start-up."""
    previous = os.environ.get("PYTHONWARNINGS")
    ignore = f"ignore:{PKG_RESOURCES_WARNING}:UserWarning"
    os.environ["PYTHONWARNINGS"] = f"{previous},{ignore}" if previous else ignore
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", PKG_RESOURCES_WARNING, UserWarning)
            yield
    finally:
        if previous is None:
            del os.environ["PYTHONWARNINGS"]
        else:
            os.environ["PYTHONWARNINGS"] = previous


def _embeddings(
    weights: csr_matrix,
    *,
    dim: int,
    walk_length: int,
    walks_per_node: int,
    p: float,
    q: float,
    window: int,
    epochs: int,
    negative: int,
    learning_rate: float,
    sample: float | None,
    seed: int,
    workers: int,
    on_phase: Callable[[str], None] | None,
) -> np.ndarray:
    try:
        import networkx as nx
        from node2vec import Node2Vec
    except ImportError as error:
        raise Node2VecPackageMissing() from error
    from bookrec.algorithms.skipgram import (
        default_sample,
        one_blas_thread,
        stable_hash,
        workers_stopped_on_error,
    )

    def phase(name: str) -> None:
        if on_phase is not None:
            on_phase(name)

    phase("graph")
    pairs = csr_matrix(weights).tocoo()
    n_users, n_books = pairs.shape
    graph = nx.Graph()
    graph.add_weighted_edges_from(
        zip(pairs.row.tolist(), (pairs.col + n_users).tolist(), pairs.data.tolist(), strict=True)
    )
    if sample is None:
        sample = default_sample(graph.number_of_nodes())  # the nodes with edges, as ours
    phase("walks")
    walker = Node2Vec(
        graph,
        dimensions=dim,
        walk_length=walk_length,
        num_walks=walks_per_node,
        p=p,
        q=q,
        workers=workers,
        quiet=True,
        seed=seed,
    )
    phase("skipgram")
    # gensim's job producer thread reads the walks through this, so that an interrupt can
    # end the producer and with it the workers (see workers_stopped_on_error).
    stopped = threading.Event()
    walker.walks = _StoppableWalks(walker.walks, stopped)
    with one_blas_thread(), workers_stopped_on_error(stopped.set):  # as the built-in engine
        model = walker.fit(
            window=window,
            min_count=1,
            negative=negative,
            sample=sample,
            epochs=epochs,
            alpha=learning_rate,
            seed=seed,
            hashfxn=stable_hash,
        )
    vectors = np.zeros((n_users + n_books, dim), dtype=np.float32)
    nodes = np.fromiter((int(key) for key in model.wv.index_to_key), dtype=np.int64)
    vectors[nodes] = model.wv.vectors
    return vectors


class _StoppableWalks:
    """The walks, iterable again for every epoch, until `stopped` is set."""

    def __init__(self, walks: Sequence[list[str]], stopped: threading.Event) -> None:
        self.walks = walks
        self.stopped = stopped

    def __iter__(self) -> Iterator[list[str]]:
        for walk in self.walks:
            if self.stopped.is_set():
                return
            yield walk
