"""Exact node2vec random walks on the bipartite user↔book graph, vectorised in numpy.

Nodes are users 0..n_users-1 followed by books n_users..n_users+n_books-1.

Node2vec (Grover & Leskovec 2016) weighs the step t→v→x by w(v,x)/p when x == t, w(v,x) when
x is a neighbour of t, and w(v,x)/q otherwise. In a bipartite graph no neighbour of v is a
neighbour of t, so the weight is w(v,x)/p for the way back and w(v,x)/q for every other edge:
each walker first decides whether to return (probability (w_back/p) / (w_back/p + rest/q)) and
otherwise draws from v's first-order weights with the way back cut out. That is exact (to the
float64 rounding of cumulative weights), needs no per-edge transition tables and lets all
walkers advance together.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix

WALKERS_PER_BATCH = 65_536
GUIDE_BUCKETS_PER_EDGE = 2
MAX_GUIDED_SCAN = 16


@dataclass(frozen=True)
class BipartiteGraph:
    """Undirected weighted user↔book graph in CSR form; every edge is stored once per end.

    `cumulative` holds exclusive prefix sums of `weights` over all stored edges (length
    n_stored + 1), so node v's edges occupy the interval cumulative[indptr[v]]..cumulative[
    indptr[v+1]] and sampling one by weight is a single search. `reverse[e]` is the position
    of edge e's twin in the other end's row.
    """

    n_users: int
    n_books: int
    indptr: np.ndarray
    indices: np.ndarray
    weights: np.ndarray
    cumulative: np.ndarray
    reverse: np.ndarray

    @property
    def n_nodes(self) -> int:
        return self.n_users + self.n_books

    @property
    def n_edges(self) -> int:
        """Number of undirected edges (user-book pairs)."""
        return len(self.indices) // 2

    @property
    def degrees(self) -> np.ndarray:
        return np.diff(self.indptr)

    @property
    def has_edges(self) -> np.ndarray:
        """Boolean mask of nodes with at least one edge (the only ones walks ever visit)."""
        return self.degrees > 0


def build_graph(weights: csr_matrix) -> BipartiteGraph:
    """Build the bipartite graph of a users × books matrix of positive interaction strengths."""
    matrix = csr_matrix(weights, dtype=np.float32, copy=True)
    matrix.sum_duplicates()
    matrix.eliminate_zeros()
    if not np.all(np.isfinite(matrix.data)) or np.any(matrix.data < 0):
        raise ValueError("interaction weights must be finite and non-negative")
    n_users, n_books = matrix.shape
    n_pairs = matrix.nnz
    index_type = np.int32 if 2 * n_pairs < np.iinfo(np.int32).max else np.int64

    # Transposing a matrix whose values are the user-row edge positions tells, for each
    # book-row edge, which user-row edge is its twin.
    positions = csr_matrix(
        (np.arange(n_pairs, dtype=np.int64), matrix.indices, matrix.indptr), shape=matrix.shape
    )
    by_book = positions.T.tocsr()
    by_book.sort_indices()
    twin_in_user_rows = by_book.data

    indptr = np.concatenate([matrix.indptr[:-1], n_pairs + by_book.indptr]).astype(np.int64)
    indices = np.concatenate([matrix.indices + n_users, by_book.indices]).astype(np.int32)
    edge_weights = np.concatenate([matrix.data, matrix.data[twin_in_user_rows]])
    reverse = np.empty(2 * n_pairs, dtype=index_type)
    reverse[twin_in_user_rows] = np.arange(n_pairs, 2 * n_pairs, dtype=index_type)
    reverse[n_pairs:] = twin_in_user_rows
    cumulative = np.zeros(2 * n_pairs + 1, dtype=np.float64)
    np.cumsum(edge_weights, dtype=np.float64, out=cumulative[1:])
    return BipartiteGraph(
        n_users=n_users,
        n_books=n_books,
        indptr=indptr,
        indices=indices,
        weights=edge_weights,
        cumulative=cumulative,
        reverse=reverse,
    )


def random_walks(
    graph: BipartiteGraph,
    *,
    walk_length: int = 80,
    walks_per_node: int = 10,
    p: float = 1.0,
    q: float = 1.0,
    seed: int = 42,
    start_nodes: np.ndarray | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Exact second-order node2vec walks: an int32 array (n_walks, walk_length) of node ids.

    Every node with an edge (or every such node of `start_nodes`) starts `walks_per_node`
    walks; the walks are grouped in rounds, each round visiting the starts in a fresh random
    order. Isolated nodes never start a walk. `on_progress(walks_done, walks_total)` is called
    after each batch of walkers.
    """
    if walk_length < 1 or walks_per_node < 1:
        raise ValueError("walk_length and walks_per_node must be at least 1")
    if not (p > 0 and q > 0 and np.isfinite(p) and np.isfinite(q)):
        raise ValueError("p and q must be positive numbers")
    starts = _walk_starts(graph, start_nodes)
    rng = np.random.default_rng(seed)
    n_walks = walks_per_node * len(starts)
    walks = np.empty((n_walks, walk_length), dtype=np.int32)
    if n_walks == 0:
        return walks
    walker = _Walker(graph, p, q, rng)
    order = np.concatenate([rng.permutation(starts) for _ in range(walks_per_node)])
    for lo in range(0, n_walks, WALKERS_PER_BATCH):
        batch = order[lo : lo + WALKERS_PER_BATCH]
        walks[lo : lo + len(batch)] = walker.walk(batch, walk_length)
        if on_progress is not None:
            on_progress(lo + len(batch), n_walks)
    return walks


def _walk_starts(graph: BipartiteGraph, start_nodes: np.ndarray | None) -> np.ndarray:
    if start_nodes is None:
        return np.flatnonzero(graph.has_edges).astype(np.int32)
    nodes = np.asarray(start_nodes, dtype=np.int64)
    if nodes.size and (nodes.min() < 0 or nodes.max() >= graph.n_nodes):
        raise ValueError(f"start nodes must lie in 0..{graph.n_nodes - 1}")
    return nodes[graph.has_edges[nodes]].astype(np.int32)


class _Walker:
    """Advances a batch of walkers one step at a time."""

    def __init__(self, graph: BipartiteGraph, p: float, q: float, rng: np.random.Generator):
        self.graph = graph
        self.inv_p, self.inv_q = 1.0 / p, 1.0 / q
        self.rng = rng
        cumulative = graph.cumulative
        self.node_low = cumulative[graph.indptr[:-1]]
        # The largest target still inside a node's interval, so rounding never leaves the row.
        self.node_top = np.nextafter(cumulative[graph.indptr[1:]], -np.inf)
        # Guide table (Chen & Asau): the edge at each of n_buckets even steps of the total
        # weight, so a search starts next to its answer instead of bisecting every edge.
        self.n_buckets = GUIDE_BUCKETS_PER_EDGE * len(graph.indices)
        self.buckets_per_weight = self.n_buckets / cumulative[-1]
        bounds = np.arange(self.n_buckets + 1) * (cumulative[-1] / self.n_buckets)
        self.guide = (np.searchsorted(cumulative, bounds, side="right") - 1).astype(
            graph.reverse.dtype
        )

    def walk(self, starts: np.ndarray, walk_length: int) -> np.ndarray:
        """Walks (len(starts), walk_length) from `starts`."""
        steps = np.empty((walk_length, len(starts)), dtype=np.int32)
        steps[0] = starts
        if walk_length > 1:
            edges = self.first_order(starts)
            steps[1] = self.graph.indices[edges]
        for step in range(2, walk_length):
            edges = self.second_order(steps[step - 1], self.graph.reverse[edges])
            steps[step] = self.graph.indices[edges]
        return steps.T

    def first_order(self, current: np.ndarray) -> np.ndarray:
        """Edges drawn in proportion to their weight."""
        low = self.node_low[current]
        targets = low + self.rng.random(len(current)) * (self.node_top[current] - low)
        return self.edges_at(np.minimum(targets, self.node_top[current]))

    def second_order(self, current: np.ndarray, back: np.ndarray) -> np.ndarray:
        """Node2vec's next edges of walkers standing on `current` that came over edge `back`."""
        if self.inv_p == self.inv_q:
            return self.first_order(current)
        cumulative = self.graph.cumulative
        low, top = self.node_low[current], self.node_top[current]
        back_low, back_high = cumulative[back], cumulative[back + 1]
        back_weight = back_high - back_low
        other_weight = np.maximum((top - low) - back_weight, 0.0)
        return_mass = back_weight * self.inv_p
        draws = self.rng.random((2, len(current)))
        returning = draws[0] * (return_mass + other_weight * self.inv_q) < return_mass
        # Position among the other edges: the node's interval with the way back cut out.
        targets = low + draws[1] * other_weight
        past_back = targets >= back_low
        # Written from back_high so that rounding can never land on the way back.
        targets[past_back] = back_high[past_back] + (targets[past_back] - back_low[past_back])
        edges = self.edges_at(np.minimum(targets, top))
        return np.where(returning, back, edges)

    def edges_at(self, targets: np.ndarray) -> np.ndarray:
        """Stored edges whose cumulative-weight interval contains each target."""
        cumulative = self.graph.cumulative
        # One bucket back from the target's own, so rounding can never start past the answer.
        buckets = (targets * self.buckets_per_weight).astype(np.int64) - 1
        edges = self.guide[np.clip(buckets, 0, self.n_buckets)].astype(np.int64)
        ahead = np.flatnonzero(cumulative[edges + 1] <= targets)
        for _ in range(MAX_GUIDED_SCAN):
            if not len(ahead):
                return edges
            edges[ahead] += 1
            ahead = ahead[cumulative[edges[ahead] + 1] <= targets[ahead]]
        # Long runs of tiny weights: bisect the few walkers still scanning.
        edges[ahead] = np.searchsorted(cumulative, targets[ahead], side="right") - 1
        return edges
