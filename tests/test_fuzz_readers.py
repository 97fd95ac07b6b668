"""Fuzzing the readers with Hypothesis: files built of rows whose validity is known, then
damaged (stray quotes, NULs, random bytes, other encodings, BOMs, CR/LF mixes, huge fields,
wrong headers, JSON junk, gzip truncation).

What must hold for every file:
- reading ends with the rows, or with one InputError naming the file; never another exception;
- every valid row is loaded, exactly once and with its values, or its line is reported;
- in interaction files (whose records are single lines) a damaged line costs only itself;
- every reported error names the file and a line of it, and a field where the problem is one;
- through the CLI, SQLite and PostgreSQL give the same exit code, report and stored rows.

CI runs the default profile; by hand: HYPOTHESIS_PROFILE=long pytest tests/test_fuzz_readers.py
--hypothesis-show-statistics
"""

from __future__ import annotations

import gzip
import json
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bookrec.domain import EVENT_CODES, EVENTS
from bookrec.errors import InputError
from bookrec.readers.books import read_books
from bookrec.readers.common import ErrorLog
from bookrec.readers.interactions import read_interactions

settings.register_profile(
    "ci", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "long", max_examples=5000, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

BOOK_IDS = {f"b{i}": i for i in range(1, 8)}
NOW = datetime(2026, 12, 1, tzinfo=UTC).timestamp()
HEADER = ["user_id", "book_id", "event", "rating", "timestamp"]
ERROR_LINE = re.compile(r"^(?P<name>[^:]+):(?P<line>\d+): (?:(?P<field>[^:]+): )?(?P<reason>.+)$")


@dataclass
class FuzzFile:
    """A file's bytes and what a correct reader must make of it."""

    name: str
    data: bytes
    valid: dict[int, tuple] = field(default_factory=dict)  # line -> expected row
    damaged: set[int] = field(default_factory=set)  # lines that may be reported
    n_lines: int = 0
    file_error: str | None = None  # a problem of the whole file: the InputError expected
    field_errors: dict[int, str] = field(default_factory=dict)  # line -> field to be named


# --- interaction rows -------------------------------------------------------------------

timestamps = st.one_of(
    st.just(("", NOW)),
    st.integers(0, 1_800_000_000).map(lambda s: (str(s), float(s))),
    st.integers(0, 1_800_000_000).map(
        lambda s: (datetime.fromtimestamp(s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), float(s))
    ),
)


@st.composite
def valid_interaction(draw, user: str):
    book = draw(st.sampled_from(sorted(BOOK_IDS)))
    event = draw(st.sampled_from(EVENTS))
    rating = str(draw(st.integers(1, 5))) if event == "rate" else ""
    stamp_text, seconds = draw(timestamps)
    fields = [user, book, event, rating, stamp_text]
    quoted = draw(st.lists(st.booleans(), min_size=5, max_size=5))
    text = ",".join(f'"{f}"' if q else f for f, q in zip(fields, quoted, strict=True))
    expected = (user, BOOK_IDS[book], EVENT_CODES[event], float(rating) if rating else None,
                seconds)  # fmt: skip
    return text, expected


def _insert(draw, text: str, piece: str) -> str:
    at = draw(st.integers(0, len(text)))
    return text[:at] + piece + text[at:]


DAMAGES = [
    "stray quote", "nul", "junk bytes", "latin-1", "too few", "too many", "unknown book",
    "bad event", "bad rating", "rating on other event", "bad time", "huge field",
]  # fmt: skip


@st.composite
def damaged_interaction(draw, user: str) -> tuple[bytes, str, str | None]:
    """A line (without its line end) that no reader may load as it is: bytes, the kind of
    damage, and the field its error must name (None: any or none)."""
    text, _ = draw(valid_interaction(user))
    kind = draw(st.sampled_from(DAMAGES))
    fields = [f.strip('"') for f in text.split(",")]
    name = None
    if kind == "stray quote":
        index = draw(st.integers(0, 4))
        fields[index] = '"' + fields[index]
        line, name = ",".join(fields), HEADER[index]
    elif kind == "nul":
        index = draw(st.integers(0, 1))
        fields[index] = _insert(draw, fields[index], "\x00")
        line, name = ",".join(fields), HEADER[index]
    elif kind == "junk bytes":
        junk = draw(st.binary(min_size=1, max_size=60).filter(lambda b: not set(b) & {10, 13}))
        return junk + b"\xff", kind, None  # \xff: never UTF-8, so never a valid row
    elif kind == "latin-1":
        fields[0] = fields[0] + "é"
        return ",".join(fields).encode("latin-1"), kind, "user_id"
    elif kind == "too few":
        line = ",".join(fields[: draw(st.integers(1, 4))])
    elif kind == "too many":
        line = ",".join([*fields, "extra"])
    elif kind == "unknown book":
        fields[1], name = "b404", "book_id"
        line = ",".join(fields)
    elif kind == "bad event":
        fields[2], fields[3], name = (
            draw(st.sampled_from(["read", "", "VIEW", "rat e"])),
            "",
            "event",
        )
        line = ",".join(fields)
    elif kind == "bad rating":
        fields[2] = "rate"
        fields[3] = draw(st.sampled_from(["0", "6", "x", "nan", "inf", "", "4.5.1"]))
        line, name = ",".join(fields), "rating"
    elif kind == "rating on other event":
        fields[2], fields[3], name = draw(st.sampled_from(["view", "like"])), "3", "rating"
        line = ",".join(fields)
    elif kind == "bad time":
        fields[4] = draw(st.sampled_from(["yesterday", "-5", "2025-13-01", "1e30", "nan"]))
        line, name = ",".join(fields), "timestamp"
    else:  # a field longer than a record may be
        fields[0] = "u" + "x" * (1 << 20)
        line = ",".join(fields)
    return line.encode(), kind, name


@st.composite
def interaction_csv(draw) -> FuzzFile:
    n_rows = draw(st.integers(0, 40))
    newline = draw(st.sampled_from(["\n", "\r\n", "\r", "mixed"]))
    out = FuzzFile("events.csv", b"")
    lines: list[bytes] = []
    header = ",".join(HEADER)
    if draw(st.booleans()):
        header = ",".join(f'"{h}"' for h in HEADER)
    lines.append(header.encode())
    for i in range(n_rows):
        line_no = len(lines) + 1
        user = f"v{i}"
        roll = draw(st.integers(0, 9))
        if roll < 6:
            text, expected = draw(valid_interaction(user))
            lines.append(text.encode())
            out.valid[line_no] = expected
        elif roll < 9:
            data, _, name = draw(damaged_interaction(user))
            lines.append(data)
            out.damaged.add(line_no)
            if name:
                out.field_errors[line_no] = name
        else:
            lines.append(b"")  # a blank line: nothing to load, nothing to report
    out.data = _join(draw, lines, newline)
    out.n_lines = len(lines)
    if draw(st.integers(0, 9)) == 0:
        out.data = b"\xef\xbb\xbf" + out.data
    return out


def _join(draw, lines: list[bytes], newline: str) -> bytes:
    parts = []
    previous = ""
    for line in lines:
        end = newline if newline != "mixed" else draw(st.sampled_from(["\n", "\r\n", "\r"]))
        if previous == "\r" and not line:
            end = "\r"  # a CR then an empty line's LF would be one CRLF
        if previous == "\r" and line.startswith(b"\n"):
            end = "\r"
        parts.append(line + end.encode())
        previous = end
    data = b"".join(parts)
    if draw(st.booleans()):
        data = data.removesuffix(parts[-1][-len(previous) :] if parts else b"")
    return data


# --- checks --------------------------------------------------------------------------------


def _read_interactions(path: Path) -> tuple[list[tuple], ErrorLog]:
    errors = ErrorLog(path, keep_all=True, max_errors=0)
    rows = []
    for batch in read_interactions(path, BOOK_IDS, errors, NOW, batch_size=7):
        for i, user in enumerate(batch.users):
            rating = batch.ratings[i]
            rows.append((user, int(batch.book_ids[i]), int(batch.events[i]),
                         None if np.isnan(rating) else float(rating),
                         float(batch.timestamps[i])))  # fmt: skip
    return rows, errors


def _check_outcome(fuzz: FuzzFile, rows: list[tuple], errors: ErrorLog, local: bool) -> None:
    reported: dict[int, str] = {}
    for error in errors.errors:
        text = error.describe(Path(fuzz.name))
        match = ERROR_LINE.match(text.replace("\n", " "))
        assert match, text
        assert match["name"] == fuzz.name
        assert 1 <= error.line <= fuzz.n_lines, text
        reported[error.line] = error.field
    loaded = {}
    for row in rows:
        assert row[0] not in loaded, f"{row[0]} loaded twice"
        loaded[row[0]] = row
    for line, expected in fuzz.valid.items():
        if line in reported:
            continue
        assert loaded.get(expected[0]) == expected, f"line {line} dropped or changed"
    if local:
        assert set(reported) <= fuzz.damaged, (sorted(reported), sorted(fuzz.damaged))
        assert fuzz.damaged <= set(reported)
    for line, name in fuzz.field_errors.items():
        if line in reported:
            assert reported[line] == name, (line, reported[line], name)


@given(fuzz=interaction_csv())
def test_interaction_csv(tmp_path_factory, fuzz):
    path = tmp_path_factory.mktemp("fuzz") / fuzz.name
    path.write_bytes(fuzz.data)
    rows, errors = _read_interactions(path)
    _check_outcome(fuzz, rows, errors, local=True)


@given(fuzz=interaction_csv(), how=st.sampled_from(["gzip", "truncated", "utf-16", "header"]))
def test_whole_file_problems(tmp_path_factory, fuzz, how):
    """A gzipped file reads as the plain one; a truncated one, UTF-16 text or a header
    without the needed columns is one InputError naming the file."""
    packed = how in ("gzip", "truncated")
    path = tmp_path_factory.mktemp("fuzz") / (fuzz.name + (".gz" if packed else ""))
    fuzz.name = path.name
    expected = None
    if how == "gzip":
        path.write_bytes(gzip.compress(fuzz.data))
    elif how == "truncated":
        packed = gzip.compress(fuzz.data)
        path.write_bytes(packed[: len(packed) - 9])  # always inside the stream or its trailer
        expected = "gzip file"
    elif how == "utf-16":
        path.write_bytes(fuzz.data.decode("utf-8", "replace").encode("utf-16"))
        expected = "UTF-16"
    else:
        path.write_bytes(b"who,what,when\n" + fuzz.data.split(b"\n", 1)[-1])
        expected = "header"
    try:
        rows, errors = _read_interactions(path)
    except InputError as exc:
        assert expected and expected in exc.message, exc.message
        assert exc.message.startswith(path.name), exc.message
        return
    assert expected is None, how
    _check_outcome(fuzz, rows, errors, local=True)


@given(data=st.binary(max_size=3000), suffix=st.sampled_from([".csv", ".jsonl", ".csv.gz"]))
def test_random_bytes(tmp_path_factory, data, suffix):
    path = tmp_path_factory.mktemp("fuzz") / f"junk{suffix}"
    path.write_bytes(data)
    for read in (_read_interactions, _read_books):
        try:
            _, errors = read(path)
        except InputError as exc:
            assert exc.message.startswith(path.name), exc.message
            continue
        for error in errors.errors:
            assert ERROR_LINE.match(error.describe(path).replace("\n", " "))


# --- JSONL -----------------------------------------------------------------------------------

json_junk = st.one_of(
    st.just(b"{"), st.just(b"[1, 2]"), st.just(b"42"), st.just(b'"text"'), st.just(b"null"),
    st.just(b'{"user_id": {"a": 1}, "book_id": "b1"}'),
    st.just(b'{"user_id": "x", "book_id": "b1", "rating": "x", "event": "rate"}'),
    st.just(b'{"user_id": "x\\u0000", "book_id": "b1"}'),
    st.just(b'{"user_id": "x", "book_id": "b1", "timestamp": true}'),
    st.binary(max_size=30).filter(lambda b: not set(b) & {10, 13}).map(lambda b: b + b"\xff"),
)  # fmt: skip


@st.composite
def interaction_jsonl(draw) -> FuzzFile:
    out = FuzzFile("events.jsonl", b"")
    lines = []
    for i in range(draw(st.integers(0, 30))):
        line_no = len(lines) + 1
        if draw(st.integers(0, 3)):
            text, expected = draw(valid_interaction(f"v{i}"))
            values = dict(zip(HEADER, [f.strip('"') for f in text.split(",")], strict=True))
            if values["rating"]:
                values["rating"] = float(values["rating"])
            if values["timestamp"].isdigit() and draw(st.booleans()):
                values["timestamp"] = int(values["timestamp"])
            lines.append(json.dumps({k: v for k, v in values.items() if v != ""}).encode())
            out.valid[line_no] = expected
        else:
            lines.append(draw(json_junk))
            out.damaged.add(line_no)
    out.data = b"".join(line + draw(st.sampled_from([b"\n", b"\r\n"])) for line in lines)
    out.n_lines = len(lines)
    return out


@given(fuzz=interaction_jsonl())
def test_interaction_jsonl(tmp_path_factory, fuzz):
    path = tmp_path_factory.mktemp("fuzz") / fuzz.name
    path.write_bytes(fuzz.data)
    if fuzz.data.startswith((b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")):
        with pytest.raises(InputError, match=r"the file is UTF-(16|32) text"):
            _read_interactions(path)
        return
    rows, errors = _read_interactions(path)
    _check_outcome(fuzz, rows, errors, local=True)


# --- books ----------------------------------------------------------------------------------


def _read_books(path: Path) -> tuple[list[tuple], ErrorLog]:
    errors = ErrorLog(path, keep_all=True, max_errors=0)
    rows = [
        (book.external_id, book.title, book.description)
        for batch in read_books(path, errors, batch_size=3)
        for book in batch
    ]
    return rows, errors


descriptions = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00\r"), max_size=40
)


@st.composite
def book_csv(draw) -> FuzzFile:
    """Books whose descriptions may hold quotes, commas and line ends (quoted properly), and
    damaged rows: stray quotes, NULs, undecodable bytes, missing titles."""
    out = FuzzFile("books.csv", b"")
    records = ["external_id,title,description"]
    line_no = 2
    open_quote = False  # a stray quote with no quoted field after it yet
    for i in range(draw(st.integers(0, 25))):
        description = draw(descriptions)
        roll = draw(st.integers(0, 5))
        if roll < 4:
            if open_quote:  # its opening quote closes the stray one: text must follow
                description, open_quote = "x" + description, False
            records.append(f'v{i},Title {i},"{description.replace(chr(34), chr(34) * 2)}"')
            out.valid[line_no] = (f"v{i}", f"Title {i}", description.strip() or None)
            line_no += description.count("\n") + 1
            continue
        if roll == 5:
            records.append("")
        else:
            # A stray quote, unquoted lines, and a quote before a line end or a comma make
            # one well-formed record with line ends in a field: no reader can tell it from
            # a description (see the README), so the generator does not write that.
            kinds = ["nul", "undecodable", "no title"] + ["stray quote"] * (not open_quote)
            kind = draw(st.sampled_from(kinds))
            open_quote = open_quote or kind == "stray quote"
            flat = description.replace(chr(34), "").replace("\n", " ")
            records.append({
                "stray quote": f'v{i},Title {i},"{flat}',
                "nul": f"v{i},Ti\x00tle,plain",
                "undecodable": f"v{i},\udcff,plain",  # the byte 0xff, written below
                "no title": f"v{i},,plain",
            }[kind])  # fmt: skip
            out.damaged.add(line_no)
            if kind != "stray quote":
                out.field_errors[line_no] = "title"
        line_no += 1
    text = "\n".join(records) + "\n"
    out.data = text.encode("utf-8", "surrogateescape")
    out.n_lines = line_no - 1
    return out


@given(fuzz=book_csv())
def test_book_csv(tmp_path_factory, fuzz):
    path = tmp_path_factory.mktemp("fuzz") / fuzz.name
    path.write_bytes(fuzz.data)
    rows, errors = _read_books(path)
    reported = {}
    for error in errors.errors:
        text = error.describe(path).replace("\n", " ")
        assert ERROR_LINE.match(text), text
        reported[error.line] = error.field
    loaded = {row[0]: row for row in rows}
    assert len(loaded) == len(rows)
    for line, expected in fuzz.valid.items():
        assert line not in reported, (line, errors.errors)
        assert loaded.get(expected[0]) == expected, (line, loaded.get(expected[0]), expected)
    assert set(reported) == fuzz.damaged
    for line, name in fuzz.field_errors.items():
        assert reported[line] == name


# --- both backends through the CLI ------------------------------------------------------------


@pytest.mark.postgres
@settings(max_examples=int(os.environ.get("BOOKREC_FUZZ_CLI_EXAMPLES", "12")))
@given(fuzz=interaction_csv())
def test_sqlite_and_postgresql_agree(tmp_path_factory, postgres_server, fuzz):
    from bookrec.storage import open_repository
    from tests.conftest import Cli, _reset_postgres

    folder = tmp_path_factory.mktemp("fuzz")
    books = folder / "books.csv"
    books.write_text("external_id,title\n" + "".join(f"{b},Book {b}\n" for b in BOOK_IDS))
    path = folder / fuzz.name
    path.write_bytes(fuzz.data)
    _reset_postgres(postgres_server)
    outcomes = []
    for url in (f"sqlite:///{folder / 'fuzz.db'}", postgres_server):
        cli = Cli(url)
        cli.ok("db", "init")
        cli.ok("ingest", "books", str(books), "--skip-embeddings")
        result = cli("ingest", "interactions", str(path), "--skip-invalid", "--json",
                     "--max-errors", "0")  # fmt: skip
        assert "Traceback" not in result.stderr and result.exit_code in (0, 2), result.stderr
        summary = json.loads(result.stdout) if result.exit_code == 0 else None
        if summary:
            summary.pop("seconds")
        repo = open_repository(url)
        try:
            counts = repo.counts()
        finally:
            repo.close()
        outcomes.append((result.exit_code, summary, result.stderr, counts["users"],
                         counts["interactions"], counts["interactions_by_event"]))  # fmt: skip
    assert outcomes[0] == outcomes[1]
    exit_code, summary, *_ = outcomes[0]
    if exit_code == 0:
        assert summary["details"]["inserted"] + summary["details"]["duplicates"] == (
            summary["rows_read"] - summary["rejected"]
        )
        assert summary["rows_read"] - summary["rejected"] == len(fuzz.valid)


# --- Parquet ----------------------------------------------------------------------------------


@st.composite
def parquet_table(draw):
    """A typed table: a valid row or a damaged one (null id, unknown book, bad event, rating
    out of range or on another event, time out of range) per row; column types drawn too."""
    import pyarrow as pa

    n_rows = draw(st.integers(1, 30))
    users, books, events, ratings, stamps, valid = [], [], [], [], [], {}
    for i in range(n_rows):
        text, expected = draw(valid_interaction(f"v{i}"))
        book, event = text.split(",")[1].strip('"'), EVENTS[expected[2]]
        user, rating, stamp = f"v{i}", expected[3], expected[4]
        damage = draw(st.sampled_from(["none"] * 4 + ["user", "book", "event", "rating", "time"]))
        if damage == "user":
            user = None
        elif damage == "book":
            book = "b404"
        elif damage == "event":
            event = "read"
        elif damage == "rating":
            rating = 9.0 if event == "rate" else 3.0
        elif damage == "time":
            stamp = -86_400.0
        else:
            valid[i + 1] = expected
        users.append(user)
        books.append(book)
        events.append(event)
        ratings.append(rating)
        stamps.append(None if stamp == NOW else stamp)
    user_type = draw(st.sampled_from(["string", "dictionary", "large_string"]))
    user_array = pa.array(users, pa.large_string() if user_type == "large_string" else pa.string())
    if user_type == "dictionary":
        user_array = user_array.dictionary_encode()
    time_type = draw(st.sampled_from(["float", "timestamp_s", "timestamp_ms_utc"]))
    if time_type == "float":
        time_array = pa.array(stamps, pa.float64())
    else:
        unit, tz = ("s", None) if time_type == "timestamp_s" else ("ms", "UTC")
        factor = 1 if unit == "s" else 1000
        raw = [None if s is None else int(s * factor) for s in stamps]
        time_array = pa.array(raw, pa.int64()).cast(pa.timestamp(unit, tz))
    table = pa.table({
        "user_id": user_array,
        "book_id": pa.array(books, pa.string()).dictionary_encode() if draw(st.booleans())
        else books,
        "event": events,
        "rating": pa.array(ratings, draw(st.sampled_from([pa.float32(), pa.float64()]))),
        "timestamp": time_array,
    })  # fmt: skip
    return table, valid, draw(st.integers(1, 12))


@given(case=parquet_table())
def test_interaction_parquet(tmp_path_factory, case):
    """Every valid row loaded, every damaged one reported by its row number, whichever
    batches the file is cut into (a clean batch goes column by column, others row by row)."""
    import pyarrow.parquet as pq

    table, valid, row_group = case
    path = tmp_path_factory.mktemp("fuzz") / "events.parquet"
    pq.write_table(table, path, row_group_size=row_group)
    errors = ErrorLog(path, keep_all=True, max_errors=0)
    rows = []
    for batch in read_interactions(path, BOOK_IDS, errors, NOW, batch_size=row_group):
        for i, user in enumerate(batch.users):
            rating = batch.ratings[i]
            rows.append((user, int(batch.book_ids[i]), int(batch.events[i]),
                         None if np.isnan(rating) else float(rating),
                         float(batch.timestamps[i])))  # fmt: skip
    reported = {e.line for e in errors.errors}
    assert reported == set(range(1, table.num_rows + 1)) - set(valid)
    assert all(e.describe(path, errors.unit).startswith(f"events.parquet:row {e.line}: ")
               for e in errors.errors)  # fmt: skip
    assert sorted(rows) == sorted(valid.values())
