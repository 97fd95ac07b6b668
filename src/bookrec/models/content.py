"""content: book text → lsa (TF-IDF + SVD, fitted here) or MiniLM vectors, scored as an
`EmbeddingModel`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from bookrec.algorithms.content import BookTexts, LsaModel
from bookrec.domain import BookText
from bookrec.models.base import BookVectors
from bookrec.settings import ContentSettings


@dataclass(frozen=True, eq=False)
class ContentFit:
    """Vectors of the books with usable text, how many had none, and the lsa model fitted
    (None when a stored model was applied, or for minilm)."""

    vectors: BookVectors
    without_text: int
    fitted: LsaModel | None


def content_documents(books: Sequence[BookText], settings: ContentSettings) -> BookTexts:
    """The document of each book the configured model embeds, and the books without one."""
    from bookrec.algorithms.content import book_texts

    return book_texts(books, model=settings.model)


def content_dim(settings: ContentSettings, stored: LsaModel | None = None) -> int:
    from bookrec.algorithms.content import MINILM_DIM

    if settings.model == "minilm":
        return MINILM_DIM
    return stored.dim if stored is not None else settings.dim


def fit_content(
    documents: BookTexts,
    settings: ContentSettings,
    stored: LsaModel | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> ContentFit:
    """Embed `documents` (see `content_documents`): minilm, the `stored` lsa model, or a new lsa
    fit on them. Documents whose vector comes out all zeros count as without text."""
    from bookrec.algorithms.content import encode_minilm, fit_lsa, zero_rows

    fitted = None
    if not documents.texts:
        vectors = np.zeros((0, content_dim(settings, stored)), dtype=np.float32)
    elif settings.model == "minilm":
        vectors = encode_minilm(documents.texts, batch_size=settings.batch_size, on_batch=on_batch)
    elif stored is not None:
        vectors = stored.transform(documents.texts, on_batch=on_batch)
    else:
        fitted, vectors = fit_lsa(
            documents.texts, dim=settings.dim, seed=settings.seed, on_batch=on_batch
        )
    empty = zero_rows(vectors)
    ids = np.array(documents.book_ids, dtype=np.int64)[~empty]
    return ContentFit(
        BookVectors("content", ids, vectors[~empty]),
        without_text=len(documents.without_text) + int(empty.sum()),
        fitted=fitted,
    )
