"""Hostile input files through the real CLI on both backends: every case ends with the
documented exit code and a line naming file, line and field, and nothing valid is dropped
without a report."""

from __future__ import annotations

import csv
import gzip
import json
import zlib
from pathlib import Path

import pytest

from bookrec.storage import open_repository

HEADER = "user_id,book_id,event,rating,timestamp"
BOOKS = "external_id,title\n" + "".join(f"b{i},Book {i}\n" for i in range(1, 6))


def _counts(url: str) -> dict:
    repo = open_repository(url)
    try:
        return repo.counts()
    finally:
        repo.close()


def _write(path: Path, data: str | bytes) -> Path:
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


@pytest.fixture
def loaded(cli, tmp_path):
    cli.ok("ingest", "books", str(_write(tmp_path / "books.csv", BOOKS)), "--skip-embeddings")
    return cli


def _events(n: int) -> list[str]:
    return [f"u{i},b{i % 5 + 1},view,,2026-01-01T10:00:00Z" for i in range(n)]


def test_a_stray_quote_costs_its_line_only(loaded, tmp_path):
    lines = _events(1000)
    lines[2] = 'u7,"b2,view,,2026-01-01T10:00:00Z'  # line 4 of the file
    path = _write(tmp_path / "events.csv", "\n".join([HEADER, *lines]) + "\n")
    result = loaded("ingest", "interactions", str(path))
    assert result.exit_code == 2
    assert "events.csv:4: book_id: unterminated quote" in result.stderr
    assert "1 invalid interaction row, nothing written" in result.stderr
    assert _counts(loaded.url)["interactions"] == 0

    rejects = tmp_path / "rejects.csv"
    result = loaded(
        "ingest", "interactions", str(path), "--skip-invalid", "--rejects", str(rejects), "--json"
    )
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["rows_read"] == 1000 and summary["rejected"] == 1
    assert summary["details"]["inserted"] == 999
    assert _counts(loaded.url)["interactions"] == 999
    with rejects.open() as f:
        (reject,) = list(csv.DictReader(f))
    assert (reject["line"], reject["field"]) == ("4", "book_id")
    assert reject["row"] == lines[2]


def test_book_descriptions_may_span_lines_but_a_stray_quote_costs_one_row(loaded, tmp_path):
    rows = [f'b{i},Book {i},"A description\nover two lines, with ""quotes"""' for i in range(6, 16)]
    rows[3] = 'b9,Book 9,"an unterminated description'
    text = "external_id,title,description\n" + "\n".join(rows) + "\n"
    path = _write(tmp_path / "more.csv", text)
    result = loaded("ingest", "books", str(path), "--skip-embeddings", "--skip-invalid", "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["rejected"] == 1 and summary["details"]["inserted"] == 9
    assert "more.csv:8: description: unbalanced quote: the quoted field opened here runs" in (
        result.stderr
    )
    repo = open_repository(loaded.url)
    try:
        (book,) = repo.book_texts([repo.find_book("b15")])
    finally:
        repo.close()
    assert book.description == 'A description\nover two lines, with "quotes"'


def test_a_quote_open_past_max_record_size_is_its_lines_error(loaded, tmp_path):
    filler = "".join(f"b{i},Book {i},plain\n" for i in range(100, 200))
    text = "external_id,title,description\n" + 'b99,Book 99,"open\n' + filler
    path = _write(tmp_path / "more.csv", text)
    result = loaded("ingest", "books", str(path), "--skip-embeddings", "--max-record-size", "500")
    assert result.exit_code == 2
    assert "more.csv:2: description: unterminated quote: no closing quote within 500 bytes" in (
        result.stderr
    )
    assert "1 invalid book row" in result.stderr


def _gzipped_events(n: int) -> bytes:
    return gzip.compress(("\n".join([HEADER, *_events(n)]) + "\n").encode())


def test_truncated_and_damaged_gzip_name_the_file_and_line(loaded, tmp_path):
    data = _gzipped_events(200_000)
    truncated = _write(tmp_path / "cut.csv.gz", data[: len(data) // 2])
    result = loaded("ingest", "interactions", str(truncated))
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert "cut.csv.gz: truncated gzip file (the compressed data ends early), after line" in (
        result.stderr
    )
    damaged = _write(tmp_path / "bad.csv.gz", data[:10] + b"\xff" * 64 + data[74:])
    result = loaded("ingest", "interactions", str(damaged))
    assert result.exit_code == 2 and "bad.csv.gz: damaged gzip file" in result.stderr
    plain = _write(tmp_path / "plain.csv.gz", "\n".join([HEADER, *_events(3)]))
    result = loaded("ingest", "interactions", str(plain))
    assert result.exit_code == 2 and "plain.csv.gz: named .gz but not gzip" in result.stderr
    assert _counts(loaded.url)["interactions"] == 0
    zlib_only = _write(tmp_path / "z.csv", zlib.compress(b"x" * 100))
    result = loaded("ingest", "interactions", str(zlib_only))
    assert result.exit_code == 2 and "z.csv:1: the header is not valid UTF-8" in result.stderr


def test_nul_bytes_are_row_errors_on_every_backend(loaded, tmp_path):
    rows = [HEADER, "u1857,b1,view,,", "u1857\x00\x00,b1,view,,", "u2,b\x002,view,,"]
    path = _write(tmp_path / "nul.csv", "\n".join(rows) + "\n")
    result = loaded("ingest", "interactions", str(path), "--skip-invalid")
    assert result.exit_code == 0, result.stderr
    assert "nul.csv:3: user_id: contains a NUL character" in result.stderr
    assert "nul.csv:4: book_id: contains a NUL character" in result.stderr
    counts = _counts(loaded.url)
    assert counts["users"] == 1 and counts["interactions"] == 1
    jsonl = _write(tmp_path / "nul.jsonl", '{"user_id": "a\\u0000", "book_id": "b1"}\n')
    result = loaded("ingest", "interactions", str(jsonl))
    assert result.exit_code == 2 and "nul.jsonl:1: user_id: contains a NUL" in result.stderr
    books = _write(tmp_path / "b.jsonl", '{"id": "x", "title": "T", "meta": {"k": "\\u0000"}}\n')
    result = loaded("ingest", "books", str(books), "--skip-embeddings")
    assert result.exit_code == 2 and "b.jsonl:1: meta: contains a NUL character" in result.stderr


def test_skip_invalid_without_rejects_prints_the_first_reasons(loaded, tmp_path):
    rows = [HEADER, *(f"u{i},b404,view,," for i in range(15)), "u1,b1,view,,"]
    path = _write(tmp_path / "events.csv", "\n".join(rows) + "\n")
    result = loaded("ingest", "interactions", str(path), "--skip-invalid")
    assert result.exit_code == 0
    assert result.stderr.count("book_id: unknown book 'b404'") == 10
    assert "events.csv:2: book_id" in result.stderr and "events.csv:11: book_id" in result.stderr
    assert "15 invalid rows skipped (the first 10 above)" in result.stderr


@pytest.mark.parametrize("rows", [1, 3000])  # the exact path and the column-wise one
def test_a_rating_on_another_event_is_a_row_error(loaded, tmp_path, rows):
    lines = [HEADER, *(f"u{i},b1,rate,4,1767225600" for i in range(rows)), "u1,b1,like,5,"]
    path = _write(tmp_path / "events.csv", "\n".join(lines) + "\n")
    result = loaded("ingest", "interactions", str(path))
    assert result.exit_code == 2
    assert f"events.csv:{rows + 2}: rating: 5 on a like event" in result.stderr


def test_max_errors_stops_reading_and_counts_have_separators(loaded, tmp_path):
    garbage = _write(tmp_path / "garbage.csv", HEADER + "\n" + "x,y\n" * 5000)
    result = loaded("ingest", "interactions", str(garbage))
    assert result.exit_code == 2
    assert "garbage.csv: stopped reading at line 1,001 after 1,000 invalid rows" in result.stderr
    result = loaded("ingest", "interactions", str(garbage), "--max-errors", "3")
    assert "stopped reading at line 4 after 3 invalid rows" in result.stderr
    result = loaded("ingest", "interactions", str(garbage), "--max-errors", "0", "--skip-invalid")
    assert result.exit_code == 0 and "5,000 invalid rows skipped" in result.stderr
    result = loaded("ingest", "books", str(garbage), "--max-errors", "2", "--skip-embeddings")
    assert result.exit_code == 2 and "header: needs an external_id" in result.stderr
    assert _counts(loaded.url)["interactions"] == 0
    good = _write(tmp_path / "good.csv", "\n".join([HEADER, *_events(1234)]) + "\n")
    result = loaded.ok("ingest", "interactions", str(good))
    assert "1,234 interactions added, 0 already there, 1,234 new users" in result.stdout


def test_a_directory_or_an_unreadable_file(loaded, tmp_path):
    result = loaded("ingest", "interactions", str(tmp_path))
    assert result.exit_code == 2 and f"{tmp_path}: is a directory, not a file" in result.stderr
    result = loaded("ingest", "books", "/proc/self/mem", "--skip-embeddings")
    assert result.exit_code == 2 and "/proc/self/mem: cannot read:" in result.stderr
    result = loaded("ingest", "interactions", str(tmp_path / "missing.csv"))
    assert result.exit_code == 2 and "missing.csv: no such file" in result.stderr


def test_utf16_files_are_named_as_such(loaded, tmp_path):
    path = _write(tmp_path / "events.csv", ("\n".join([HEADER, *_events(2)])).encode("utf-16"))
    result = loaded("ingest", "interactions", str(path))
    assert result.exit_code == 2
    assert "events.csv: the file is UTF-16 text; save it as UTF-8" in result.stderr
