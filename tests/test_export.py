"""bookrec export vectors: every family, side and format round-trips to the database's vectors,
with the run in the metadata; errors leave no file. Both backends."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

import bookrec
from bookrec.errors import InputError, NotReadyError
from bookrec.writers import atomic_file
from tests.conftest import Cli
from tests.planted import write_planted

GNN = {"dim": 16, "walk_length": 10, "walks_per_node": 4, "epochs": 2, "workers": 1}


@pytest.fixture
def trained(db_url, tmp_path):
    books, events = write_planted(tmp_path)
    with bookrec.open(db_url, create=True) as db:
        db.init()
        db.ingest_books(books)  # content vectors
        db.ingest_interactions(events)
        db.train_cf(factors=8, iterations=3)
        db.train_gnn(**GNN)
    return db_url


def read_back(path, fmt):
    """(ids, external ids, vectors, metadata) of an exported file."""
    if fmt == "parquet":
        table = pq.read_table(path)
        vectors = np.array(table.column("vector").to_pylist(), dtype=np.float32)
        metadata = json.loads(table.schema.metadata[b"bookrec"])
        return (
            table.column("id").to_numpy(),
            table.column("external_id").to_pylist(),
            vectors,
            metadata,
        )
    if fmt == "npy":
        with np.load(path) as npz:
            return (
                npz["ids"],
                npz["external_ids"].tolist(),
                npz["vectors"],
                json.loads(npz["metadata"].item()),
            )
    lines = path.read_text().splitlines()
    metadata = json.loads(lines[0])["bookrec_export"]
    rows = [json.loads(line) for line in lines[1:]]
    return (
        np.array([r["id"] for r in rows], dtype=np.int64),
        [r["external_id"] for r in rows],
        np.array([r["vector"] for r in rows], dtype=np.float32),
        metadata,
    )


def stored(url, family, side):
    """(ids, external ids, vectors, latest run) as the database holds them."""
    with bookrec.open(url) as db:
        repo = db.repo
        ids, vectors = repo.load_vector_families([family], side)[family]
        table = "books" if side == "books" else "users"
        names = dict(repo.conn.execute(f"SELECT id, external_id FROM {table}").fetchall())
        return ids, [names[i] for i in ids.tolist()], np.array(vectors), repo.latest_run(family)


@pytest.mark.parametrize("fmt", ["parquet", "npy", "jsonl"])
@pytest.mark.parametrize(("family", "side"), [("cf", "books"), ("cf", "users"), ("gnn", "books"),
                                              ("content", "books")])  # fmt: skip
def test_every_family_and_format_round_trips(trained, tmp_path, family, side, fmt):
    path = tmp_path / f"{family}-{side}.out"
    with bookrec.open(trained) as db:
        result = db.export_vectors(path, family=family, side=side, format=fmt)
    ids, external_ids, vectors, metadata = read_back(path, fmt)
    want_ids, want_external, want_vectors, run = stored(trained, family, side)
    assert len(want_ids) > 10
    np.testing.assert_array_equal(ids, want_ids)
    assert external_ids == want_external
    np.testing.assert_array_equal(vectors, want_vectors)  # bit for bit
    assert vectors.dtype == np.float32
    assert (result.rows, result.dim, result.format, result.run_id) == (
        len(want_ids),
        want_vectors.shape[1],
        fmt,
        run.id,
    )
    assert result.read_from == ("snapshot" if side == "books" else "json")
    assert metadata["family"] == family and metadata["side"] == side
    assert (metadata["rows"], metadata["dim"]) == want_vectors.shape
    assert metadata["run"]["id"] == run.id and metadata["run"]["model"] == family
    assert metadata["run"]["parameters"] == run.parameters
    assert result.bytes == path.stat().st_size
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_the_json_columns_in_chunks_give_the_same_file(trained, tmp_path, monkeypatch):
    """Without a snapshot (something changed the column since) the rows come from the JSON
    column, by id ranges: the same rows, in the same order."""
    import bookrec.storage.vector_chunks as chunks

    with bookrec.open(trained) as db:
        db.export_vectors(tmp_path / "snap.parquet", family="gnn")
        with db.repo.dialect.transaction():
            db.repo.snapshots.delete("books.gnn_vector")
        monkeypatch.setattr(chunks, "JSON_ROWS_PER_CHUNK", 7)
        result = db.export_vectors(tmp_path / "json.parquet", family="gnn")
    assert result.read_from == "json"
    snap, json_rows = (pq.read_table(tmp_path / n) for n in ("snap.parquet", "json.parquet"))
    assert json_rows.num_rows == snap.num_rows > 7
    assert json_rows.column("vector").equals(snap.column("vector"))
    assert json_rows.column("external_id").equals(snap.column("external_id"))
    assert pq.ParquetFile(tmp_path / "json.parquet").num_row_groups > 1


def test_a_snapshot_of_many_chunks_is_exported_chunk_by_chunk(db_url, tmp_path, monkeypatch):
    import bookrec.storage.snapshots as snapshots

    monkeypatch.setattr(snapshots, "CHUNK_BYTES", 16 * 4 * 5)  # 5 rows of 16-d per chunk
    books, events = write_planted(tmp_path)
    with bookrec.open(db_url, create=True) as db:
        db.init()
        db.ingest_books(books, embed=False)
        db.ingest_interactions(events)
        db.train_gnn(**GNN)
        header = db.repo.snapshots.headers(["books.gnn_vector"])["books.gnn_vector"]
        assert header.n_chunks > 3
        result = db.export_vectors(tmp_path / "gnn.npz", family="gnn")
        ids, vectors = db.repo.load_vectors("gnn")
    assert result.read_from == "snapshot"
    with np.load(tmp_path / "gnn.npz") as npz:
        np.testing.assert_array_equal(npz["ids"], ids)
        np.testing.assert_array_equal(npz["vectors"], vectors)


def test_the_format_comes_from_the_suffix(trained, tmp_path):
    with bookrec.open(trained) as db:
        for name, fmt in [("a.parquet", "parquet"), ("a.npz", "npy"), ("a.jsonl", "jsonl")]:
            assert db.export_vectors(tmp_path / name, family="cf").format == fmt
        with pytest.raises(InputError, match=r"no format known for 'a\.txt'"):
            db.export_vectors(tmp_path / "a.txt", family="cf")
        with pytest.raises(InputError, match="unknown format 'csv'"):
            db.export_vectors(tmp_path / "a.parquet", family="cf", format="csv")
    assert not (tmp_path / "a.txt").exists()


def test_the_cli_writes_the_file_and_reports_it(trained, tmp_path):
    cli = Cli(trained)
    out = tmp_path / "cf.parquet"
    result = cli.ok("export", "vectors", "--family", "cf", str(out), "--json")
    report = json.loads(result.stdout)
    assert report["rows"] == pq.read_table(out).num_rows and report["format"] == "parquet"
    text = cli.ok("export", "vectors", "--family", "gnn", "--format", "jsonl", str(tmp_path / "g"))
    assert "gnn books vectors" in text.stdout and (tmp_path / "g").is_file()


def test_errors_are_one_line_with_their_exit_code_and_leave_no_file(db_url, tmp_path):
    cli = Cli(db_url)
    cli.ok("db", "init")
    target = tmp_path / "cf.parquet"
    nothing = cli("export", "vectors", "--family", "cf", str(target))
    assert nothing.exit_code == 3 and "no cf books vectors to export" in nothing.stderr
    cases = [
        (["--family", "gnn", "--side", "users"], "the gnn family has no users vectors"),
        (["--family", "bert"], "unknown family 'bert'"),
        (["--family", "cf", "--format", "csv"], "unknown format 'csv'"),
        (["--family", "cf", "--side", "shelves"], "unknown side 'shelves'"),
    ]
    for options, message in cases:
        result = cli("export", "vectors", *options, str(target))
        assert result.exit_code == 2 and message in result.stderr, result.stderr
    missing_dir = cli("export", "vectors", "--family", "cf", str(tmp_path / "no" / "x.parquet"))
    assert missing_dir.exit_code == 2 and "no directory" in missing_dir.stderr
    directory = cli("export", "vectors", "--family", "cf", str(tmp_path))
    assert directory.exit_code == 2 and "is a directory" in directory.stderr
    assert list(tmp_path.glob("*.parquet")) == [] and list(tmp_path.glob(".*")) == []
    with bookrec.open(db_url) as db, pytest.raises(NotReadyError):
        db.export_vectors(target, family="content")


def test_an_unwritable_directory_is_bad_input(trained, tmp_path):
    import os

    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who may write anywhere (root)")
        with bookrec.open(trained) as db, pytest.raises(InputError, match="not writable"):
            db.export_vectors(locked / "cf.parquet", family="cf")
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize("failure", [RuntimeError, KeyboardInterrupt])
def test_a_failed_write_leaves_no_file_and_keeps_the_old_one(tmp_path, failure):
    old = tmp_path / "vectors.parquet"
    old.write_bytes(b"the previous export")
    with pytest.raises(failure), atomic_file(old) as file:
        file.write(b"half a file")
        raise failure()
    assert old.read_bytes() == b"the previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vectors.parquet"]
    with atomic_file(old) as file:
        file.write(b"new")
    assert old.read_bytes() == b"new" and len(list(tmp_path.iterdir())) == 1
