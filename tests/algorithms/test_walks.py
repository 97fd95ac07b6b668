from collections import Counter

import numpy as np
import pytest
from scipy.sparse import csr_matrix
from scipy.stats import chi2

from bookrec.algorithms.walks import _Walker, build_graph, random_walks

# 3 users × 4 books; user 2 and book 3 (node 6) have no edges.
WEIGHTS = np.array(
    [
        [1.0, 3.0, 0.0, 0.0],
        [2.0, 0.5, 4.0, 0.0],
        [0.0, 0.0, 0.0, 0.0],
    ],
    dtype=np.float32,
)


def adjacency(weights: np.ndarray) -> np.ndarray:
    n_users, n_books = weights.shape
    full = np.zeros((n_users + n_books, n_users + n_books))
    full[:n_users, n_users:] = weights
    full[n_users:, :n_users] = weights.T
    return full


def node2vec_probabilities(full: np.ndarray, t: int, v: int, p: float, q: float) -> np.ndarray:
    """Grover & Leskovec's transition t→v→x written out in general (no bipartite shortcut)."""
    bias = np.where(full[t] > 0, 1.0, 1.0 / q)
    bias[t] = 1.0 / p
    unnormalised = full[v] * bias
    return unnormalised / unnormalised.sum()


def chi_square_p_value(observed: dict, expected: dict) -> float:
    """Pooled chi-square goodness of fit over many contexts: dict context -> counts/probs."""
    statistic, dof = 0.0, 0
    for context, probabilities in expected.items():
        counts = observed[context]
        total = counts.sum()
        support = probabilities > 0
        assert counts[~support].sum() == 0, f"impossible step taken from {context}"
        deviation = (counts - total * probabilities)[support]
        statistic += (deviation**2 / (total * probabilities[support])).sum()
        dof += support.sum() - 1
    return float(chi2.sf(statistic, dof))


def test_graph_stores_each_edge_at_both_ends_with_its_twin():
    graph = build_graph(csr_matrix(WEIGHTS))

    assert graph.n_nodes == 7 and graph.n_edges == 5
    assert graph.degrees.tolist() == [2, 3, 0, 2, 2, 1, 0]
    assert graph.has_edges.tolist() == [True, True, False, True, True, True, False]
    dense = np.zeros((7, 7))
    for node in range(7):
        row = slice(graph.indptr[node], graph.indptr[node + 1])
        dense[node, graph.indices[row]] = graph.weights[row]
    np.testing.assert_array_equal(dense, adjacency(WEIGHTS))
    np.testing.assert_allclose(np.diff(graph.cumulative), graph.weights)
    owner = np.repeat(np.arange(7), graph.degrees)
    np.testing.assert_array_equal(owner[graph.reverse], graph.indices)
    np.testing.assert_array_equal(graph.reverse[graph.reverse], np.arange(2 * graph.n_edges))


def test_graph_merges_duplicate_pairs_and_rejects_negative_weights():
    duplicated = csr_matrix(
        (np.array([1.0, 2.0], dtype=np.float32), (np.array([0, 0]), np.array([1, 1]))), shape=(1, 2)
    )
    graph = build_graph(duplicated)
    assert graph.n_edges == 1 and graph.weights.tolist() == [3.0, 3.0]
    with pytest.raises(ValueError, match="non-negative"):
        build_graph(csr_matrix(np.array([[1.0, -1.0]], dtype=np.float32)))


def test_walks_start_everywhere_but_isolated_nodes_and_follow_edges():
    rng = np.random.default_rng(3)
    weights = rng.random((40, 60)) * (rng.random((40, 60)) < 0.08)
    weights[5] = 0.0
    graph = build_graph(csr_matrix(weights.astype(np.float32)))
    walks = random_walks(graph, walk_length=12, walks_per_node=3, p=0.3, q=4.0, seed=1)

    connected = np.flatnonzero(graph.has_edges)
    assert walks.shape == (3 * len(connected), 12) and walks.dtype == np.int32
    for round_starts in walks[:, 0].reshape(3, -1):
        np.testing.assert_array_equal(np.sort(round_starts), connected)
    full = adjacency(weights)
    assert (full[walks[:, :-1], walks[:, 1:]] > 0).all()


def test_start_nodes_skip_isolated_ones_and_progress_is_reported():
    graph = build_graph(csr_matrix(WEIGHTS))
    progress = []
    walks = random_walks(
        graph,
        walk_length=4,
        walks_per_node=2,
        start_nodes=np.array([2, 5, 6]),
        on_progress=lambda done, total: progress.append((done, total)),
    )
    assert walks[:, 0].tolist() == [5, 5]
    assert progress[-1] == (2, 2)


def test_first_step_follows_edge_weights():
    graph = build_graph(csr_matrix(WEIGHTS))
    walks = random_walks(graph, walk_length=2, walks_per_node=20_000, p=0.25, q=4.0, seed=7)
    full = adjacency(WEIGHTS)
    observed, expected = {}, {}
    for start in np.flatnonzero(graph.has_edges):
        steps = walks[walks[:, 0] == start, 1]
        observed[start] = np.bincount(steps, minlength=7)
        expected[start] = full[start] / full[start].sum()
    # User 1 goes to book 2 (node 5) with probability 4 / 6.5.
    assert expected[1][5] == pytest.approx(4 / 6.5)
    np.testing.assert_allclose(observed[1] / observed[1].sum(), expected[1], atol=0.01)
    assert chi_square_p_value(observed, expected) > 1e-3


@pytest.mark.parametrize(("p", "q"), [(1.0, 1.0), (0.25, 4.0), (4.0, 0.25)])
def test_second_order_steps_match_node2vec_probabilities(p, q):
    rng = np.random.default_rng(11)
    weights = (rng.integers(1, 6, (4, 5)) * (rng.random((4, 5)) < 0.7)).astype(np.float32)
    weights[0, 0] = 5.0  # every node gets an edge
    weights[:, 0] = np.maximum(weights[:, 0], 1.0)
    weights[0] = np.maximum(weights[0], 1.0)
    full = adjacency(weights)
    graph = build_graph(csr_matrix(weights))
    walks = random_walks(graph, walk_length=8, walks_per_node=1_500, p=p, q=q, seed=5)

    triples = np.stack([walks[:, :-2], walks[:, 1:-1], walks[:, 2:]], axis=-1).reshape(-1, 3)
    counts = Counter(map(tuple, triples.tolist()))
    observed, expected = {}, {}
    for t, v in {(t, v) for t, v, _ in counts}:
        observed[t, v] = np.array([counts.get((t, v, x), 0) for x in range(len(full))])
        expected[t, v] = node2vec_probabilities(full, t, v, p, q)
    assert chi_square_p_value(observed, expected) > 1e-3


def test_return_and_in_out_parameters_by_hand():
    # User 0 reads book 0 (weight 1) and book 1 (weight 3); a walker that came to user 0 from
    # book 0 goes back with weight 1/p and on to book 1 with weight 3/q.
    graph = build_graph(csr_matrix(np.array([[1.0, 3.0]], dtype=np.float32)))
    walks = random_walks(
        graph, walk_length=3, walks_per_node=40_000, p=0.5, q=2.0, seed=3, start_nodes=np.array([1])
    )
    returned = np.mean(walks[:, 2] == 1)
    assert returned == pytest.approx(2.0 / (2.0 + 1.5), abs=0.01)


def test_walks_repeat_with_a_seed_and_differ_across_seeds():
    graph = build_graph(csr_matrix(WEIGHTS))
    first = random_walks(graph, walk_length=10, walks_per_node=5, p=0.5, q=2.0, seed=9)
    again = random_walks(graph, walk_length=10, walks_per_node=5, p=0.5, q=2.0, seed=9)
    other = random_walks(graph, walk_length=10, walks_per_node=5, p=0.5, q=2.0, seed=10)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_invalid_parameters_are_refused():
    graph = build_graph(csr_matrix(WEIGHTS))
    with pytest.raises(ValueError):
        random_walks(graph, p=0.0)
    with pytest.raises(ValueError):
        random_walks(graph, walk_length=0)
    with pytest.raises(ValueError):
        random_walks(graph, start_nodes=np.array([7]))


def test_guided_search_finds_the_same_edges_as_bisection_across_extreme_weights():
    # Weights over twelve orders of magnitude make long runs of tiny edges, where the guided
    # scan gives up and bisects.
    rng = np.random.default_rng(2)
    weights = (10.0 ** rng.uniform(-10, 2, (30, 400))).astype(np.float32)
    graph = build_graph(csr_matrix(weights))
    walker = _Walker(graph, p=1.0, q=1.0, rng=rng)
    targets = rng.random(50_000) * graph.cumulative[-1]
    expected = np.searchsorted(graph.cumulative, targets, side="right") - 1
    np.testing.assert_array_equal(walker.edges_at(targets), expected)
