"""Every model a set of strategies needs, fitted on one training set: what `evaluate`, `tune`
and the quality gate rank with."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from bookrec.algorithms.matrix import InteractionMatrix
from bookrec.domain import BookText
from bookrec.errors import NotEnoughDataError
from bookrec.models.base import Model
from bookrec.models.blend import Blend
from bookrec.models.popular import PopularModel
from bookrec.progress import Phases
from bookrec.settings import HybridSettings, Settings

FITTED = ("cf", "gnn", "content")


@dataclass(frozen=True, eq=False)
class TrainingSet:
    """What models learn from: the training confidences of every user over the catalogue
    (the matrix's columns), and the books' texts for content."""

    matrix: InteractionMatrix
    books: Sequence[BookText] = ()

    @property
    def catalogue(self) -> np.ndarray:
        return self.matrix.book_ids

    def popularity(self) -> np.ndarray:
        from bookrec.algorithms.scoring import popularity

        return popularity(self.matrix.matrix)


@dataclass
class FittedModels:
    """The models fitted, the seconds each took, and why any was not (its strategy then serves
    nobody)."""

    models: dict[str, Model]
    train_seconds: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def needed_strategies(strategies: Iterable[str], hybrid: HybridSettings) -> set[str]:
    """The strategies to fit: those asked for, and the parts of the hybrid if it is asked for
    (every part a weight may be learnt for, and those given a weight above 0)."""
    from bookrec.models.blend import PARTS

    needed = set(strategies)
    if "hybrid" in needed:
        explicit = hybrid.explicit()
        needed |= {name for name in PARTS if explicit.get(name, 1.0) > 0} | {"popular"}
    return needed


def fit_models(
    training: TrainingSet,
    settings: Settings,
    strategies: Iterable[str],
    phases: Phases,
    blend: Blend | None = None,
) -> FittedModels:
    """Fit the models of `strategies` (and of the hybrid's parts) on the training set; the
    hybrid fuses them with `blend`'s weights (the fallback's without), explicit settings first.

    A model the data cannot support (too few users or books after its k-core) is left out with
    the reason; any other failure is raised."""
    from bookrec.models.blend import FALLBACK_BLEND
    from bookrec.models.cf import cf_core, fit_cf
    from bookrec.models.content import content_documents, fit_content
    from bookrec.models.embedding import EmbeddingModel
    from bookrec.models.gnn import fit_gnn, gnn_core
    from bookrec.models.hybrid import HybridModel

    needed = needed_strategies(strategies, settings.hybrid)
    catalogue = training.catalogue
    popularity = training.popularity()
    fitted = FittedModels(models={"popular": PopularModel(catalogue, popularity)})

    def fit(name: str) -> Model:
        if name == "cf":
            with phases.phase("cf", total=settings.cf.iterations) as update:
                core = cf_core(training.matrix, settings.cf)
                return fit_cf(core, settings.cf, update, settings.spark).vectors.model(catalogue)
        if name == "gnn":
            core = gnn_core(training.matrix, settings.gnn)
            vectors = fit_gnn(core, settings.gnn, phases.within("gnn"), settings.spark).vectors
            return EmbeddingModel(vectors, catalogue, popularity)
        documents = content_documents(training.books, settings.content)
        with phases.phase("content", total=len(documents.texts)) as update:
            vectors = fit_content(documents, settings.content, on_batch=update).vectors
        return EmbeddingModel(vectors, catalogue, popularity)

    for name in FITTED:
        if name in needed:
            started = time.perf_counter()
            try:
                fitted.models[name] = fit(name)
            except NotEnoughDataError as error:
                fitted.skipped[name] = error.message
            fitted.train_seconds[name] = time.perf_counter() - started
    if "hybrid" in needed:
        weights = (blend or FALLBACK_BLEND).resolve(settings.hybrid)
        fitted.models["hybrid"] = HybridModel(fitted.models, weights)
    return fitted
