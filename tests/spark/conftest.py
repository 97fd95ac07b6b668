"""Spark tests: real pyspark on a real JVM, in `local[2]` and on a standalone cluster of a
master and two workers started here on 127.0.0.1.

They need bookrec[spark] and Java 17+. Where either is missing they skip with the reason —
unless BOOKREC_TEST_SPARK is set (as the tests_spark nox session does): then they fail.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

LOCAL = "local[2]"


def _missing() -> str | None:
    if importlib.util.find_spec("pyspark") is None:
        return "needs bookrec[spark] (pyspark)"
    from bookrec.engines.spark import JavaMissingError, java_executable

    try:
        java_executable()
    except JavaMissingError as exc:
        return exc.message
    return None


def pytest_collection_modifyitems(config, items):
    reason = _missing()
    if reason is None:
        return
    if os.environ.get("BOOKREC_TEST_SPARK"):
        raise pytest.UsageError(f"BOOKREC_TEST_SPARK is set, but the Spark tests {reason}")
    here = Path(__file__).parent
    for item in items:
        if Path(item.fspath).is_relative_to(here):
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def local_options(tmp_path):
    from bookrec.engines.spark import SparkOptions

    return SparkOptions(master=LOCAL, staging=str(tmp_path / "staging"), driver_memory="2g")


@pytest.fixture(scope="session")
def holdout():
    """A benchmark-shaped split: 40k interactions, 800 users, 2,000 books, 8 planted clusters."""
    from bookrec.algorithms.evaluation import make_holdout
    from bookrec.domain import InteractionArrays
    from bookrec.synthetic import generate_benchmark_interactions

    data = generate_benchmark_interactions(
        n_users=800, n_books=2_000, n_interactions=40_000, clusters=8, seed=5
    )
    arrays = InteractionArrays(
        user_ids=data.user_index.astype(np.int64) + 1,
        book_ids=data.book_index.astype(np.int64) + 1,
        events=data.events,
        ratings=data.ratings,
        timestamps=data.timestamps,
    )
    return make_holdout(arrays, seed=5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spark_class() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent / "bin" / "spark-class"


class _Cluster:
    """A standalone master and its workers, each a `spark-class` process with a log file."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = _free_port()
        self.url = f"spark://127.0.0.1:{self.port}"
        self.processes: list[subprocess.Popen] = []
        self.env = {
            **os.environ,
            "SPARK_LOCAL_IP": "127.0.0.1",
            "PYSPARK_PYTHON": sys.executable,
            "SPARK_LOG_DIR": str(folder),
        }

    def start(self, name: str, *args: str) -> None:
        with open(self.folder / f"{name}.log", "wb") as out:
            process = subprocess.Popen(
                [str(_spark_class()), *args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes.append(process)

    def wait_for_workers(self, count: int, seconds: float = 120) -> None:
        log = self.folder / "master.log"
        deadline = time.monotonic() + seconds
        while log.read_text(errors="replace").count("Registering worker") < count:
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.processes):
                logs = [f.read_text(errors="replace")[-2000:] for f in self.folder.glob("*.log")]
                pytest.fail("the standalone cluster did not start:\n" + "\n".join(logs))
            time.sleep(0.5)

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="session")
def standalone_master(tmp_path_factory) -> Iterator[str]:
    """spark://127.0.0.1:PORT of a standalone master with two 1-core workers on loopback,
    started from the pyspark installation and stopped at the end of the session."""
    reason = _missing()
    if reason:
        pytest.skip(reason)
    cluster = _Cluster(tmp_path_factory.mktemp("spark-cluster"))
    loopback = ("--host", "127.0.0.1")
    try:
        cluster.start(
            "master", "org.apache.spark.deploy.master.Master", *loopback,
            "--port", str(cluster.port), "--webui-port", str(_free_port()),
        )  # fmt: skip
        for n in range(2):
            cluster.start(
                f"worker{n}", "org.apache.spark.deploy.worker.Worker", cluster.url, *loopback,
                "--cores", "1", "--memory", "1536m", "--port", str(_free_port()),
                "--webui-port", str(_free_port()), "--work-dir", str(cluster.folder / f"w{n}"),
            )  # fmt: skip
        cluster.wait_for_workers(2)
        yield cluster.url
    finally:
        cluster.stop()
