"""A Spark session for one training job: checks first, progress while it runs, a clean stop.

The session runs in client mode: its driver is a JVM child of this process (pyspark's
gateway), executors are threads of that JVM (`local[N]`) or processes on a cluster's workers
(`spark://…`, `yarn`, `k8s://…`). Ctrl-C and SIGTERM cancel every running Spark job, stop the
session and raise KeyboardInterrupt in the caller, which leaves the old vectors in place.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bookrec.errors import EXIT_BAD_INPUT, BookrecError, MissingExtraError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# (stage name, tasks done, tasks in the stage)
ProgressFn = Callable[[str, int, int], None]
MIN_JAVA = 17  # Spark 4's minimum
POLL_SECONDS = 0.5
LOG_CONFIG = Path(__file__).with_name("log4j2.properties")
LOOPBACK = "127.0.0.1"


class JavaMissingError(BookrecError):
    """No Java runtime (or one too old) to start Spark's driver with."""

    exit_code = EXIT_BAD_INPUT


@dataclass(frozen=True)
class SparkOptions:
    """Where and how to run: the fields of settings.SparkSettings (same names and defaults)."""

    master: str = "local[*]"
    conf: Mapping[str, str] = field(default_factory=dict)
    staging: str | None = None
    executor_memory: str | None = None
    driver_memory: str | None = None
    jdbc_jar: str | None = None
    partitions: int = 0
    skipgram: str = "mllib"
    word2vec_partitions: int = 1

    @property
    def is_local(self) -> bool:
        return self.master == "local" or self.master.startswith("local[")


def require_pyspark(what: str) -> None:
    """MissingExtraError('spark') unless pyspark can be imported."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise MissingExtraError("spark", what) from None


def check_ready(what: str) -> None:
    """Fail now, before any data is loaded, if pyspark or Java is missing."""
    require_pyspark(what)
    java_executable()


def java_executable() -> str:
    """The `java` Spark will start: $JAVA_HOME/bin/java, else the first on PATH; version ≥ 17."""
    home = os.environ.get("JAVA_HOME")
    if home:
        java = Path(home) / "bin" / "java"
        if not java.is_file():
            raise JavaMissingError(
                f"JAVA_HOME is {home}, but {java} does not exist",
                hint=f"point JAVA_HOME at a Java {MIN_JAVA}+ runtime, or unset it",
            )
        found = str(java)
    else:
        located = shutil.which("java")
        if located is None:
            raise JavaMissingError(
                "the Spark engine needs a Java runtime, and none was found"
                " (no JAVA_HOME, no java on PATH)",
                hint=f"install Java {MIN_JAVA}+ (e.g. apt-get install openjdk-17-jre-headless)",
            )
        found = located
    version = _java_major_version(found)
    if version is not None and version < MIN_JAVA:
        raise JavaMissingError(
            f"the Spark engine needs Java {MIN_JAVA} or newer; {found} is Java {version}",
            hint="set JAVA_HOME to a newer runtime",
        )
    return found


def _java_major_version(java: str) -> int | None:
    try:
        proc = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise JavaMissingError(f"cannot run {java}: {exc}") from None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', proc.stderr + proc.stdout)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major  # "1.8.0" is Java 8


def session_conf(options: SparkOptions) -> dict[str, str]:
    """The Spark conf bookrec sets, with the operator's `conf` on top."""
    log = f"-Dlog4j2.configurationFile=file:{LOG_CONFIG}"
    conf = {
        "spark.app.name": "bookrec",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.extraJavaOptions": log,
        # The factors and vectors come back to this process by design: a result limit would
        # only turn a run that fits in memory into a failure at its end.
        "spark.driver.maxResultSize": "0",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.session.timeZone": "UTC",
    }
    if options.executor_memory:
        conf["spark.executor.memory"] = options.executor_memory
    if options.driver_memory:
        conf["spark.driver.memory"] = options.driver_memory
    if options.jdbc_jar:
        conf["spark.jars"] = options.jdbc_jar
    if options.partitions:
        conf["spark.sql.shuffle.partitions"] = str(options.partitions)
    return {**conf, **{str(k): str(v) for k, v in options.conf.items()}}


@contextmanager
def spark_session(
    options: SparkOptions,
    on_progress: ProgressFn | None = None,
    *,
    what: str = "the Spark engine",
    timings: dict[str, float] | None = None,
) -> Iterator[SparkSession]:
    """A new SparkSession for one job, stopped at the end whatever happens.

    Checks pyspark and Java before anything starts. While it is open, stage progress goes to
    `on_progress` and SIGINT / SIGTERM cancel the running jobs and raise KeyboardInterrupt.
    timings["start"] and timings["stop"] receive the seconds the session took to start and stop.
    """
    require_pyspark(what)
    java = java_executable()
    from pyspark.sql import SparkSession

    os.environ.setdefault("JAVA_HOME", str(Path(java).resolve().parents[1]))
    # Executors start Python workers for the walks: the same interpreter as this process.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    if _on_this_host(options.master):
        # Otherwise Spark binds the driver to the first network interface's address.
        os.environ.setdefault("SPARK_LOCAL_IP", LOOPBACK)
    conf = session_conf(options)
    _relaunch_jvm_if_launched_otherwise(conf)
    builder = SparkSession.builder.master(options.master)
    for key, value in conf.items():
        builder = builder.config(key, value)
    signals = _SignalCancel()
    signals.install()
    try:
        with timed(timings, "start"):
            try:
                spark = builder.getOrCreate()
            except BaseException:  # e.g. Ctrl-C while the JVM starts: leave no JVM behind
                _stop_gateway()
                raise
        signals.context = spark.sparkContext
        signals.install()  # over the SIGINT handler pyspark has just put in place
        tracker = _StageReporter(spark, on_progress) if on_progress else None
        try:
            yield spark
        except BaseException:
            _quietly(spark.sparkContext.cancelAllJobs)
            raise
        finally:
            if tracker:
                tracker.stop()
            with timed(timings, "stop"):
                _quietly(spark.stop)
    finally:
        signals.restore()


# Settings that take effect only when pyspark launches its driver JVM, once per process.
LAUNCH_SETTINGS = (
    "spark.driver.memory",
    "spark.driver.extraJavaOptions",
    "spark.driver.extraClassPath",
    "spark.jars",
)
_launched_with: dict[str, str | None] | None = None


def _relaunch_jvm_if_launched_otherwise(conf: Mapping[str, str]) -> None:
    """A process that runs a second job (tests, the Python API) keeps pyspark's JVM of the first:
    stop it if the new job's launch settings (driver memory, JDBC jar, …) differ."""
    from pyspark import SparkContext

    global _launched_with
    wanted = {key: conf.get(key) for key in LAUNCH_SETTINGS}
    if SparkContext._gateway is not None and _launched_with not in (None, wanted):
        _stop_gateway()
    _launched_with = wanted


def _stop_gateway() -> None:
    """Stop pyspark's driver JVM (and any context on it); the next session launches a new one."""
    from pyspark import SparkContext

    if SparkContext._active_spark_context is not None:
        _quietly(SparkContext._active_spark_context.stop)
    gateway = SparkContext._gateway
    if gateway is None:
        return
    process = getattr(gateway, "proc", None)
    _quietly(gateway.shutdown)
    SparkContext._gateway = None
    SparkContext._jvm = None
    if process is not None:
        # The gateway JVM exits when its standard input closes.
        _quietly(process.stdin.close)
        try:
            process.wait(timeout=30)
        except Exception:
            _quietly(process.kill)


def _on_this_host(master: str) -> bool:
    if master == "local" or master.startswith("local["):
        return True
    host = master.split("://", 1)[-1].split(":", 1)[0]
    return host in ("localhost", LOOPBACK)


def default_parallelism(spark: SparkSession, options: SparkOptions) -> int:
    """Partitions of the hand-off, ALS blocks and walk tasks: the option, else Spark's."""
    return options.partitions or max(1, spark.sparkContext.defaultParallelism)


class _SignalCancel:
    """While installed, SIGINT and SIGTERM cancel Spark's jobs and raise KeyboardInterrupt.

    `restore()` puts back the handlers found by the first `install()` (pyspark installs a
    SIGINT handler of its own when the session starts and never removes it)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.context: Any = None
        self.previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in self.SIGNALS:
            old = signal.signal(sig, self._handle)
            self.previous.setdefault(sig, old)

    def restore(self) -> None:
        for sig, old in self.previous.items():
            signal.signal(sig, old)
        self.previous.clear()

    def _handle(self, signum: int, _frame: object) -> None:
        from bookrec.interrupts import Terminated

        if self.context is not None:
            _quietly(self.context.cancelAllJobs)
        # What bookrec's own handler raises, so the exit code is 130 / 143 as documented.
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Terminated(signum)


class _StageReporter:
    """Polls Spark's status tracker on a thread: (stage name, tasks done, tasks) of each active
    stage to the callback. Spark has no push API in Python."""

    def __init__(self, spark: SparkSession, on_progress: ProgressFn) -> None:
        self.tracker = spark.sparkContext.statusTracker()
        self.on_progress = on_progress
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="spark-progress", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done.wait(POLL_SECONDS):
            try:
                for stage_id in self.tracker.getActiveStageIds():
                    info = self.tracker.getStageInfo(stage_id)
                    if info is not None:
                        self.on_progress(info.name, info.numCompletedTasks, info.numTasks)
            except Exception:  # the session is stopping; its last figures do not matter
                return

    def stop(self) -> None:
        self.done.set()
        self.thread.join(timeout=5)


def _quietly(fn: Callable[[], object]) -> None:
    with suppress(Exception):
        fn()


@contextmanager
def timed(timings: dict[str, float] | None, name: str) -> Iterator[None]:
    """Adds the seconds of the block to timings[name] (when timings is given)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        if timings is not None:
            timings[name] = round(timings.get(name, 0.0) + time.perf_counter() - started, 3)
