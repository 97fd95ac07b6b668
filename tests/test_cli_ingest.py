"""bookrec ingest through the real CLI on both backends: good files, re-ingest, bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from bookrec.storage import open_repository


def _counts(url):
    repo = open_repository(url)
    try:
        return repo.counts()
    finally:
        repo.close()


def _write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


GENERIC_BOOKS = """external_id,title,authors,description,isbn,year,language,tags,publisher
b1,Dune,Frank Herbert,Desert planet,0441013597,1965,eng,sci-fi|classic,Chilton
b2,Emma,Jane Austen,,,1815,eng,romance,
b3,Ulysses,James Joyce,,,1922,eng,,
"""

EVENTS_CSV = """user_id,book_id,event,rating,timestamp
alice,b1,view,,2026-01-01T10:00:00Z
alice,b1,rate,5,2026-01-01T10:05:00Z
bob,b2,click,,1767225600
bob,b3,purchase,,
"""


@pytest.fixture
def loaded(cli, tmp_path):
    cli.ok("ingest", "books", str(_write(tmp_path / "books.csv", GENERIC_BOOKS)))
    return cli


def test_goodbooks_books_ingest_and_reingest(cli, books_csv):
    first = cli.ok("ingest", "books", str(books_csv), "--json")
    assert json.loads(first.stdout)["details"]["inserted"] == 10_000
    again = json.loads(cli.ok("ingest", "books", str(books_csv), "--json").stdout)
    assert again["details"] == {"inserted": 0, "updated": 0, "unchanged": 10_000}
    repo = open_repository(cli.url)
    hunger = repo.book_texts([repo.find_book("1")])[0]
    assert hunger.title == "The Hunger Games (The Hunger Games, #1)"
    assert (hunger.authors, hunger.year, hunger.language) == ("Suzanne Collins", 2008, "eng")
    repo.close()


def test_generic_books_update_changed_rows(loaded, tmp_path):
    changed = GENERIC_BOOKS.replace("Emma,Jane Austen", "Emma (Revised),Jane Austen")
    result = loaded.ok("ingest", "books", str(_write(tmp_path / "b2.csv", changed)), "--json")
    assert json.loads(result.stdout)["details"] == {"inserted": 0, "updated": 1, "unchanged": 2}
    repo = open_repository(loaded.url)
    book = repo.book_texts([repo.find_book("b1")])[0]
    assert book.tags == ["sci-fi", "classic"] and book.description == "Desert planet"
    repo.close()


def test_jsonl_books_and_interactions(cli, tmp_path):
    books = _write(
        tmp_path / "books.jsonl",
        '{"external_id": 7, "title": "Seven", "authors": ["A One", "B Two"], "tags": ["x"]}\n',
    )
    cli.ok("ingest", "books", str(books))
    events = _write(
        tmp_path / "events.jsonl",
        '{"user_id": "u", "book_id": 7, "event": "like", "timestamp": 1767225600}\n'
        '{"user": "u", "book": "7", "event": "rate", "rating": 3}\n',
    )
    out = json.loads(cli.ok("ingest", "interactions", str(events), "--json").stdout)
    assert out["details"]["inserted"] == 2 and out["details"]["new_users"] == 1


def test_interactions_ingest_and_duplicates(loaded, tmp_path):
    path = _write(tmp_path / "events.csv", EVENTS_CSV)
    out = json.loads(loaded.ok("ingest", "interactions", str(path), "--json").stdout)
    assert out["details"] == {"inserted": 4, "duplicates": 0, "new_users": 2}
    # Rows with explicit timestamps are the same events the second time; the row without a
    # timestamp is a new observation (its time is the time of the ingest).
    out = json.loads(loaded.ok("ingest", "interactions", str(path), "--json").stdout)
    assert out["details"] == {"inserted": 1, "duplicates": 3, "new_users": 0}
    counts = _counts(loaded.url)
    assert counts["interactions_by_event"]["rate"] == 1
    assert counts["first_interaction_at"] == 1767225600.0


def test_goodbooks_ratings_layout(cli, books_csv, tmp_path):
    cli.ok("ingest", "books", str(books_csv))
    ratings = _write(tmp_path / "ratings.csv", "user_id,book_id,rating\n1,258,5\n2,4081,4\n")
    cli.ok("ingest", "interactions", str(ratings))
    assert _counts(cli.url)["interactions_by_event"]["rate"] == 2


BAD_ROWS = [
    ("alice,,view,,", "events.csv:3: book_id: missing"),
    (",b1,view,,", "events.csv:3: user_id: missing"),
    ("alice,b1,read,,", "events.csv:3: event: unknown event 'read'"),
    ("alice,b1,rate,,", "events.csv:3: rating: missing (required for rate events)"),
    ("alice,b1,rate,9,", "events.csv:3: rating: 9 is out of range 1-5"),
    ("alice,b1,rate,good,", "events.csv:3: rating: not a number"),
    ("alice,b404,view,,", "events.csv:3: book_id: unknown book 'b404'"),
    ("alice,b1,view,,yesterday", "events.csv:3: timestamp: not ISO 8601 or epoch seconds"),
    ("alice,b1,view,,1767225600,extra", "events.csv:3: expected 5 fields, found 6"),
]


@pytest.mark.parametrize(("bad_row", "message"), BAD_ROWS)
def test_bad_row_writes_nothing_and_names_line_and_field(loaded, tmp_path, bad_row, message):
    text = "user_id,book_id,event,rating,timestamp\nzed,b2,view,,1767225600\n" + bad_row + "\n"
    result = loaded("ingest", "interactions", str(_write(tmp_path / "events.csv", text)))
    assert result.exit_code == 2
    assert message in result.stderr
    assert "1 invalid interaction row, nothing written" in result.stderr
    assert "Traceback" not in result.stderr
    counts = _counts(loaded.url)
    assert counts["interactions"] == 0 and counts["users"] == 0


def test_undecodable_bytes_and_total_count(loaded, tmp_path):
    rows = b"user_id,book_id,event,rating,timestamp\n"
    rows += b"ok,b1,view,,1767225600\n"
    rows += b"caf\xe9,b1,view,,1767225600\n"
    rows += b"".join(b"u%d,b404,view,,1767225600\n" % i for i in range(30))
    result = loaded("ingest", "interactions", str(_write(tmp_path / "events.csv", rows)))
    assert result.exit_code == 2
    assert "events.csv:3: user_id: undecodable bytes" in result.stderr
    assert "events.csv: 31 invalid interaction rows, nothing written" in result.stderr
    assert result.stderr.count("unknown book") == 9  # first errors only, then the total
    assert _counts(loaded.url)["interactions"] == 0


def test_wrong_header(loaded, tmp_path):
    path = _write(tmp_path / "events.csv", "who,what\nalice,b1\n")
    result = loaded("ingest", "interactions", str(path))
    assert result.exit_code == 2
    assert "events.csv:1: header: missing column user_id, book_id, event" in result.stderr


def test_bad_book_rows(cli, tmp_path):
    text = "external_id,title,year\nb1,Fine,1999\nb2,,2000\nb3,Odd,nineteen\n"
    result = cli("ingest", "books", str(_write(tmp_path / "books.csv", text)))
    assert result.exit_code == 2
    assert "books.csv:3: title: missing" in result.stderr
    assert "books.csv:4: year: not a year: 'nineteen'" in result.stderr
    assert _counts(cli.url)["books"] == 0


def test_skip_invalid_writes_valid_rows_and_rejects(loaded, tmp_path):
    text = EVENTS_CSV + "carol,b404,view,,\ncarol,b1,rate,0,\n"
    rejects = tmp_path / "rejects.csv"
    result = loaded(
        "ingest", "interactions", str(_write(tmp_path / "events.csv", text)),
        "--skip-invalid", "--rejects", str(rejects), "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["rejected"] == 2 and out["details"]["inserted"] == 4
    with rejects.open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["line"], r["field"]) for r in rows] == [("6", "book_id"), ("7", "rating")]
    assert rows[0]["row"] == "carol,b404,view,,"
    assert _counts(loaded.url)["users"] == 2  # carol had no valid row


def test_missing_file_and_rejects_without_skip(loaded, tmp_path):
    result = loaded("ingest", "interactions", str(tmp_path / "nope.csv"))
    assert result.exit_code == 2 and "no such file" in result.stderr
    path = _write(tmp_path / "events.csv", EVENTS_CSV)
    result = loaded("ingest", "interactions", str(path), "--rejects", "r.csv")
    assert result.exit_code == 2 and "--rejects goes with --skip-invalid" in result.stderr


def test_commands_without_schema_say_db_init(db_url, tmp_path):
    from tests.conftest import Cli

    result = Cli(db_url)("ingest", "books", str(_write(tmp_path / "b.csv", GENERIC_BOOKS)))
    assert result.exit_code == 3
    assert "no bookrec schema (run: bookrec db init)" in result.stderr
