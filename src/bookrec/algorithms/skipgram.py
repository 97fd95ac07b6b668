"""Skip-gram with negative sampling over random walks (gensim Word2Vec, corpus_file mode)."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import numpy as np

WALKS_PER_WRITE = 65_536
CORPUS_PREFIX = "bookrec-walks-"  # + the pid of the process that writes it
STOP_TIMEOUT = 60.0  # seconds to wait for gensim's workers after an interrupt


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
    learning_rate: float = 0.025,
    seed: int = 42,
    workers: int | None = None,
    on_epoch: Callable[[float, int], None] | None = None,
) -> np.ndarray:
    """Node vectors (n_nodes, dim) float32 learnt from `walks` (n_walks, walk_length) of node ids.

    Rows of nodes that appear in no walk are all zeros (with default walks: exactly the nodes
    without edges, see BipartiteGraph.has_edges). `sample` is word2vec's down-sampling of
    frequent tokens, here of high-degree nodes; None is default_sample(nodes in the walks).
    `on_epoch(epochs_done, epochs)` is called after each epoch, and where the system tells
    how far the workers have read the corpus (Linux) about twice a second within one, with a
    fractional epochs_done. With workers=1 the same walks and seed give the same vectors in
    any process.
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
            if reader is not None:
                reader.reset()
            self.done += 1
            within(float(self.done))

    reported = 0.0

    def within(done: float) -> None:
        nonlocal reported
        if on_epoch is not None and done > reported:  # never backwards across an epoch's end
            reported = done
            on_epoch(done, epochs)

    report = EpochReport()
    reader: CorpusReadProgress | None = None

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
        alpha=learning_rate,
    )
    model.build_vocab_from_freq(frequencies, corpus_count=len(walks))
    remove_abandoned_corpora()
    with _corpus_directory() as directory:
        corpus = Path(directory) / "walks.txt"
        write_walks(walks, corpus, n_nodes)
        # gensim's workers call BLAS on 128-float vectors; OpenBLAS's own idle threads spinning
        # beside them cost ~20% of the phase on 2 cores (measured by bench_train_gnn.py).
        if on_epoch is not None and CorpusReadProgress.supported():
            reader = CorpusReadProgress(corpus, workers)
        with (
            one_blas_thread(),
            workers_stopped_on_error(lambda: os.truncate(corpus, 0)),
            reporting(reader, lambda share: within(report.done + share)),
        ):
            model.train(
                corpus_file=str(corpus),
                total_words=int(walks.size),
                # Each corpus_file worker decays its learning rate over total_examples sentences
                # but reads only 1/workers of the file: give it its own share so the rate
                # reaches min_alpha.
                total_examples=-(-len(walks) // workers),
                epochs=epochs,
                callbacks=[report],
            )
    vectors = np.zeros((n_nodes, dim), dtype=np.float32)
    nodes = np.fromiter((int(key) for key in model.wv.index_to_key), dtype=np.int64)
    vectors[nodes] = model.wv.vectors
    return vectors


@contextmanager
def _corpus_directory() -> Iterator[str]:
    """A temporary directory for the walks, removed on the way out even when a Ctrl-C or
    SIGTERM comes while it is being removed (TemporaryDirectory would leave the rest)."""
    directory = tempfile.mkdtemp(prefix=f"{CORPUS_PREFIX}{os.getpid()}-")
    try:
        yield directory
    finally:
        try:
            shutil.rmtree(directory, ignore_errors=True)
        except KeyboardInterrupt:
            shutil.rmtree(directory, ignore_errors=True)
            raise


def default_sample(n_nodes: int) -> float:
    """word2vec's down-sampling threshold for a graph of n_nodes: 1e-4, but never below
    1 / n_nodes, so that a small graph keeps its average nodes whole. Measured with `bookrec
    evaluate` (README): as good as word2vec's 1e-3 (meant for text) or better, and faster."""
    return max(1e-4, 1.0 / max(n_nodes, 1))


@contextmanager
def workers_stopped_on_error(stop: Callable[[], None]) -> Iterator[None]:
    """Around a gensim training call: if it raises (Ctrl-C, SIGTERM), call `stop` to make
    gensim's worker threads end, and wait for them before the exception goes on.

    gensim's workers are daemon threads that run a whole epoch in C without the GIL. Left
    running, they are still inside BLAS calls when the process exits, and exit() runs
    OpenBLAS's destructor, which clears its table of kernels: the next sdot in a worker
    jumps through a NULL pointer (exit 139, "Segmentation fault"). `stop` must make the
    workers finish soon: emptying a corpus file does (each reads it with its own stream and
    ends its epoch at end of file, after the batch it holds, ~10,000 words).
    """
    before = set(threading.enumerate())
    try:
        yield
    except BaseException:
        stop()
        deadline = time.monotonic() + STOP_TIMEOUT
        for thread in set(threading.enumerate()) - before:
            while thread.is_alive() and time.monotonic() < deadline:
                # A second Ctrl-C must not leave them running either.
                with suppress(KeyboardInterrupt):
                    thread.join(deadline - time.monotonic())
        raise


class CorpusReadProgress:
    """How much of an epoch gensim's corpus_file workers have done, from how far each has read
    the corpus: its file position, which Linux shows in /proc/self/fdinfo. gensim itself
    reports nothing until an epoch ends (its workers count words in C locals), and the whole
    run is often one epoch. Reading positions costs the workers nothing.

    Worker i starts at byte size/workers * i and reads about size/workers bytes; a worker
    whose file has been closed is done."""

    def __init__(self, corpus: Path, workers: int) -> None:
        self.corpus = str(corpus.resolve())
        self.size = max(corpus.stat().st_size, 1)
        self.workers = workers
        self.reset()

    @staticmethod
    def supported() -> bool:
        return Path("/proc/self/fdinfo").is_dir()

    def reset(self) -> None:
        self.done = [0.0] * self.workers
        self.open: set[int] = set()

    def share(self) -> float:
        """The share of this epoch read so far, 0 to 1."""
        part = self.size / self.workers
        now_open = set()
        for pos in self._positions():
            worker = min(int(pos // part), self.workers - 1)
            now_open.add(worker)
            self.done[worker] = max(self.done[worker], min(1.0, (pos - worker * part) / part))
        for worker in self.open - now_open:
            self.done[worker] = 1.0  # its stream was closed: its share is read
        self.open |= now_open
        return sum(self.done) / self.workers

    def _positions(self) -> list[int]:
        positions = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                if os.readlink(f"/proc/self/fd/{fd}") != self.corpus:
                    continue
                with open(f"/proc/self/fdinfo/{fd}") as info:
                    positions.append(int(info.readline().split()[1]))  # "pos:\t<bytes>"
            except (OSError, IndexError, ValueError):
                continue  # closed meanwhile
        return positions


@contextmanager
def reporting(
    reader: CorpusReadProgress | None, report: Callable[[float], None], every: float = 0.5
) -> Iterator[None]:
    """Call report(share of the epoch read) every `every` seconds from a thread, while inside."""
    if reader is None:
        yield
        return
    stopped = threading.Event()

    def loop() -> None:
        while not stopped.wait(every):
            report(reader.share())

    thread = threading.Thread(target=loop, name="bookrec-skipgram-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stopped.set()
        thread.join()


def remove_abandoned_corpora() -> None:
    """Remove the walk corpora of bookrec processes that died without removing their own
    (SIGKILL, power loss): at 30M interactions one is 2.2 GB of the temporary directory."""
    for directory in Path(tempfile.gettempdir()).glob(f"{CORPUS_PREFIX}*"):
        pid_text = directory.name[len(CORPUS_PREFIX) :].partition("-")[0]
        if pid_text.isdigit() and not _process_exists(int(pid_text)):
            shutil.rmtree(directory, ignore_errors=True)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


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
