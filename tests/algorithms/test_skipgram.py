import hashlib
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from scipy.sparse import csr_matrix

from bookrec.algorithms.skipgram import default_sample, train_skipgram, write_walks
from bookrec.algorithms.walks import build_graph, random_walks


def planted_clusters(
    n_clusters=3, users_per_cluster=40, books_per_cluster=50, reads=12, noise=0.05, seed=0
) -> tuple[csr_matrix, np.ndarray]:
    """Users reading mostly in their own cluster of books; returns weights and book clusters."""
    rng = np.random.default_rng(seed)
    n_users, n_books = n_clusters * users_per_cluster, n_clusters * books_per_cluster
    book_cluster = np.repeat(np.arange(n_clusters), books_per_cluster)
    weights = np.zeros((n_users, n_books), dtype=np.float32)
    for user in range(n_users):
        cluster = user // users_per_cluster
        own = rng.choice(books_per_cluster, reads, replace=False) + cluster * books_per_cluster
        weights[user, own] = rng.choice([1.0, 2.0, 4.0, 6.0], reads)
        if rng.random() < noise * reads:
            weights[user, rng.integers(n_books)] = 1.0
    return csr_matrix(weights), book_cluster


def neighbour_precision(book_vectors: np.ndarray, book_cluster: np.ndarray, k: int = 10) -> float:
    """Share of each book's k nearest books (cosine) that are in its cluster."""
    unit = book_vectors / np.linalg.norm(book_vectors, axis=1, keepdims=True)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    nearest = np.argsort(-similarity, axis=1)[:, :k]
    return float((book_cluster[nearest] == book_cluster[:, None]).mean())


def test_walks_are_written_one_per_line_as_fixed_width_tokens(tmp_path):
    walks = np.array([[0, 7, 12], [12, 3, 0]], dtype=np.int32)
    write_walks(walks, tmp_path / "walks.txt", n_nodes=13)
    assert (tmp_path / "walks.txt").read_text() == "00 07 12\n12 03 00\n"


def test_large_walks_round_trip_through_the_file(tmp_path):
    walks = np.random.default_rng(1).integers(0, 123_456, (70_000, 7)).astype(np.int32)
    write_walks(walks, tmp_path / "walks.txt", n_nodes=123_456)
    read = np.loadtxt(tmp_path / "walks.txt", dtype=np.int64)
    np.testing.assert_array_equal(read, walks)


def test_vectors_cover_seen_nodes_and_leave_the_others_zero():
    walks = np.array([[0, 1, 2, 1, 0], [2, 1, 0, 1, 2]] * 20, dtype=np.int32)
    epochs = []
    vectors = train_skipgram(
        walks, 5, dim=8, window=2, epochs=3, workers=1, on_epoch=lambda *a: epochs.append(a)
    )
    assert vectors.shape == (5, 8) and vectors.dtype == np.float32
    assert (np.abs(vectors[:3]).sum(axis=1) > 0).all()
    assert not vectors[3:].any()
    assert epochs == [(1, 3), (2, 3), (3, 3)]


def test_node_ids_outside_the_graph_are_refused():
    with pytest.raises(ValueError, match="outside"):
        train_skipgram(np.array([[0, 5]]), 5, dim=4)


def test_planted_clusters_are_found_by_walks_and_skipgram():
    weights, book_cluster = planted_clusters()
    graph = build_graph(weights)
    walks = random_walks(graph, walk_length=20, walks_per_node=10, p=1.0, q=0.5, seed=1)
    vectors = train_skipgram(walks, graph.n_nodes, dim=32, window=5, epochs=2, workers=1)
    assert neighbour_precision(vectors[graph.n_users :], book_cluster) >= 0.9


TRAIN_IN_SUBPROCESS = textwrap.dedent(
    """
    import hashlib, numpy as np
    from bookrec.algorithms.skipgram import train_skipgram
    walks = np.random.default_rng(4).integers(0, 300, (400, 20)).astype(np.int32)
    vectors = train_skipgram(walks, 300, dim=16, window=3, epochs=2, seed=7, workers=1)
    print(hashlib.sha256(vectors.tobytes()).hexdigest())
    """
)


def test_seeded_single_worker_training_repeats_across_processes():
    digests = []
    for hash_seed in ("1", "2"):
        environment = os.environ | {"PYTHONHASHSEED": hash_seed}
        run = subprocess.run(
            [sys.executable, "-c", TRAIN_IN_SUBPROCESS],
            env=environment,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        digests.append(run.stdout.strip())
    walks = np.random.default_rng(4).integers(0, 300, (400, 20)).astype(np.int32)
    here = train_skipgram(walks, 300, dim=16, window=3, epochs=2, seed=7, workers=1)
    other_seed = train_skipgram(walks, 300, dim=16, window=3, epochs=2, seed=8, workers=1)
    assert digests[0] == digests[1] == hashlib.sha256(here.tobytes()).hexdigest()
    assert not np.array_equal(here, other_seed)


def test_down_sampling_defaults_to_1e4_but_spares_the_average_node_of_small_graphs():
    assert default_sample(100_000) == 1e-4
    assert default_sample(500) == 1 / 500
    walks = np.random.default_rng(2).integers(0, 50, (200, 20)).astype(np.int32)
    default = train_skipgram(walks, 50, dim=8, window=3, seed=3, workers=1)
    explicit = train_skipgram(walks, 50, dim=8, window=3, seed=3, workers=1, sample=1 / 50)
    thinned = train_skipgram(walks, 50, dim=8, window=3, seed=3, workers=1, sample=1e-4)
    assert np.array_equal(default, explicit) and not np.array_equal(default, thinned)


def test_an_interrupt_stops_gensims_workers_before_it_goes_on(tmp_path, monkeypatch):
    """Ctrl-C in the middle of an epoch: the workers are stopped and joined, so none is left
    inside BLAS when the process exits (exit() clears OpenBLAS's kernel table: exit 139)."""
    import _thread
    import tempfile
    import threading

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    walks = np.random.default_rng(0).integers(0, 2_000, size=(30_000, 40))  # 3-15 s an epoch
    before = set(threading.enumerate())

    def interrupt_once_training() -> None:
        while len(set(threading.enumerate()) - before) < 3:  # this thread and 2 workers
            time.sleep(0.05)
        time.sleep(0.3)
        _thread.interrupt_main()

    interrupter = threading.Thread(target=interrupt_once_training)
    interrupter.start()
    with pytest.raises(KeyboardInterrupt):
        train_skipgram(walks, 2_000, dim=64, window=5, workers=2)
    stopped = time.perf_counter()
    interrupter.join()
    assert set(threading.enumerate()) <= before  # no gensim worker outlives the call
    assert list(tmp_path.iterdir()) == []  # the walks corpus is gone
    assert time.perf_counter() - stopped < 1


def test_corpora_of_dead_processes_are_removed(tmp_path, monkeypatch):
    import tempfile

    from bookrec.algorithms.skipgram import CORPUS_PREFIX

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    abandoned = tmp_path / f"{CORPUS_PREFIX}{dead.stdout.strip()}-x1"
    alive = tmp_path / f"{CORPUS_PREFIX}{os.getppid()}-x2"
    for folder in (abandoned, alive):
        folder.mkdir()
        (folder / "walks.txt").write_text("0 1\n")
    walks = np.array([[0, 1, 0, 1]] * 10)
    train_skipgram(walks, 2, dim=4, workers=1)
    assert not abandoned.exists() and (alive / "walks.txt").exists()


def test_the_learning_rate_is_what_moves_the_vectors_from_their_start():
    weights, book_cluster = planted_clusters()
    graph = build_graph(weights)
    walks = random_walks(graph, walk_length=10, walks_per_node=4, seed=3)

    def train(rate: float) -> np.ndarray:
        return train_skipgram(walks, graph.n_nodes, dim=16, epochs=1, learning_rate=rate,
                              seed=5, workers=1)  # fmt: skip

    frozen = train(1e-9)
    assert np.abs(frozen).max() <= 1 / 16 + 1e-6  # gensim 4 starts uniform in ±1 / dim
    books = slice(weights.shape[0], None)
    assert neighbour_precision(train(0.15)[books], book_cluster) > 0.9
    assert neighbour_precision(frozen[books], book_cluster) < 0.6
