"""Measure the model defaults of cf, gnn and hybrid by offline evaluation (run by hand).

    python benchmarks/tune_defaults.py cf --data demo500,demo2000,bench100k
    python benchmarks/tune_defaults.py cf --data bench1m --reg 50 --reg-sqrt 0.06 --alpha 4
    python benchmarks/tune_defaults.py gnn --data demo2000,bench100k
    python benchmarks/tune_defaults.py prior --data demo2000,bench100k
    python benchmarks/tune_defaults.py hybrid --data demo2000,bench100k

Every figure is nDCG@10 (and recall@10) of evaluation.make_holdout's random 80/20 split,
models trained exactly as `bookrec evaluate` trains them. Data sets: demoN =
generate_demo_interactions(n_users=N) (planted author/series/era tastes on the real goodbooks
catalogue); bench100k = 100k rows, 2,000 users, 10 clusters; bench1m = 1M rows, 20,000 users,
20 clusters (generate_benchmark_interactions over 10k books). gnn vectors are cached under
--cache, keyed by data set and parameters.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import time
from pathlib import Path

import numpy as np
from bench_evaluate import benchmark_data, demo_data, goodbooks_texts

from bookrec.algorithms import scoring
from bookrec.algorithms.evaluation import Holdout, make_holdout
from bookrec.algorithms.matrix import k_core
from bookrec.models.base import BookVectors
from bookrec.models.cf import cf_core, fit_cf
from bookrec.models.content import content_documents, fit_content
from bookrec.models.embedding import EmbeddingModel
from bookrec.models.evaluate import score_function
from bookrec.models.gnn import fit_gnn, gnn_core
from bookrec.models.hybrid import HybridModel
from bookrec.models.popular import PopularModel
from bookrec.progress import Phases
from bookrec.settings import CfSettings, ContentSettings, GnnSettings

CACHE = Path(__file__).resolve().parent / "out" / "tune-cache"


def load(name: str):
    if name == "bench100k":
        return benchmark_data(100_000, 2_000, 10)
    if name == "bench1m":
        return benchmark_data(1_000_000, 20_000, 20)
    if name.startswith("demo"):
        return demo_data(int(name[4:]))
    raise SystemExit(f"unknown data set {name}")


class Bench:
    """One data set's holdout with cached models."""

    def __init__(self, name: str, cache: Path) -> None:
        self.name, self.cache = name, cache
        self.books = goodbooks_texts()
        self.held: Holdout = make_holdout(load(name), self.books)
        core = k_core(self.held.full, 2, 2)
        self.core_pairs = core.nnz
        self.pairs_per_user = core.nnz / core.shape[0]
        self._content: BookVectors | None = None
        print(
            f"# {name}: {self.held.full.shape[0]:,} users, {self.held.full.nnz:,} pairs, "
            f"{self.pairs_per_user:.1f} pairs/user in the cf 2-core, "
            f"{len(self.held.users):,} test users"
        )

    def measure(self, fn) -> tuple[float, float, float]:
        started = time.perf_counter()
        metrics, _ = self.held.measure(fn, 10)
        return metrics["ndcg"], metrics["recall"], time.perf_counter() - started

    def measure_cf(self, params: CfSettings) -> tuple[float, float, float]:
        started = time.perf_counter()
        ndcg, recall, _ = self.measure(score_function(self.cf_model(params), self.held))
        return ndcg, recall, time.perf_counter() - started

    def cf_model(self, params: CfSettings):
        fit = fit_cf(cf_core(self.held.full, params), params)
        return fit.vectors.model(self.held.catalogue)

    def gnn_vectors(self, params: GnnSettings) -> BookVectors:
        key = hashlib.sha1(json.dumps([self.name, params.model_dump()]).encode()).hexdigest()[:12]
        path = self.cache / f"gnn-{self.name}-{key}.npz"
        if path.is_file():
            saved = np.load(path)
            return BookVectors("gnn", saved["ids"], saved["vectors"])
        started = time.perf_counter()
        vectors = fit_gnn(gnn_core(self.held.full, params), params, Phases()).vectors
        print(f"  (gnn trained in {time.perf_counter() - started:.1f} s: {params.model_dump()})")
        self.cache.mkdir(parents=True, exist_ok=True)
        np.savez(path, ids=vectors.book_ids, vectors=vectors.vectors)
        return vectors

    def content_vectors(self) -> BookVectors:
        if self._content is None:
            settings = ContentSettings()
            self._content = fit_content(content_documents(self.books, settings), settings).vectors
        return self._content

    def embedding_model(self, vectors: BookVectors, prior: float) -> EmbeddingModel:
        return EmbeddingModel(vectors, self.held.catalogue, self.held.popularity, prior)

    def embedding_fn(self, vectors: BookVectors, prior: float):
        return score_function(self.embedding_model(vectors, prior), self.held)


def row(*cells) -> None:
    print(" | ".join(f"{c:.4f}" if isinstance(c, float) else str(c) for c in cells))


def tune_cf(bench: Bench, args) -> None:
    print("data | factors | regularization | alpha | ndcg@10 | recall@10 | seconds (fit + rank)")
    for factors, reg, alpha in itertools.product(args.factors, args.reg, args.alpha):
        params = CfSettings(factors=factors, regularization=reg, alpha=alpha, threads=args.threads)
        row(bench.name, factors, reg, alpha, *bench.measure_cf(params))
    for factors, scale, alpha in itertools.product(args.factors, args.reg_sqrt, args.alpha):
        reg = scale * alpha * math.sqrt(bench.core_pairs)
        params = CfSettings(factors=factors, regularization=reg, alpha=alpha, threads=args.threads)
        label = f"{scale:g}·α·√pairs = {reg:.3g}"
        row(bench.name, factors, label, alpha, *bench.measure_cf(params))


def tune_gnn(bench: Bench, args) -> None:
    print("data | walk_length | q | epochs | window | prior | ndcg@10 | recall@10 | seconds")
    for length, q, epochs, window in itertools.product(
        args.walk_length, args.q, args.epochs, args.window
    ):
        params = GnnSettings(
            walk_length=length, q=q, epochs=epochs, window=window, workers=args.threads
        )
        vectors = bench.gnn_vectors(params)
        for prior in args.prior:
            fn = bench.embedding_fn(vectors, prior)
            row(bench.name, length, q, epochs, window, prior, *bench.measure(fn))


def tune_prior(bench: Bench, args) -> None:
    print("data | family | prior | ndcg@10 | recall@10 | seconds")
    families = {
        "gnn": bench.gnn_vectors(GnnSettings(workers=args.threads)),
        "content": bench.content_vectors(),
    }
    for family, vectors in families.items():
        for prior in args.prior:
            row(bench.name, family, prior, *bench.measure(bench.embedding_fn(vectors, prior)))


def tune_hybrid(bench: Bench, args) -> None:
    priors = {"gnn": args.gnn_prior, "content": args.content_prior}
    models = {
        "popular": PopularModel(bench.held.catalogue, bench.held.popularity),
        "cf": bench.cf_model(CfSettings(threads=args.threads)),
        "gnn": bench.embedding_model(
            bench.gnn_vectors(GnnSettings(workers=args.threads)), priors["gnn"]
        ),
        "content": bench.embedding_model(bench.content_vectors(), priors["content"]),
    }
    print("data | fusion | cf | gnn | content | popular | ndcg@10 | recall@10 | seconds")
    for name in ("popular", "cf", "gnn", "content"):
        fn = score_function(models[name], bench.held)
        row(bench.name, "-", *(1.0 if s == name else 0.0 for s in SOURCES), *bench.measure(fn))
    for fusion in args.fusion:
        for weights in args.weights:
            hybrid = HybridModel(models, dict(zip(SOURCES, weights, strict=True)), method=fusion)
            row(bench.name, fusion, *weights, *bench.measure(score_function(hybrid, bench.held)))


SOURCES = ("cf", "gnn", "content", "popular")
DEFAULT_WEIGHTS = (
    "1,0.5,0.25,0.1;1,0,0,0;1,0.25,0,0;1,0.5,0,0;1,1,0,0;1,0.5,0.25,0;1,0.5,0.5,0;"
    "1,0.25,0.25,0;1,1,0.5,0;1,0.5,0.25,0.25;0.5,1,0.5,0"
)


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",")]


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("section", choices=("cf", "gnn", "prior", "hybrid"))
    parser.add_argument("--data", default="demo500,demo2000,bench100k")
    parser.add_argument("--factors", type=ints, default=[16, 32, 64, 128])
    parser.add_argument("--reg", type=floats, default=[0.01, 0.05, 0.1, 0.5, 1, 5, 20, 50])
    parser.add_argument(
        "--reg-sqrt", type=floats, default=[], help="also λ = c × alpha × √(pairs in the k-core)"
    )
    parser.add_argument("--alpha", type=floats, default=[1.0])
    parser.add_argument("--walk-length", type=ints, default=[40])
    parser.add_argument("--q", type=floats, default=[0.5])
    parser.add_argument("--epochs", type=ints, default=[1])
    parser.add_argument("--window", type=ints, default=[5])
    parser.add_argument("--prior", type=floats, default=[0.0, 0.5, 1.0, 1.5, 2.0])
    parser.add_argument("--gnn-prior", type=float, default=scoring.DEFAULT_PRIOR["gnn"])
    parser.add_argument("--content-prior", type=float, default=scoring.DEFAULT_PRIOR["content"])
    parser.add_argument("--fusion", default="zscore,minmax,rrf")
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS, help="cf,gnn,content,popular;…")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=CACHE)
    args = parser.parse_args()
    args.fusion = args.fusion.split(",")
    args.weights = [tuple(floats(w)) for w in args.weights.split(";")]
    section = {"cf": tune_cf, "gnn": tune_gnn, "prior": tune_prior, "hybrid": tune_hybrid}
    for name in args.data.split(","):
        section[args.section](Bench(name, args.cache), args)


if __name__ == "__main__":
    main()
