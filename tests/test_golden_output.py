"""Golden output: the text and --json output of every command, on both backends, as users see it.

A change to what a command prints fails here. When the change is intended, regenerate the files
with `BOOKREC_UPDATE_GOLDEN=1 pytest tests/test_golden_output.py` and review the diff of
tests/golden/ in the same commit. Times, dates, paths and database URLs are masked; everything
else (counts, ids, scores, wording, exit codes, stderr) is compared as printed.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from tests.planted import write_planted

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("BOOKREC_UPDATE_GOLDEN") == "1"
GNN = ("--dim", "16", "--walk-length", "20", "--walks-per-node", "10", "--epochs", "5")
MODEL_OPTIONS = ("--factors", "8", "--regularization", "1", *GNN)

# JSON keys whose values are wall-clock times or rates.
TIME_KEYS = re.compile(
    r"(^|_)(seconds|per_second|started_at|finished_at|applied_at|arrival_at|since_run_at)$"
)
TEXT_TIMES = [
    (re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}"), "<date>"),
    (re.compile(r"\b\d+(\.\d+)?s\b"), "<t>s"),
    (re.compile(r"\b[\d,]+ (rows|books|vectors)/s\b"), r"<n> \1/s"),
    # evaluate's table ends each row with its train and score seconds
    (re.compile(r"(\d+/\d+) +\d+\.\d +\d+\.\d$", re.MULTILINE), r"\1  <t>  <t>"),
]


def _mask_json(value: Any, key: str = "") -> Any:
    if key == "phases" and isinstance(value, dict):
        return dict.fromkeys(value, "<t>")
    if TIME_KEYS.search(key):
        return "<t>" if not isinstance(value, dict) else dict.fromkeys(value, "<t>")
    if isinstance(value, dict):
        return {k: _mask_json(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_json(v, key) for v in value]
    return value


def _mask_text(text: str, replacements: dict[str, str]) -> str:
    for raw, placeholder in replacements.items():
        text = text.replace(raw, placeholder)
    for pattern, placeholder in TEXT_TIMES:
        text = pattern.sub(placeholder, text)
    # Table columns are as wide as their widest cell, and masked paths differ in length.
    return re.sub(r" {2,}", "  ", re.sub(r" +$", "", text, flags=re.MULTILINE))


def _scenario(cli, tmp_path: Path) -> list[tuple[str, list[str]]]:
    books, events = write_planted(tmp_path)
    bad = tmp_path / "bad_events.csv"
    bad.write_text(
        "user_id,book_id,event,rating,timestamp\n"
        "g0-u1,g0-b1,view,,2026-01-01T00:00:00\n"
        "g0-u1,g0-b2,rate,9,2026-01-01T00:00:01\n"
        "g0-u1,nope,view,,2026-01-01T00:00:02\n"
    )
    steps: list[tuple[str, list[str]]] = [
        ("db-init-again", ["db", "init"]),
        ("db-upgrade-json", ["db", "upgrade", "--json"]),
        ("ingest-books", ["ingest", "books", str(books), "--skip-embeddings"]),
        ("ingest-books-again-json", ["ingest", "books", str(books), "--json"]),
        ("ingest-interactions", ["ingest", "interactions", str(events)]),
        ("ingest-interactions-again-json", ["ingest", "interactions", str(events), "--json"]),
        ("ingest-bad", ["ingest", "interactions", str(bad)]),
        ("ingest-bad-skip-json", ["ingest", "interactions", str(bad), "--skip-invalid", "--json"]),
        ("embed-only-missing", ["embed", "--only-missing"]),
        ("embed-json", ["embed", "--json"]),
        ("train-cf", ["train", "cf", "--factors", "8", "--regularization", "1"]),
        ("train-cf-json", ["train", "cf", "--factors", "8", "--regularization", "1", "--json"]),
        ("train-cf-too-few", ["train", "cf", "--min-interactions", "100"]),
        ("train-gnn", ["train", "gnn", *GNN, "--workers", "1"]),
        ("train-gnn-json", ["train", "gnn", *GNN, "--workers", "1", "--json"]),
        ("status", ["status"]),
        ("status-json", ["status", "--json"]),
        ("status-check", ["status", "--check"]),
    ]
    for strategy in ("hybrid", "cf", "gnn", "content", "popular"):
        steps.append((f"recommend-{strategy}", ["recommend", "g0-u3", "--strategy", strategy]))
        steps.append(
            (f"recommend-{strategy}-json", ["recommend", "g1-u2", "--strategy", strategy, "--json"])
        )
    steps += [
        ("recommend-seen-k3", ["recommend", "g1-u0", "--k", "3", "--include-seen"]),
        ("recommend-unknown-user", ["recommend", "nobody"]),
        ("recommend-unknown-strategy", ["recommend", "g0-u1", "--strategy", "magic"]),
    ]
    for space in ("cf", "gnn", "content"):
        steps.append((f"similar-{space}", ["similar", "g0-b1", "--space", space, "--k", "5"]))
    steps += [
        ("similar-json", ["similar", "g1-b2", "--space", "gnn", "--k", "3", "--json"]),
        ("similar-unknown", ["similar", "zzz"]),
        ("evaluate", ["evaluate", "--k", "5", *MODEL_OPTIONS]),
        (
            "evaluate-json",
            ["evaluate", "--k", "5", "--split", "leave-last", *MODEL_OPTIONS, "--json"],
        ),
        ("evaluate-bad-strategy", ["evaluate", "--strategies", "cf,magic"]),
        ("config", ["config"]),
        ("config-json", ["config", "--json"]),
    ]
    return steps


def _render(name: str, args: list[str], result, replacements: dict[str, str]) -> str:
    stdout = result.stdout
    if "--json" in args and result.exit_code == 0:
        stdout = json.dumps(_mask_json(json.loads(stdout)), indent=2, ensure_ascii=False) + "\n"
    paths = ("/", "sqlite:", "postgresql:")
    shown = " ".join("<path>" if a.startswith(paths) else a for a in args)
    return _mask_text(
        f"$ bookrec {shown}\nexit {result.exit_code}\n--- stdout\n{stdout}--- stderr\n"
        f"{result.stderr}",
        replacements,
    )


def test_every_command_prints_what_it_printed(cli, tmp_path, db_url):
    backend = "postgresql" if db_url.startswith("postgresql") else "sqlite"
    folder = GOLDEN / backend
    replacements = {db_url: "<database-url>", str(tmp_path): "<tmp>"}
    if backend == "sqlite":
        replacements[db_url.removeprefix("sqlite:///")] = "<database-path>"
    else:
        replacements[db_url.rsplit("/", 1)[1]] = "<database-name>"
    outputs = {}
    for index, (name, args) in enumerate(_scenario(cli, tmp_path)):
        result = cli(*args)
        outputs[f"{index:02d}-{name}.txt"] = _render(name, args, result, replacements)
    if UPDATE:
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.txt"):
            stale.unlink()
        for filename, text in outputs.items():
            (folder / filename).write_text(text, encoding="utf-8")
        pytest.skip("golden files written")
    expected = {p.name: p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.txt"))}
    assert sorted(outputs) == sorted(expected)
    changed = [name for name in outputs if outputs[name] != expected[name]]
    for name in changed:
        print(f"==== {name} expected\n{expected[name]}==== {name} now\n{outputs[name]}")
    assert not changed, f"output changed: {changed}"
