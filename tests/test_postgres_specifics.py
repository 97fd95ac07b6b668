"""What only the PostgreSQL backend does: interaction loads that check references themselves
(foreign-key triggers off for their transaction) keep the plain path's guarantees; vector
write-backs compress with lz4, read back exactly, and store the same JSONB whether parallel
workers convert it or not, leaving nothing behind when they fail; a signal while the streamed
read waits for the server is bookrec's interrupt."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import uuid

import numpy as np
import psycopg
import pytest

from bookrec.domain import BookRecord, InteractionBatch
from bookrec.storage import open_repository
from tests.conftest import _reset_postgres

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_url(postgres_server):
    _reset_postgres(postgres_server)
    repo = open_repository(postgres_server, create=True)
    repo.migrate()
    repo.upsert_books([[BookRecord("a", "A"), BookRecord("b", "B")]])
    repo.close()
    return postgres_server


def _as_role(url: str, role: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{role}@{rest.split('@', 1)[1]}"


@pytest.fixture(params=["own checks", "foreign trigger", "unprivileged role"])
def load_path(request, pg_url):
    """(URL to load with, whether the loader should take the fast path)."""
    admin = psycopg.connect(pg_url, autocommit=True)
    role = None
    if request.param == "foreign trigger":
        admin.execute("CREATE TABLE audit (n int)")
        admin.execute(
            "CREATE FUNCTION audited() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN INSERT INTO audit VALUES (1); RETURN NULL; END $$"
        )
        admin.execute(
            "CREATE TRIGGER audit_interactions AFTER INSERT ON interactions"
            " FOR EACH ROW EXECUTE FUNCTION audited()"
        )
    if request.param == "unprivileged role":
        role = f"loader_{uuid.uuid4().hex[:8]}"
        admin.execute(f"CREATE ROLE {role} LOGIN")
        admin.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
        admin.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}")
        admin.execute(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}")
    yield (_as_role(pg_url, role) if role else pg_url), request.param == "own checks"
    if role:
        admin.execute(f"DROP OWNED BY {role}")
        admin.execute(f"DROP ROLE {role}")
    admin.close()


def test_every_load_path_refuses_missing_books_and_deduplicates(load_path):
    url, fast = load_path
    repo = open_repository(url)
    books = repo.book_id_map()
    with (
        pytest.raises(Exception, match="book"),  # JobFailedError or ForeignKeyViolation
        repo.interaction_loader() as loader,
    ):
        assert loader._checks_references is fast
        loader.add(
            InteractionBatch.from_rows(
                [("u1", books["a"], "view", None, 1.0), ("u2", 999_999, "view", None, 2.0)]
            )
        )
    assert repo.counts()["interactions"] == 0 and repo.counts()["users"] == 0

    with repo.interaction_loader() as loader:
        loader.add(
            InteractionBatch.from_rows(
                [("u1", books["a"], "view", None, 1.0), ("u1", books["b"], "like", None, 2.0)]
            )
        )
        loader.add(
            InteractionBatch.from_rows(
                [("u1", books["a"], "view", None, 1.0), ("u2", books["b"], "rate", 4.0, 3.0)]
            )
        )
    result = loader.result
    assert (result.rows, result.inserted, result.duplicates, result.new_users) == (4, 3, 1, 2)
    assert repo.counts()["interactions"] == 3
    if url.count("loader_") == 0 and not fast:  # the foreign trigger still fired for each row
        assert repo.conn.execute("SELECT count(*) FROM audit").fetchone()[0] == 3
    # The foreign keys are still there and still cascade.
    repo.conn.execute("DELETE FROM users WHERE external_id = 'u1'")
    assert repo.counts()["interactions"] == 1
    repo.close()


def test_a_large_load_leaves_planner_statistics_a_small_one_does_not(pg_url, monkeypatch):
    from bookrec.storage import postgres_loader

    monkeypatch.setattr(postgres_loader, "ANALYZE_AFTER_ROWS", 50)
    repo = open_repository(pg_url)
    books = repo.book_id_map()

    def analysed() -> bool:
        sql = "SELECT reltuples >= 0 FROM pg_class WHERE relname = 'interactions'"
        return repo.conn.execute(sql).fetchone()[0]

    def load(users: range) -> None:
        rows = [(f"u{u}", books["a"], "view", None, float(u)) for u in users]
        with repo.interaction_loader() as loader:
            loader.add(InteractionBatch.from_rows(rows))

    load(range(49))
    assert not analysed()  # never analysed: autovacuum is off on the test server
    load(range(100, 150))
    assert analysed()
    users = "SELECT reltuples FROM pg_class WHERE relname = 'users'"
    assert repo.conn.execute(users).fetchone()[0] == 99
    repo.close()


def test_a_load_whose_key_filter_errs_on_every_key_stores_the_same(pg_url, monkeypatch):
    """The key filter only routes rows: with a filter of 8 bits nearly every key looks seen
    and goes through INSERT ... ON CONFLICT, and the outcome is the same."""
    from bookrec.storage.loading import KeyFilter

    repo = open_repository(pg_url)
    books = repo.book_id_map()
    rows = [(f"u{i % 7}", books["ab"[i % 2]], "view", None, float(i % 5)) for i in range(300)]
    expected = len({(u, b, t) for u, b, _, _, t in rows})

    def load(batch_rows):
        with repo.interaction_loader() as loader:
            for start in range(0, len(batch_rows), 50):
                loader.add(InteractionBatch.from_rows(batch_rows[start : start + 50]))
        return loader.result

    monkeypatch.setattr(KeyFilter, "BITS", 8)
    tiny = load(rows)
    seen = repo.conn.execute("SELECT user_id, book_id, occurred_at FROM interactions").fetchall()
    repo.conn.execute("TRUNCATE interactions, users CASCADE")
    monkeypatch.undo()
    normal = load(rows)
    assert (tiny.inserted, tiny.duplicates) == (normal.inserted, normal.duplicates)
    assert tiny.inserted == expected
    assert len(seen) == expected
    repo.close()


def test_timestamps_are_stored_as_to_timestamp_stores_them(pg_url):
    repo = open_repository(pg_url)
    books = repo.book_id_map()
    stamps = [0.0000005, 1.0000015, 1767225600.123456, 1767225600.9999996, 1700000000.5]
    with repo.interaction_loader() as loader:
        loader.add(InteractionBatch.from_rows([("u", books["a"], "view", None, t) for t in stamps]))
    stored = repo.conn.execute(
        "SELECT occurred_at = ANY (SELECT to_timestamp(t) FROM unnest(%s::float8[]) t)"
        " FROM interactions",
        (stamps,),
    ).fetchall()
    assert stored == [(True,)] * len(stamps)
    repo.close()


@pytest.mark.parametrize("server_has_lz4", [True, False])
def test_vector_write_back_compresses_with_lz4_and_reads_back_exactly(
    pg_url, monkeypatch, server_has_lz4
):
    """Where the server has lz4 the write-back uses it; elsewhere the server's default."""
    from bookrec.storage.postgres import PostgresVectors

    if not server_has_lz4:
        monkeypatch.setattr(PostgresVectors, "_vector_write_capabilities", lambda _: (False, True))
    repo = open_repository(pg_url)
    books = np.array(sorted(repo.book_id_map().values()))
    vectors = np.random.default_rng(3).normal(size=(2, 256)).astype(np.float32)
    repo.replace_vectors("gnn", repo.start_run("gnn", {}), {}, books, vectors)
    methods = repo.conn.execute(
        "SELECT DISTINCT pg_column_compression(gnn_vector) FROM books"
    ).fetchall()
    default = repo.conn.execute("SHOW default_toast_compression").fetchall()
    assert methods == ([("lz4",)] if server_has_lz4 else default)
    ids, from_json = repo.vectors.load_json(["gnn"], "books")["gnn"]
    assert ids.tolist() == books.tolist() and np.array_equal(from_json, vectors)
    repo.close()


# Values whose JSON text is easy to get wrong: zeros (to_jsonb writes 0, not 0.0 or -0), the
# smallest subnormal, the largest float32, and exponents numeric spells out in full.
TRICKY = [0.0, -0.0, 1.0, -1.0, 0.1, 1e-7, 1e-45, 3.4028235e38, 1.1754944e-38, 123456.79]


def _owner_role(pg_url, admin):
    """A non-superuser role that owns the bookrec tables (it created them)."""
    role = f"owner_{uuid.uuid4().hex[:8]}"
    admin.execute(f"CREATE ROLE {role} LOGIN")
    admin.execute("DROP SCHEMA public CASCADE")
    admin.execute(f"CREATE SCHEMA public AUTHORIZATION {role}")
    repo = open_repository(_as_role(pg_url, role))
    repo.migrate()
    repo.upsert_books([[BookRecord("a", "A"), BookRecord("b", "B")]])
    repo.close()
    return role


def _table_writer_role(admin):
    """A role that may read and write the tables but not create any in the schema."""
    role = f"writer_{uuid.uuid4().hex[:8]}"
    admin.execute(f"CREATE ROLE {role} LOGIN")
    admin.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
    admin.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}")
    admin.execute(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}")
    return role


WRITE_PATHS = {
    # path: (staged for parallel workers?, session settings)
    "parallel": (True, {}),
    "parallel, non-superuser owner": (True, {}),
    "parallel, but no worker free": (True, {"max_parallel_workers": "0"}),
    "no CREATE privilege": (False, {}),
    "parallel plans off": (False, {"max_parallel_workers_per_gather": "0"}),
}


@pytest.fixture(params=list(WRITE_PATHS))
def vector_write_path(request, pg_url):
    """(an open repository that writes vectors by that path, whether it stages for workers)."""
    admin = psycopg.connect(pg_url, autocommit=True)
    role = None
    if request.param == "parallel, non-superuser owner":
        role = _owner_role(pg_url, admin)
    elif request.param == "no CREATE privilege":
        role = _table_writer_role(admin)
    repo = open_repository(_as_role(pg_url, role) if role else pg_url)
    in_parallel, settings = WRITE_PATHS[request.param]
    for name, value in settings.items():
        repo.conn.execute(f"SET {name} = {value}")
    yield repo, in_parallel
    repo.close()
    if role:
        admin.execute("DROP SCHEMA public CASCADE")
        admin.execute("CREATE SCHEMA public")
        admin.execute(f"DROP OWNED BY {role}")
        admin.execute(f"DROP ROLE {role}")
    admin.close()


def _recording_statements(repo, explained: str = " AS SELECT ") -> list[str]:
    """The statements the repository runs from now on, each containing `explained` (CREATE
    TABLE AS by default) after its plan."""
    statements: list[str] = []
    execute = repo.conn.execute

    def recording(query, *args, **kwargs):
        if isinstance(query, str) and explained in query:
            plan = execute(f"EXPLAIN {query}", *args).fetchall()
            statements.append("\n".join(line for (line,) in plan))
        statements.append(str(query))
        return execute(query, *args, **kwargs)

    repo.conn.execute = recording
    return statements


def _leftover_tables(repo) -> list[str]:
    rows = repo.conn.execute(
        "SELECT relname FROM pg_class WHERE relname LIKE '%vectors%' AND relkind = 'r'"
    )
    return [r[0] for r in rows.fetchall()]


def test_every_vector_write_path_stores_what_to_jsonb_stores(vector_write_path):
    """Staged for parallel workers or not, with workers or without: the same JSONB text."""
    repo, in_parallel = vector_write_path
    books = np.array(sorted(repo.book_id_map().values()))
    vectors = np.vstack([TRICKY, np.random.default_rng(5).normal(size=len(TRICKY))]).astype(
        np.float32
    )
    statements = _recording_statements(repo)
    repo.replace_vectors("gnn", repo.start_run("gnn", {}), {}, books, vectors)
    assert any("CREATE UNLOGGED TABLE" in s for s in statements) is in_parallel
    assert any("Workers Planned" in s for s in statements) is in_parallel
    stored = repo.conn.execute("SELECT gnn_vector::text FROM books ORDER BY id").fetchall()
    expected = [
        repo.conn.execute("SELECT to_jsonb(%s::real[])::text", (v.tolist(),)).fetchone()
        for v in vectors
    ]
    assert stored == expected
    assert stored[0][0].startswith("[0, 0, 1, -1, 0.1, 0.0000001, 0.0000000000")
    ids, from_json = repo.vectors.load_json(["gnn"], "books")["gnn"]
    assert ids.tolist() == books.tolist() and np.array_equal(from_json, vectors)
    assert _leftover_tables(repo) == []


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
@pytest.mark.parametrize("fails", ["during the COPY", "after the conversion"])
def test_a_failing_vector_write_leaves_old_vectors_and_no_table(vector_write_path, fails, error):
    repo, _ = vector_write_path
    books = np.array(sorted(repo.book_id_map().values()))
    old = np.ones((2, 4), np.float32)
    repo.replace_vectors("gnn", repo.start_run("gnn", {}), {}, books, old)

    def explode(*args):
        raise error("injected failure")

    if fails == "after the conversion":
        repo.vectors._write_snapshots = explode
    with pytest.raises(error, match="injected"):
        repo.replace_vectors(
            "gnn", repo.start_run("gnn", {}), {}, books, np.zeros((2, 4), np.float32),
            on_progress=explode if fails == "during the COPY" else None,
        )  # fmt: skip
    ids, kept = repo.vectors.load_json(["gnn"], "books")["gnn"]
    assert ids.tolist() == books.tolist() and np.array_equal(kept, old)
    assert _leftover_tables(repo) == []


def test_clearing_the_rows_not_written_stays_linear_with_statistics_of_an_empty_column(
    vector_write_path, pg_url
):
    """Statistics taken while the column was all NULL (autovacuum off or behind, as after a
    first load) expect one row with a vector: the UPDATE that clears the rows a write does not
    cover must still not plan a nested loop that scans the whole stage for each such row
    (quadratic: 300k users took over 8 minutes)."""
    repo, _ = vector_write_path
    repo.upsert_books([[BookRecord(f"x{i}", f"Book {i}") for i in range(3000)]])
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("ANALYZE books")
    books = np.array(sorted(repo.book_id_map().values()))
    vectors = np.random.default_rng(8).normal(size=(len(books), 4)).astype(np.float32)
    repo.replace_vectors("gnn", repo.start_run("gnn", {}), {}, books, vectors)
    statements = _recording_statements(repo, explained=" AND NOT EXISTS ")
    repo.replace_vectors("gnn", repo.start_run("gnn", {}), {}, books[1:], vectors[1:])
    plans = [s for s in statements if s.startswith("Update on")]
    assert len(plans) == 1
    nested_over_stage = "Nested Loop" in plans[0] and re.search(
        r"Seq Scan on \S*staged_books_vectors", plans[0]
    )
    assert not nested_over_stage, plans[0]
    ids, kept = repo.vectors.load_json(["gnn"], "books")["gnn"]
    assert ids.tolist() == books[1:].tolist() and np.array_equal(kept, vectors[1:])


STREAMED_READ = """
import sys

import numpy as np

from bookrec import interrupts
from bookrec.storage import open_repository

interrupts.install()
repo = open_repository(sys.argv[1])
# The test holds a lock on interactions: the streamed read's query is the first to wait for it.
repo.interactions._bounds = lambda: (10**6, np.int32)
try:
    with interrupts.command(), repo.interaction_stream() as stream:
        for _ in stream:
            pass
except KeyboardInterrupt as exc:
    print(type(exc).__name__, flush=True)
    sys.exit(interrupts.exit_code(exc))
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_the_streamed_read_waits_for_the_server_is_an_interrupt(pg_url, signum):
    """ADBC puts a SIGINT handler of its own in place around its blocking calls in the main
    thread: a Ctrl-C there failed the query ("canceling statement due to user request", exit 1),
    or was lost, or crashed the process later. The calls are made off the main thread: the
    signal is bookrec's interrupt, and the query is cancelled."""
    admin = psycopg.connect(pg_url)
    admin.execute("LOCK TABLE interactions IN ACCESS EXCLUSIVE MODE")
    watch = psycopg.connect(pg_url, autocommit=True)  # a fresh view of pg_stat_activity each time
    proc = subprocess.Popen([sys.executable, "-c", STREAMED_READ, pg_url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not watch.execute(
            "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND query LIKE 'SELECT user_id, book_id,%'"
        ).fetchone():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        started = time.monotonic()
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
        seconds = time.monotonic() - started
    finally:
        proc.kill()
        watch.close()
        admin.close()  # the lock
    assert proc.returncode == 128 + signum, err
    name = "KeyboardInterrupt" if signum == signal.SIGINT else "Terminated"
    assert (out.strip(), err) == (name, "")
    assert seconds < 5  # cancelled, not waited for until the lock went away
