"""Chaos harness: SIGKILL, SIGTERM and SIGINT at random moments of every long bookrec command,
on SQLite and PostgreSQL, with the invariants checked after each; plus writers inserting
interactions with plain SQL (as the serving API does) while the commands run.

After each signal:
- the exit code is the documented one (130 SIGINT, 143 SIGTERM; -9 for SIGKILL; 0 when the
  command finished first), never a crash (139) or a traceback;
- interaction, user and book counts are the old ones or the complete new ones;
- no vector family mixes two runs: every non-NULL vector of a family has one dimension (the
  runs alternate dimensions, so a half-written family would show two), and the family's
  binary snapshot, where there is one, holds the same vectors as its JSON column;
- `training_runs` has no `running` row once its process is dead (SIGKILL leaves one until
  the next run of the model marks it failed);
- no walks corpus is left in the temporary directory after SIGTERM / SIGINT;
- the next command is not blocked by a stale lock (each try is the next command of the last).
At the end every row the concurrent writers committed is there exactly once.

Run by hand:  python benchmarks/chaos.py [--backends sqlite,postgresql] [--kills 50]
              [--commands ingest-interactions,ingest-books,train-cf,train-gnn,embed,db-upgrade]
The test suite runs a short form (tests/test_chaos.py, marked slow).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OUT, fresh_database

SIGNALS = (signal.SIGKILL, signal.SIGTERM, signal.SIGINT)
# What a signal may leave as exit code: the documented one, 0 if the command finished first,
# or the default action's when it came before bookrec installed its handlers (start-up).
EXPECTED_EXIT = {
    signal.SIGKILL: {-9, 0},
    signal.SIGTERM: {143, 0, -15},
    signal.SIGINT: {130, 0, -2},
}
COMMANDS = (
    "ingest-interactions", "ingest-books", "train-cf", "train-gnn", "embed", "db-upgrade",
)  # fmt: skip
WRITER_USER = "chaos-writer"
EXTRA_USER = "chaos-extra-"
EXTRA_BOOK = "chaos-book-"


@dataclass
class Tally:
    """What happened to one command on one backend."""

    tries: int = 0
    exits: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    # Signals Python swallowed: raised inside a callback it ignores exceptions of (a weakref
    # callback of the import system: "Exception ignored in …"); the command then finished.
    lost: int = 0


@dataclass
class Data:
    books: Path
    interactions: Path
    extra_books: Path
    extra_interactions: Path
    n_books: int
    n_extra_books: int
    n_interactions: int
    n_extra: int


def make_data(folder: Path, n_interactions: int, seed: int) -> Data:
    from bookrec.synthetic import write_benchmark_csv

    folder.mkdir(parents=True, exist_ok=True)
    n_books = max(500, n_interactions // 50)
    n_users = max(200, n_interactions // 50)
    books = folder / "books.csv"
    rows = [f"{i},Book {i} of saga {i % 37},Author {i % 101}" for i in range(1, n_books + 1)]
    books.write_text("external_id,title,authors\n" + "\n".join(rows) + "\n")
    extra_books = folder / "extra-books.csv"
    n_extra_books = 300
    rows = [f"{EXTRA_BOOK}{i},Extra book {i},Author {i % 7}" for i in range(n_extra_books)]
    extra_books.write_text("external_id,title,authors\n" + "\n".join(rows) + "\n")
    interactions = folder / "interactions.csv"
    write_benchmark_csv(
        interactions, seed=seed, n_users=n_users, n_books=n_books,
        n_interactions=n_interactions, clusters=5,
    )  # fmt: skip
    # New users' events on existing books, so that a complete ingest changes every count.
    n_extra = max(1000, n_interactions // 5)
    rng = np.random.default_rng(seed + 1)
    lines = ["user_id,book_id,event,rating,timestamp"]
    for i in range(n_extra):
        book = int(rng.integers(1, n_books + 1))
        lines.append(f"{EXTRA_USER}{i % 500},{book},view,,{1_767_225_600 + i}")
    extra = folder / "extra-interactions.csv"
    extra.write_text("\n".join(lines) + "\n")
    return Data(books, interactions, extra_books, extra, n_books, n_extra_books,
                n_interactions, n_extra)  # fmt: skip


# -- the database, read and written as the serving API would -----------------------------------
def connect(url: str):
    if url.startswith("sqlite:///"):
        import sqlite3

        conn = sqlite3.connect(url[len("sqlite:///") :], timeout=120, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 120000")
        conn.execute("PRAGMA foreign_keys = ON")  # deleting a user deletes its interactions
        return conn
    import psycopg

    return psycopg.connect(url, autocommit=True)


def scalar(conn, sql: str, params: tuple = ()):
    marks = sql if not hasattr(conn, "pgconn") else sql.replace("?", "%s")
    cursor = conn.execute(marks, params) if params else conn.execute(marks)
    return cursor.fetchone()[0]


class Writers:
    """Threads inserting one interaction per transaction with plain SQL, remembering each
    row they committed, until stopped."""

    def __init__(self, url: str, book_ids: list[int], threads: int = 2) -> None:
        self.url = url
        self.book_ids = book_ids
        self.committed: list[tuple[int, int, float]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]
        conn = connect(url)
        users = {}
        for i in range(threads):
            name = f"{WRITER_USER}-{i}"
            conn.execute(
                _sql(conn, "INSERT INTO users (external_id) VALUES (?) ON CONFLICT DO NOTHING"),
                (name,),
            )
            users[i] = scalar(conn, "SELECT id FROM users WHERE external_id = ?", (name,))
        conn.close()
        self.users = users

    def __enter__(self) -> Writers:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _run(self, index: int) -> None:
        conn = connect(self.url)
        rng = random.Random(index)
        user = self.users[index]
        sql = _sql(
            conn,
            "INSERT INTO interactions (user_id, book_id, event, occurred_at) VALUES (?, ?, 'view', "
            + ("to_timestamp(?))" if hasattr(conn, "pgconn") else "?)"),
        )
        n = 0
        while not self._stop.is_set():
            book = rng.choice(self.book_ids)
            when = 1_900_000_000 + index * 10_000_000 + n  # unique per writer
            try:
                conn.execute(sql, (user, book, when))
                self.committed.append((user, book, float(when)))
                n += 1
            except Exception as exc:  # a lock timeout is a lost write: reported
                self.errors.append(f"{type(exc).__name__}: {exc}")
            time.sleep(0.01)
        conn.close()

    def verify(self) -> tuple[int, int, list[str]]:
        """(rows committed, rows found once, problems)."""
        conn = connect(self.url)
        epoch = "extract(epoch from occurred_at)" if hasattr(conn, "pgconn") else "occurred_at"
        marks = ", ".join("?" * len(self.users))
        rows = conn.execute(
            _sql(conn, f"SELECT user_id, book_id, {epoch} FROM interactions"
                       f" WHERE user_id IN ({marks})"),
            tuple(self.users.values()),
        ).fetchall()  # fmt: skip
        conn.close()
        found = Counter((u, b, float(t)) for u, b, t in rows)
        problems = list(self.errors)
        lost = [r for r in self.committed if found[r] == 0]
        duplicated = [r for r, n in found.items() if n > 1]
        unknown = set(found) - set(self.committed)
        if lost:
            problems.append(f"{len(lost)} committed rows lost, e.g. {lost[:3]}")
        if duplicated:
            problems.append(f"{len(duplicated)} rows duplicated, e.g. {duplicated[:3]}")
        if unknown:
            problems.append(f"{len(unknown)} rows nobody committed")
        once = sum(1 for r in self.committed if found[r] == 1)
        return len(self.committed), once, problems


def _sql(conn, sql: str) -> str:
    return sql.replace("?", "%s") if hasattr(conn, "pgconn") else sql


# -- invariants --------------------------------------------------------------------------------
def counts(url: str) -> dict[str, int]:
    """Rows of each table, the concurrent writers' rows left out."""
    conn = connect(url)
    not_writer = f"external_id NOT LIKE '{WRITER_USER}%'"
    result = {
        "interactions": scalar(
            conn,
            f"SELECT count(*) FROM interactions WHERE user_id IN"
            f" (SELECT id FROM users WHERE {not_writer})",
        ),
        "users": scalar(conn, f"SELECT count(*) FROM users WHERE {not_writer}"),
        "books": scalar(conn, "SELECT count(*) FROM books"),
    }
    conn.close()
    return result


def vector_problems(url: str) -> list[str]:
    from bookrec.storage import open_repository

    problems = []
    repo = open_repository(url)
    try:
        for family, side in (("cf", "books"), ("cf", "users"), ("gnn", "books"),
                             ("content", "books")):  # fmt: skip
            stats = repo.vector_stats(family, side)
            if len(stats.dimensions) > 1:
                problems.append(f"{family} {side} vectors mix dimensions {stats.dimensions}")
        cf_dims = {
            d for side in ("books", "users") for d in repo.vector_stats("cf", side).dimensions
        }
        if len(cf_dims) > 1:
            problems.append(f"cf user and book vectors differ in dimension {sorted(cf_dims)}")
        for family in ("cf", "gnn", "content"):
            snapshot = repo.load_vectors(family)  # the snapshot where there is one
            column = repo.vectors.load_json([family], "books")[family]
            if not np.array_equal(snapshot[0], column[0]) or (
                len(column[0]) and not np.allclose(snapshot[1], column[1], atol=1e-6)
            ):
                problems.append(f"{family} snapshot differs from the JSON column")
    finally:
        repo.close()
    return problems


def running_runs(url: str) -> list[int]:
    conn = connect(url)
    ids = [r[0] for r in conn.execute("SELECT id FROM training_runs WHERE status = 'running'")]
    conn.close()
    return ids


# -- one command under signals -----------------------------------------------------------------
class Harness:
    def __init__(
        self, backend: str, data: Data, rng: random.Random, tmp: Path, folder: Path
    ) -> None:
        self.backend = backend
        self.data = data
        self.rng = rng
        self.tmp = tmp
        self.folder = folder
        self.databases: list[str] = []
        self.url = ""
        self.flip = 0
        self.killed_running: set[int] = set()  # 'running' rows SIGKILLs left

    def bookrec(self, *args: str, url: str | None = None) -> subprocess.Popen:
        env = {**os.environ, "BOOKREC_DATABASE_URL": url or self.url, "TMPDIR": str(self.tmp)}
        return subprocess.Popen(
            [sys.executable, "-m", "bookrec", "--quiet", *args],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    def run_ok(self, *args: str, url: str | None = None) -> None:
        proc = self.bookrec(*args, url=url)
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"bookrec {' '.join(args)} failed ({proc.returncode}): {err}")

    def new_database(self, name: str, *, init: bool = True) -> str:
        """A new, empty database (schema created if `init`): a file in the harness's folder,
        or a PostgreSQL database named with BOOKREC_BENCH_PREFIX (see common.py)."""
        if self.backend == "sqlite":
            for leftover in self.folder.glob(f"{name}.db*"):
                leftover.unlink()
            url = f"sqlite:///{self.folder / name}.db"
            if init:
                self.run_ok("db", "init", url=url)
        else:
            url = fresh_database(self.backend, name, init=init)
        if url not in self.databases:
            self.databases.append(url)
        return url

    def drop_databases(self) -> None:
        """Remove the harness's PostgreSQL databases (SQLite files stay in its folder)."""
        import psycopg

        for url in self.databases:
            if url.startswith("postgresql"):
                base, name = url.rsplit("/", 1)
                with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def setup(self) -> None:
        self.url = self.new_database("bookrec_chaos")
        self.run_ok("ingest", "books", str(self.data.books))
        self.run_ok("ingest", "interactions", str(self.data.interactions))
        self.run_ok("train", "cf", "--factors", "8", "--iterations", "5")
        self.run_ok("train", "gnn", "--dim", "8", "--workers", "2")

    def args_of(self, command: str) -> list[str]:
        self.flip ^= 1
        dim = ["12", "8"][self.flip]  # alternate dimensions: a mixed family would show
        return {
            "ingest-interactions": ["ingest", "interactions", str(self.data.extra_interactions)],
            "ingest-books": ["ingest", "books", str(self.data.extra_books)],
            # --force: the quality gate runs (and is interrupted) too, but the alternating
            # dimensions' worse runs are published anyway.
            "train-cf": ["train", "cf", "--factors", dim, "--iterations", "10", "--force"],
            "train-gnn": [
                "train",
                "gnn",
                "--dim",
                dim,
                "--workers",
                "2",
                "--epochs",
                "2",
                "--force",
            ],
            "embed": ["embed", "--dim", dim],
            "db-upgrade": ["db", "upgrade"],
        }[command]

    def duration(self, command: str) -> float:
        """Seconds of an undisturbed run (then undone where it added rows)."""
        url = self.v1_database() if command == "db-upgrade" else None
        started = time.perf_counter()
        self.run_ok(*self.args_of(command), url=url)
        seconds = time.perf_counter() - started
        self.undo(command)
        return seconds

    def v1_database(self) -> str:
        """A database at schema version 1 with a few books, for `db upgrade` to migrate."""
        from bookrec.storage import open_repository

        url = self.new_database("bookrec_chaos_v1", init=False)
        repo = open_repository(url, create=True)
        repo.apply_migration(repo.migrations()[0])
        repo.close()
        return url

    def undo(self, command: str) -> None:
        """Remove what a complete ingest added, so that the next try adds it again."""
        conn = connect(self.url)
        if command == "ingest-interactions":
            conn.execute(f"DELETE FROM users WHERE external_id LIKE '{EXTRA_USER}%'")
        elif command == "ingest-books":
            conn.execute(f"DELETE FROM books WHERE external_id LIKE '{EXTRA_BOOK}%'")
        conn.close()

    def attack(self, command: str, tries: int, seconds: float) -> Tally:
        tally = Tally()
        base = counts(self.url)
        for _ in range(tries):
            url = self.v1_database() if command == "db-upgrade" else self.url
            sig = self.rng.choice(SIGNALS)
            delay = self.rng.uniform(0.0, seconds * 1.1)
            proc = self.bookrec(*self.args_of(command), url=url)
            time.sleep(delay)
            if proc.poll() is None:
                proc.send_signal(sig)
            _, err = proc.communicate()
            tally.tries += 1
            tally.exits[(sig.name, proc.returncode)] += 1
            where = f"{command} {sig.name} at {delay:.2f}s (exit {proc.returncode})"
            if proc.returncode == 0 and "Exception ignored" in err:
                tally.lost += 1
                err = ""
            problems = self.check(command, sig, proc.returncode, err, base, url)
            tally.failures += [f"{where}: {p}" for p in problems]
        return tally

    def check(
        self, command: str, sig: signal.Signals, code: int, err: str, base: dict, url: str
    ) -> list[str]:
        problems = []
        if "KeyboardInterrupt" in err and "bookrec" not in err:
            return []  # Ctrl-C while Python itself starts (site.py): before any bookrec code
        if code not in EXPECTED_EXIT[sig]:
            problems.append(f"unexpected exit code; stderr: {err.strip()[-300:]}")
        # Ctrl-C while Python imports bookrec's modules, before bookrec's handler: Python's
        # own KeyboardInterrupt report (exit -2), nothing started yet.
        if "Traceback" in err and code != -2:
            problems.append(f"traceback: {err.strip()[-300:]}")
        if "another bookrec" in err:
            problems.append("blocked by a lock left by the previous try")
        if command == "db-upgrade":
            from bookrec.storage import open_repository

            repo = open_repository(url)
            version = repo.schema_version()
            latest = max(m.version for m in repo.migrations())
            repo.close()
            # Each migration is its own transaction: any version from 1 to the latest is whole.
            if version is None or not 1 <= version <= latest:
                problems.append(f"schema version {version}")
            return problems
        now = counts(self.url)
        complete = dict(base)
        if command == "ingest-interactions":
            complete["interactions"] += self.data.n_extra
            complete["users"] += 500
        if command == "ingest-books":
            complete["books"] += self.data.n_extra_books
        if now not in (base, complete):
            problems.append(f"counts {now}: neither the old {base} nor the new {complete}")
        if now == complete and complete != base:
            self.undo(command)
        problems += vector_problems(self.url)
        running = set(running_runs(self.url))
        if sig == signal.SIGKILL:
            self.killed_running |= running  # until the next run of the model (storage layer)
        else:
            leftovers = [p.name for p in self.tmp.iterdir()]
            if leftovers:
                problems.append(f"temporary files left: {leftovers}")
            if running - self.killed_running:
                problems.append(f"runs left 'running': {sorted(running - self.killed_running)}")
        for leftover in self.tmp.iterdir():  # a SIGKILL's; the next gnn run removes them too
            subprocess.run(["rm", "-rf", str(leftover)], check=False)
        return problems

    def stale_running_rows(self) -> list[int]:
        """`running` rows after a clean run of every model (SIGKILL leaves them until the
        next run of that model marks them failed)."""
        for args in (["train", "cf", "--factors", "8", "--force"],
                     ["train", "gnn", "--dim", "8", "--force"],
                     ["embed", "--dim", "8"]):  # fmt: skip
            self.run_ok(*args)
        return running_runs(self.url)


def book_ids(url: str) -> list[int]:
    conn = connect(url)
    ids = [r[0] for r in conn.execute("SELECT id FROM books ORDER BY id LIMIT 500")]
    conn.close()
    return ids


def run(
    backends: list[str], commands: list[str], kills: dict[str, int], n_interactions: int,
    seed: int, report=print, folder: Path = OUT / "chaos", keep: bool = True,
) -> dict:  # fmt: skip
    """Run the harness; returns {backend: {command: Tally}, "writers": {...}, "stale": {...}}.
    `keep`: leave the PostgreSQL databases for a look afterwards."""
    rng = random.Random(seed)
    data = make_data(folder, n_interactions, seed)
    results: dict = {"writers": {}, "stale": {}}
    for backend in backends:
        tmp = Path(tempfile.mkdtemp(prefix="bookrec-chaos-tmp-"))
        harness = Harness(backend, data, rng, tmp, folder)
        harness.setup()
        results[backend] = {}
        with Writers(harness.url, book_ids(harness.url)) as writers:
            for command in commands:
                seconds = harness.duration(command)
                tally = harness.attack(command, kills[command], seconds)
                results[backend][command] = tally
                report(
                    f"{backend:10} {command:20} {tally.tries:3} signals over {seconds:5.1f} s runs:"
                    f" {_exits(tally.exits)}; {tally.lost} signals lost;"
                    f" {len(tally.failures)} invariant failures"
                )
                for failure in tally.failures[:5]:
                    report(f"    {failure}")
        written, found, problems = writers.verify()
        results["writers"][backend] = (written, found, problems)
        report(f"{backend:10} concurrent writers: {written} rows committed, {found} found once")
        for problem in problems[:5]:
            report(f"    {problem}")
        stale = harness.stale_running_rows()
        results["stale"][backend] = stale
        report(f"{backend:10} 'running' rows after a clean run of each model: {stale or 'none'}")
        tmp.rmdir()
        if not keep:
            harness.drop_databases()
    return results


def _exits(exits: Counter) -> str:
    return ", ".join(f"{sig} → {code}: {n}" for (sig, code), n in sorted(exits.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--commands", default=",".join(COMMANDS))
    parser.add_argument("--kills", type=int, default=50, help="signals per training command")
    parser.add_argument("--other-kills", type=int, default=20, help="per ingest / db upgrade")
    parser.add_argument("--interactions", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    # Started in the background (nohup, `&`), this process ignores SIGINT and so would every
    # bookrec it starts: give them the default back.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    commands = args.commands.split(",")
    kills = {c: args.kills if c in ("train-cf", "train-gnn", "embed") else args.other_kills
             for c in commands}  # fmt: skip
    results = run(args.backends.split(","), commands, kills, args.interactions, args.seed)
    failed = sum(
        len(t.failures) for b in args.backends.split(",") for t in results[b].values()
    ) + sum(len(p) for _, _, p in results["writers"].values())
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
