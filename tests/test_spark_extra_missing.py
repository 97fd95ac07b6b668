"""`--engine spark` without the spark extra: exit 2 naming the extra, before any work."""

from __future__ import annotations

import sys

import pytest

from tests.planted import write_planted


@pytest.fixture
def without_pyspark(monkeypatch):
    """pyspark unimportable, as in an install without bookrec[spark] (the `tests` session has
    none; with the extra installed, the import is blocked)."""
    for name in list(sys.modules):
        if name == "pyspark" or name.startswith("pyspark."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "pyspark", None)


@pytest.mark.parametrize("model", ["cf", "gnn"])
def test_spark_engine_without_the_extra_names_it(cli, tmp_path, without_pyspark, model):
    books, events = write_planted(tmp_path)
    cli.ok("ingest", "books", str(books))
    cli.ok("ingest", "interactions", str(events))
    result = cli("train", model, "--engine", "spark")
    assert result.exit_code == 2
    assert "needs the optional extra 'spark'" in result.stderr
    assert 'pip install "bookrec[spark]"' in result.stderr
    from bookrec.storage import open_repository

    repo = open_repository(cli.url)
    try:
        assert repo.latest_run(model, status=None) is None  # refused before any run started
    finally:
        repo.close()


def test_unknown_cf_engine_is_a_usage_error(cli):
    result = cli("train", "cf", "--engine", "mahout")
    assert result.exit_code == 2 and "cf.engine" in result.stderr
