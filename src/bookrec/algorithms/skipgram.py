"""Skip-gram with negative sampling over random walks (gensim Word2Vec, corpus_file mode)."""

from __future__ import annotations

import os
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

WALKS_PER_WRITE = 65_536


def default_workers() -> int:
    """The number of cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def train_skipgram(
    walks: np.ndarray,
    n_nodes: int,
    *,
    dim: int = 256,
    window: int = 5,
    epochs: int = 1,
    negative: int = 5,
    sample: float | None = None,
    seed: int = 42,
    workers: int | None = None,
    on_epoch: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Node vectors (n_nodes, dim) float32 learnt from `walks` (n_walks, walk_length) of node ids.

    Rows of nodes that appear in no walk are all zeros (with default walks: exactly the nodes
    without edges, see BipartiteGraph.has_edges). `sample` is word2vec's down-sampling of
    frequent tokens, here of high-degree nodes; None is default_sample(nodes in the walks).
    `on_epoch(epochs_done, epochs)` is called after each epoch. With workers=1 the same walks
    and seed give the same vectors in any process.
    """
    from gensim.models import Word2Vec
    from gensim.models.callbacks import CallbackAny2Vec

    walks = np.asarray(walks)
    if walks.ndim != 2 or walks.size == 0:
        raise ValueError("walks must be a non-empty 2-d array of node ids")
    if walks.min() < 0 or walks.max() >= n_nodes:
        raise ValueError(f"walks hold node ids outside 0..{n_nodes - 1}")
    workers = workers or default_workers()
    width = _token_width(n_nodes)
    counts = np.bincount(walks.ravel(), minlength=n_nodes)
    present = np.flatnonzero(counts)
    frequencies = {_token(node, width): int(counts[node]) for node in present}
    if sample is None:
        sample = default_sample(len(present))

    class EpochReport(CallbackAny2Vec):
        def __init__(self) -> None:
            self.done = 0

        def on_epoch_end(self, model: Word2Vec) -> None:
            self.done += 1
            if on_epoch is not None:
                on_epoch(self.done, epochs)

    model = Word2Vec(
        vector_size=dim,
        window=window,
        min_count=1,
        sg=1,
        hs=0,
        negative=negative,
        sample=sample,
        seed=seed,
        workers=workers,
        epochs=epochs,
        hashfxn=stable_hash,
    )
    model.build_vocab_from_freq(frequencies, corpus_count=len(walks))
    with tempfile.TemporaryDirectory(prefix="bookrec-walks-") as directory:
        corpus = Path(directory) / "walks.txt"
        write_walks(walks, corpus, n_nodes)
        # gensim's workers call BLAS on 128-float vectors; OpenBLAS's own idle threads spinning
        # beside them cost ~20% of the phase on 2 cores (measured by bench_train_gnn.py).
        with one_blas_thread():
            model.train(
                corpus_file=str(corpus),
                total_words=int(walks.size),
                # Each corpus_file worker decays its learning rate over total_examples sentences
                # but reads only 1/workers of the file: give it its own share so the rate
                # reaches min_alpha.
                total_examples=-(-len(walks) // workers),
                epochs=epochs,
                callbacks=[EpochReport()],
            )
    vectors = np.zeros((n_nodes, dim), dtype=np.float32)
    nodes = np.fromiter((int(key) for key in model.wv.index_to_key), dtype=np.int64)
    vectors[nodes] = model.wv.vectors
    return vectors


def default_sample(n_nodes: int) -> float:
    """word2vec's down-sampling threshold for a graph of n_nodes: 1e-4, but never below
    1 / n_nodes, so that a small graph keeps its average nodes whole. Measured with `bookrec
    evaluate` (README): as good as word2vec's 1e-3 (meant for text) or better, and faster."""
    return max(1e-4, 1.0 / max(n_nodes, 1))


def one_blas_thread():
    """A context in which every loaded BLAS library runs single-threaded."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def write_walks(walks: np.ndarray, path: Path, n_nodes: int) -> None:
    """Write walks one per line as space-separated, zero-padded decimal node ids.

    Fixed-width tokens let numpy lay out the text by table lookup, ~7x faster than savetxt.
    """
    width = _token_width(n_nodes)
    digits = np.arange(n_nodes)
    table = np.empty((n_nodes, width + 1), dtype=np.uint8)
    table[:, width] = ord(" ")
    for position in range(width - 1, -1, -1):
        digits, table[:, position] = np.divmod(digits, 10)
    table[:, :width] += ord("0")
    with open(path, "wb") as out:
        for lo in range(0, len(walks), WALKS_PER_WRITE):
            text = table[walks[lo : lo + WALKS_PER_WRITE]]
            text[:, -1, width] = ord("\n")
            text.tofile(out)


def _token_width(n_nodes: int) -> int:
    return len(str(max(n_nodes - 1, 0)))


def _token(node: int, width: int) -> str:
    return str(node).zfill(width)


def stable_hash(token: str) -> int:
    """A hash of a token that, unlike hash(), is the same in every process."""
    # gensim's default is hash(), salted per process by PYTHONHASHSEED.
    return zlib.crc32(token.encode())
