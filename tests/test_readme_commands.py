"""Every `bookrec …` command line of README.md parses as written (operators copy them verbatim),
and the cron lines run for real."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer
from typer.core import TyperGroup

from bookrec.cli import app
from tests.conftest import Cli
from tests.planted import write_planted

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"`(bookrec [^`\[]+)`")
CRON_FIELDS = 5


def _command(line: str) -> list[str] | None:
    """The arguments after `bookrec` of a shell or crontab line, or None if it runs none."""
    line = re.sub(r"\s+#.*$", "", line).strip()
    if not line or line.startswith("#"):
        return None
    words = shlex.split(line)
    if words and re.fullmatch(r"[\d*/,-]+", words[0]) and len(words) > CRON_FIELDS:
        words = words[CRON_FIELDS:]  # a crontab line: minute hour day month weekday command
    for segment in " ".join(shlex.quote(w) for w in words).split(" '&&' "):
        parts = shlex.split(segment)
        while parts and re.fullmatch(r"[A-Z_]+=\S*", parts[0]):
            parts = parts[1:]  # VAR=value before the command
        if parts and parts[0] == "bookrec":
            return [p for p in parts[1:] if not p.startswith((">", "2>"))][: _end(parts[1:])]
    return None


def _end(args: list[str]) -> int:
    """Where a redirection (`> /dev/null`) starts."""
    return next((i for i, a in enumerate(args) if a in (">", "2>", ">>")), len(args))


def command_lines() -> list[list[str]]:
    """The command lines of README's code blocks: complete, to be run as they are."""
    found = []
    for language, body in FENCE.findall(README.read_text("utf-8")):
        if language in ("bash", "cron", "sh", ""):
            found += [c for c in map(_command, body.splitlines()) if c is not None]
    return found


def inline_commands() -> list[list[str]]:
    """`bookrec …` in the prose: a command's name and options, its arguments maybe left out."""
    return [shlex.split(span)[1:] for span in INLINE.findall(README.read_text("utf-8"))]


def parse(args: list[str], *, complete: bool = True) -> str:
    """Parse a command line as bookrec would, without running it; the command's path.
    Unknown commands and options always fail; missing arguments only when `complete`."""
    command = typer.main.get_command(app)
    ctx = command.make_context("bookrec", list(args), resilient_parsing=not complete)
    path = []
    while isinstance(command, TyperGroup):
        rest = [*ctx._protected_args, *ctx.args]
        if not rest and not complete:
            break  # `bookrec --help`
        name, command, rest = command.resolve_command(ctx, rest)
        path.append(name)
        ctx = command.make_context(name, rest, parent=ctx, resilient_parsing=not complete)
    return " ".join(path)


COMMANDS = command_lines()


def test_readme_has_the_commands_we_expect():
    paths = {parse(args) for args in COMMANDS}
    assert {"train cf", "train gnn", "status", "ingest interactions", "recommend"} <= paths
    assert ["train", "cf", "--quiet"] in COMMANDS and len(COMMANDS) >= 15


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_readme_command_line_parses(args):
    parse(args)


@pytest.mark.parametrize("args", inline_commands(), ids=" ".join)
def test_readme_inline_command_names_exist(args):
    parse(args, complete=False)


def test_readme_cron_lines_run_as_written(db_url, tmp_path):
    cli = Cli(db_url)
    cli.ok("db", "init")
    books, events = write_planted(tmp_path)
    cli.ok("ingest", "books", str(books))
    cli.ok("ingest", "interactions", str(events))
    cron = FENCE.search(README.read_text("utf-8").split("```cron", 1)[1].join(["```cron", ""]))
    assert cron is not None
    lines = [c for c in map(_command, cron.group(2).splitlines()) if c is not None]
    assert [line[:2] for line in lines] == [
        ["train", "cf"],
        ["train", "gnn"],
        ["train", "cf"],
        ["train", "gnn"],
        ["status", "--check"],
    ]
    for args in lines[:4]:
        cli.ok(*args)
    cli.ok("embed")
    assert cli(*lines[4]).exit_code == 0
