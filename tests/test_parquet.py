"""Parquet in: `ingest interactions/books FILE.parquet` on both backends stores what the same
rows as CSV store, reports bad rows as `file.parquet:row N`, and writes nothing on error."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bookrec.storage import open_repository
from tests.conftest import Cli

BOOKS = "external_id,title\n" + "".join(f"{i},Book {i}\n" for i in range(1, 8))
UTC = dt.UTC


def _stored(url: str) -> dict:
    repo = open_repository(url)
    try:
        arrays = repo.load_interactions()
        counts = repo.counts()
    finally:
        repo.close()
    order = np.lexsort((arrays.timestamps, arrays.events, arrays.book_ids, arrays.user_ids))
    return {
        "users": counts["users"],
        "rows": [
            (int(u), int(b), int(e), None if np.isnan(r) else float(r), int(t))
            for u, b, e, r, t in zip(
                arrays.user_ids[order], arrays.book_ids[order], arrays.events[order],
                arrays.ratings[order], arrays.timestamps[order], strict=True,
            )
        ],
    }  # fmt: skip


@pytest.fixture
def two(db_url, tmp_path):
    """Two fresh databases of one backend: one for the Parquet file, one for its CSV twin."""
    if db_url.startswith("sqlite"):
        other = f"sqlite:///{tmp_path / 'twin.db'}"
    else:
        import psycopg

        other = db_url.rsplit("/", 1)[0] + "/" + db_url.rsplit("/", 1)[1] + "_twin"
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{other.rsplit("/", 1)[1]}"')
            conn.execute(f'CREATE DATABASE "{other.rsplit("/", 1)[1]}"')
    clis = [Cli(db_url), Cli(other)]
    books = tmp_path / "books.csv"
    books.write_text(BOOKS)
    for cli in clis:
        cli.ok("db", "init")
        cli.ok("ingest", "books", str(books), "--skip-embeddings")
    yield clis
    if not db_url.startswith("sqlite"):
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{other.rsplit("/", 1)[1]}" WITH (FORCE)')


MOMENTS = [dt.datetime(2025, 1, 1, 10, 0, 0) + dt.timedelta(hours=7 * i) for i in range(9)]
EVENTS = ["view", "rate", "like", "rate", "purchase", "click", "rate", "view", "like"]
RATINGS = [None, 4.0, None, 5.0, None, None, 1.0, None, None]


def _typed_table(unit: str, tz: str | None) -> pa.Table:
    users = pa.array([f"u{i % 4}" for i in range(9)]).dictionary_encode()
    stamps = [m.replace(tzinfo=UTC) for m in MOMENTS]
    return pa.table({
        "user_id": users,
        "book_id": pa.array([i % 7 + 1 for i in range(9)], pa.int32()),
        "event": pa.array(EVENTS).dictionary_encode(),
        "rating": pa.array(RATINGS, pa.float32()),
        "timestamp": pa.array(stamps, pa.timestamp(unit, tz=tz)),
    })  # fmt: skip


def _csv_twin(path: Path) -> Path:
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["user_id", "book_id", "event", "rating", "timestamp"])
        for i in range(9):
            rating = "" if RATINGS[i] is None else RATINGS[i]
            stamp = MOMENTS[i].isoformat() + "Z"
            writer.writerow([f"u{i % 4}", i % 7 + 1, EVENTS[i], rating, stamp])
    return path


@pytest.mark.parametrize(
    ("unit", "tz"), [("s", None), ("ms", "UTC"), ("us", "+02:00"), ("ns", "America/New_York")]
)
def test_typed_columns_store_what_csv_stores(two, tmp_path, unit, tz):
    path = tmp_path / "events.parquet"
    pq.write_table(_typed_table(unit, tz), path, row_group_size=4)
    parquet_cli, csv_cli = two
    out = json.loads(parquet_cli.ok("ingest", "interactions", str(path), "--json").stdout)
    assert out["details"]["inserted"] == 9 and out["rejected"] == 0
    csv_cli.ok("ingest", "interactions", str(_csv_twin(tmp_path / "events.csv")))
    assert _stored(parquet_cli.url) == _stored(csv_cli.url)


def test_other_column_types_and_aliases(two, tmp_path):
    """Integer user ids, string book ids, epoch-second and ISO-text times, dates, the
    `user`/`book` aliases, large strings and nulls (a null time is the time of the ingest)."""
    table = pa.table({
        "user": pa.array([7, 8, 9, 7], pa.int64()),
        "book": pa.array(["1", "2", "3", None], pa.large_string()),
        "event": ["view", "rate", "rate", "like"],
        "rating": pa.array([None, 3, 5, None], pa.int8()),
        "timestamp": pa.array([1767225600, None, 1767225700, 1], pa.int64()),
    })  # fmt: skip
    path = tmp_path / "alias.parquet"
    pq.write_table(table, path)
    cli = two[0]
    result = cli("ingest", "interactions", str(path), "--skip-invalid", "--json")
    assert result.exit_code == 0, result.stderr
    assert "alias.parquet:row 4: book: missing" in result.stderr
    rows = _stored(cli.url)["rows"]
    assert len(rows) == 3 and rows[0][4] == 1767225600 and rows[2][4] == 1767225700
    assert rows[1][3] == 3.0 and abs(rows[1][4] - dt.datetime.now(UTC).timestamp()) < 600

    iso = pa.table({
        "user_id": ["a", "b"], "book_id": ["4", "5"], "event": ["click", "click"],
        "timestamp": pa.array(["2026-01-01T10:00:00Z", "2026-01-01 11:00:00"]),
    })  # fmt: skip
    pq.write_table(iso, tmp_path / "iso.parquet")
    cli.ok("ingest", "interactions", str(tmp_path / "iso.parquet"))
    dates = pa.table({"user_id": ["c"], "book_id": ["6"], "event": ["view"],
                      "timestamp": pa.array([dt.date(2026, 1, 2)], pa.date32())})  # fmt: skip
    pq.write_table(dates, tmp_path / "dates.parquet")
    cli.ok("ingest", "interactions", str(tmp_path / "dates.parquet"))
    stamps = sorted(r[4] for r in _stored(cli.url)["rows"])
    assert {1767225600 + 36000, 1767225600 + 39600, 1767225600 + 86400} <= set(stamps)


def test_bad_rows_are_named_by_row_number_and_nothing_is_written(two, tmp_path):
    table = _typed_table("ms", "UTC").to_pydict()
    table["book_id"][6] = 404  # row 7, in the second row group
    table["rating"][2] = 3.0  # row 3: a like event with a rating
    table["event"][8] = "read"  # row 9
    path = tmp_path / "events.parquet"
    pq.write_table(pa.table(table), path, row_group_size=4)
    cli = two[0]
    result = cli("ingest", "interactions", str(path))
    assert result.exit_code == 2
    assert "events.parquet:row 3: rating: 3 on a like event" in result.stderr
    assert "events.parquet:row 7: book_id: unknown book '404'" in result.stderr
    assert "events.parquet:row 9: event: unknown event 'read'" in result.stderr
    assert "3 invalid interaction rows, nothing written" in result.stderr
    assert _stored(cli.url) == {"users": 0, "rows": []}
    rejects = tmp_path / "rejects.csv"
    result = cli("ingest", "interactions", str(path), "--skip-invalid", "--rejects", str(rejects))
    assert result.exit_code == 0
    with rejects.open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["line"], r["field"]) for r in rows] == [
        ("3", "rating"), ("7", "book_id"), ("9", "event")
    ]  # fmt: skip
    assert json.loads(rows[1]["row"])["book_id"] == 404
    assert len(_stored(cli.url)["rows"]) == 6


def test_damaged_and_unsupported_files(two, tmp_path):
    cli = two[0]
    path = tmp_path / "events.parquet"
    pq.write_table(_typed_table("ms", "UTC"), path)
    data = path.read_bytes()
    (tmp_path / "cut.parquet").write_bytes(data[: len(data) // 2])
    result = cli("ingest", "interactions", str(tmp_path / "cut.parquet"))
    assert result.exit_code == 2 and "cut.parquet: not a readable Parquet file" in result.stderr
    (tmp_path / "text.parquet").write_text("user_id,book_id\n")
    result = cli("ingest", "interactions", str(tmp_path / "text.parquet"))
    assert result.exit_code == 2 and "text.parquet: not a readable Parquet file" in result.stderr
    wrong = pa.table({"who": ["a"], "what": ["1"]})
    pq.write_table(wrong, tmp_path / "wrong.parquet")
    result = cli("ingest", "interactions", str(tmp_path / "wrong.parquet"))
    assert result.exit_code == 2 and "wrong.parquet:1: header: missing column" in result.stderr
    nested = pa.table({"user_id": [{"a": 1}], "book_id": ["1"], "event": ["view"]})
    pq.write_table(nested, tmp_path / "nested.parquet")
    result = cli("ingest", "interactions", str(tmp_path / "nested.parquet"))
    assert result.exit_code == 2
    assert 'nested.parquet:row 1: user_id: expected text or a number, found {"a":1}' in (
        result.stderr
    )
    assert _stored(cli.url)["rows"] == []


def test_books_from_parquet(two, tmp_path):
    table = pa.table({
        "id": pa.array([100, 101, 102], pa.int64()),
        "title": ["Dune", None, "Emma"],
        "year": pa.array([1965, None, 1815], pa.int16()),
        "tags": [["sci-fi", "classic"], [], None],
        "published": pa.array([dt.date(1965, 8, 1), None, None]),
        "price": pa.array([9.5, None, 3.25]),
    })  # fmt: skip
    path = tmp_path / "books.parquet"
    pq.write_table(table, path)
    cli = two[0]
    result = cli("ingest", "books", str(path), "--skip-embeddings")
    assert result.exit_code == 2 and "books.parquet:row 2: title: missing" in result.stderr
    result = cli("ingest", "books", str(path), "--skip-embeddings", "--skip-invalid", "--json")
    assert json.loads(result.stdout)["details"]["inserted"] == 2
    repo = open_repository(cli.url)
    try:
        (dune,) = repo.book_texts([repo.find_book("100")])
    finally:
        repo.close()
    assert (dune.title, dune.year, dune.tags) == ("Dune", 1965, ["sci-fi", "classic"])
