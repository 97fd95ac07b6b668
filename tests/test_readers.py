"""The interaction reader's fast paths give exactly what the exact (csv module, per value)
paths give: the same rows, the same line numbers in reports."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from bookrec.readers.common import ErrorLog
from bookrec.readers.interactions import read_interactions
from bookrec.readers.timestamps import iso_column_seconds

BOOKS = {f"b{i}": i for i in range(1, 6)}
NOW = datetime(2026, 12, 1, tzinfo=UTC).timestamp()


def _fromisoformat(text: str) -> float:
    moment = datetime.fromisoformat(text)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


LAYOUTS = [
    "{date}T{time}",
    "{date} {time}Z",
    "{date}T{time}.{ms}Z",
    "{date}T{time}.{us}",
    "{date}T{time}{offset}",
    "{date} {time}.{us}{offset}",
]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_iso_columns_read_as_fromisoformat_reads_them(layout):
    rng = random.Random(layout)
    texts = []
    for _ in range(5_000):
        moment = datetime(1970, 1, 1) + timedelta(seconds=rng.randrange(0, 7 * 10**9))
        sign, hours, minutes = rng.choice("+-"), rng.randrange(24), rng.randrange(60)
        texts.append(
            layout.format(
                date=moment.strftime("%Y-%m-%d"), time=moment.strftime("%H:%M:%S"),
                ms=f"{rng.randrange(1000):03d}", us=f"{rng.randrange(10**6):06d}",
                offset=f"{sign}{hours:02d}:{minutes:02d}",
            )
        )  # fmt: skip
    texts.append(layout.format(date="2024-02-29", time="23:59:59", ms="999", us="000001",
                               offset="+00:00"))  # fmt: skip
    seconds = iso_column_seconds(texts)
    assert seconds is not None
    assert seconds.tolist() == [_fromisoformat(t) for t in texts]


@pytest.mark.parametrize(
    "texts",
    [
        ["2025-02-29T00:00:00"],  # no such day
        ["2025-04-31T00:00:00"],
        ["2025-01-01T24:00:00"],
        ["2025-01-01T00:60:00"],
        ["2025-13-01T00:00:00"],
        ["2025-01-01T00:00:00+24:00"],
        ["2025-01-01X00:00:00"],  # fromisoformat takes it: left to the exact path
        ["2025-01-01T00:00:00.1234567"],
        ["20250101T000000"],
        ["2025-01-01T00:00:00", "2025-01-01T00:00:00Z"],  # two layouts
        ["2025-01-01T00:00:00Z", "2025-01-01T00:00:0xZ"],
        ["2025-01-01T00:00:00Z", "1735689600.00000000"],
        ["9999-12-31T23:59:59.999999"],  # beyond what float64 holds to the microsecond
    ],
)
def test_other_layouts_and_invalid_times_are_left_to_the_exact_path(texts):
    assert iso_column_seconds(texts) is None


def _read(path: Path, batch_size: int) -> tuple[dict[str, list], list[str]]:
    errors = ErrorLog(path, keep_all=True)
    columns: dict[str, list] = {"users": [], "books": [], "events": [], "ratings": [], "times": []}
    for batch in read_interactions(path, BOOKS, errors, NOW, batch_size=batch_size):
        columns["users"] += batch.users
        columns["books"] += batch.book_ids.tolist()
        columns["events"] += batch.events.tolist()
        columns["ratings"] += [None if np.isnan(r) else r for r in batch.ratings.tolist()]
        columns["times"] += batch.timestamps.tolist()
    return columns, [e.describe(path) for e in errors.errors]


def _lines(rng: random.Random, n: int) -> list[str]:
    events = ["view", "click", "like", "purchase"]
    lines = []
    for i in range(n):
        time = f"2025-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}T10:00:{i % 60:02d}Z"
        if rng.random() < 0.3:
            lines.append(
                f"u{rng.randrange(40)},b{rng.randrange(1, 6)},rate,{rng.randrange(1, 6)},{time}"
            )
        else:
            lines.append(
                f"u{rng.randrange(40)},b{rng.randrange(1, 6)},{rng.choice(events)},,{time}"
            )
    return lines


HEADER = "user_id,book_id,event,rating,timestamp"


@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_split_lines_read_as_the_csv_module_reads_them(tmp_path, batch_size):
    """Without a quote the lines are split by str.split; one quoted field (the same value)
    in the first data line makes the csv module read the whole file."""
    lines = _lines(random.Random(batch_size), 300)
    lines[40] = "u1 , b2,view,,1767225600"  # spaces, epoch seconds
    lines[41] = ""  # a blank line is skipped
    lines[77] = "  u2,b1,like,,2025-03-01 10:00:00"
    lines[150] = "u3,b3,view,,"  # no timestamp: the time of the ingest
    split = tmp_path / "split.csv"
    split.write_text("\n".join([HEADER, *lines]))  # and no newline at the end
    first_user, rest = lines[0].split(",", 1)
    quoted = tmp_path / "quoted.csv"
    quoted.write_text("\r\n".join([HEADER, f'"{first_user}",{rest}', *lines[1:]]) + "\r\n")
    assert _read(split, batch_size) == _read(quoted, batch_size)
    columns, errors = _read(split, batch_size)
    assert errors == [] and len(columns["users"]) == 299
    assert columns["users"][40] == "u1" and columns["times"][40] == 1767225600.0
    assert columns["times"][149] == NOW


@pytest.mark.parametrize("batch_size", [1, 5, 1000])
def test_errors_name_the_right_lines_on_either_path(tmp_path, batch_size):
    lines = _lines(random.Random(7), 120)
    lines[9] = "u1,b404,view,,"  # line 11
    lines[30] = "u1,b1,view"  # line 32: too few fields
    lines[60] = 'u9,b1,click,,"yesterday\nat noon"'  # lines 62-63: a field may not span lines
    lines[99] = "u1,b1,rate,,2025-01-01T10:00:00Z"  # line 102
    path = tmp_path / "events.csv"
    path.write_text("\n".join([HEADER, *lines]) + "\n")
    columns, errors = _read(path, batch_size)
    assert [e.split(": ")[0] for e in errors] == [
        "events.csv:11", "events.csv:32", "events.csv:62", "events.csv:63", "events.csv:102"
    ]  # fmt: skip
    assert "unknown book 'b404'" in errors[0]
    assert errors[1] == "events.csv:32: rating: expected 5 fields, found 3"
    assert errors[2].startswith("events.csv:62: timestamp: unterminated quote")
    assert "expected 5 fields, found 1" in errors[3] and "rating: missing" in errors[4]
    assert len(columns["users"]) == 116  # 121 lines


def test_crlf_bare_cr_tabs_and_undecodable_bytes(tmp_path):
    crlf = tmp_path / "crlf.csv"
    crlf.write_bytes(b"user_id,book_id,event\r\nu1,b1,view\r\nu2,b2,like\r\n")
    assert _read(crlf, 1)[0]["users"] == ["u1", "u2"]
    bare = tmp_path / "bare.csv"
    bare.write_bytes(b"user_id,book_id,event\ru1,b1,view\ru2,b2,like\r")
    assert _read(bare, 1)[0]["users"] == ["u1", "u2"]
    tabs = tmp_path / "events.tsv"
    tabs.write_bytes(b"user_id\tbook_id\tevent\nu1\tb1\tview\n")
    assert _read(tabs, 64)[0]["events"] == [0]
    broken = tmp_path / "broken.csv"
    broken.write_bytes(b"user_id,book_id,event\nu1,b1,view\ncaf\xe9,b1,view\nu3,b1,view\n")
    columns, errors = _read(broken, 64)
    assert columns["users"] == ["u1", "u3"] and errors == [
        "broken.csv:3: user_id: undecodable bytes (the file must be UTF-8)"
    ]


def test_a_line_longer_than_a_read(tmp_path):
    long_user = "u" * 5_000
    path = tmp_path / "long.csv"
    path.write_text(f"user_id,book_id,event\nu1,b1,view\n{long_user},b2,view\nu3,b3,view\n")
    assert _read(path, 1)[0]["users"] == ["u1", long_user, "u3"]


def test_gzipped_files_read_as_plain_ones(tmp_path):
    import gzip

    text = "\n".join([HEADER, *_lines(random.Random(3), 500)]) + "\n"
    plain = tmp_path / "events.csv"
    plain.write_text(text)
    packed = tmp_path / "events.csv.gz"
    packed.write_bytes(gzip.compress(text.encode()))
    assert _read(packed, 7) == _read(plain, 7)
    assert len(_read(packed, 7)[0]["users"]) == 500


def _book_read(path: Path, **limits) -> tuple[list[str], list[str]]:
    from bookrec.readers.books import read_books

    errors = ErrorLog(path, keep_all=True, max_errors=0)
    ids = [b.external_id for batch in read_books(path, errors, **limits) for b in batch]
    return ids, [e.describe(path) for e in errors.errors]


def test_every_line_after_a_stray_quote_is_read_again(tmp_path):
    """A quote that opens a field and closes many lines later (the next stray quote) would
    make one record of those lines: it is its first line's error, and the lines after it are
    read again, each as itself."""
    rows = [f"b{i},Book {i},plain" for i in range(1, 11)]
    rows[2] = 'b3,Book 3,"stray'
    rows[6] = 'b7,Book 7,another" stray'  # a quote inside an unquoted field is text
    rows[8] = 'b9,"Book ""9""",fine'
    path = tmp_path / "books.csv"
    path.write_bytes(("external_id,title,description\r\n" + "\r\n".join(rows) + "\r\n").encode())
    ids, errors = _book_read(path)
    assert ids == ["b1", "b2", "b4", "b5", "b6", "b7", "b8", "b9", "b10"]
    assert len(errors) == 1 and errors[0].startswith(
        "books.csv:4: description: unbalanced quote: the quoted field opened here runs over 5"
    )


def test_quoted_fields_with_line_ends_in_books_and_lone_carriage_returns(tmp_path):
    path = tmp_path / "books.csv"
    path.write_bytes(
        b'external_id,title,description\rb1,"One","a\r\nb"\rb2,Two,"x\ry"\rb3,"Three",\r'
    )
    ids, errors = _book_read(path)
    assert ids == ["b1", "b2", "b3"] and errors == []


def test_an_over_long_line_is_its_own_error(tmp_path):
    long_line = "u" + "x" * (1 << 20) + ",b1,view\n"
    path = tmp_path / "events.csv"
    path.write_text(f"user_id,book_id,event\nu1,b1,view\n{long_line}u3,b3,view\n")
    columns, errors = _read(path, 64)
    assert columns["users"] == ["u1", "u3"]
    assert errors == ["events.csv:3: line longer than 1 MiB"]
    books = tmp_path / "books.csv"
    books.write_text('id,title,description\nb1,A,"' + "y" * 300 + '"\nb2,B,\n')
    ids, errors = _book_read(books, max_record_bytes=100)
    assert ids == ["b2"] and errors[0].startswith("books.csv:2: line longer than 100 bytes")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('u1,"b1,view,,', "events.csv:2: book_id: unterminated quote"),
        ('u1,b1,"view"x,,', "events.csv:2: event: text after a closing quote"),
        ('"u1",b1,view,,"2025', "events.csv:2: timestamp: unterminated quote"),
        ("u1,b1,view,,\x00", "events.csv:2: timestamp: contains a NUL character"),
    ],
)
def test_quoting_errors_name_their_field(tmp_path, line, expected):
    path = tmp_path / "events.csv"
    path.write_text(f"{HEADER}\n{line}\nu2,b2,view,,\n")
    columns, errors = _read(path, 64)
    assert columns["users"] == ["u2"]
    assert len(errors) == 1 and errors[0].startswith(expected)


@pytest.mark.parametrize("times", ["iso", "epoch", "none", "mixed"])
def test_jsonl_read_by_pyarrow_as_row_by_row(tmp_path, monkeypatch, times):
    """A clean block of JSON lines goes through pyarrow.json; a line starting with a space
    sends its block row by row: both give the same rows."""
    import json

    from bookrec.readers import interactions

    rng = random.Random(times)
    user = rng.choice([str, lambda i: f"u{i}"])
    rating = rng.choice([[4, 5], [4.0, 1.5], ["4", "2.5"]])
    lines = []
    for i in range(500):
        row = {"user_id": user(i % 30), "book": f"b{rng.randrange(1, 6)}"}
        row["event"] = rng.choice(["view", "rate", "like"])
        if row["event"] == "rate":
            row["rating"] = rng.choice(rating)
        stamp = 1735689600 + rng.randrange(10**7)
        kind = times if times != "mixed" else rng.choice(["iso", "epoch"])
        if kind == "iso":
            row["timestamp"] = datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        elif kind == "epoch":
            row["timestamp"] = stamp
        lines.append(json.dumps(row))
    fast = tmp_path / "fast.jsonl"
    fast.write_text("\n".join(lines) + "\n")
    slow = tmp_path / "slow.jsonl"
    slow.write_text("\n".join(" " + line for line in lines) + "\n")
    fast_batches = []

    def spy(*args):
        batch = fast_jsonl(*args)
        fast_batches.append(batch is not None)
        return batch

    fast_jsonl = interactions._fast_jsonl
    monkeypatch.setattr(interactions, "_fast_jsonl", spy)
    assert _read(fast, 64) == _read(slow, 64)
    # Text and numbers in one column are more than pyarrow.json takes: row by row.
    assert fast_batches == [times != "mixed", False]
    columns, errors = _read(fast, 64)
    assert errors == [] and len(columns["users"]) == 500
