"""nDCG@10 of every strategy and of item-item EASE on the realistic rating sets (issue #14).

    python benchmarks/bench_quality.py [--data /work/data/rs] [--presets a,b] [--seeds 1,2,3]
        [--no-ease] [--label NAME] [--save FILE.json] [-- EXTRA EVALUATE OPTIONS]

For each preset × seed: a fresh SQLite database under /tmp, `bookrec ingest books`,
`ingest interactions`, `bookrec evaluate --split random --test-fraction 0.25 --k 10 --json`
(plus the extra options, e.g. `-- --epochs 3`), and EASE (benchmarks/ease.py, λ tuned on a grid)
on the identical split: the same stored interactions through bookrec's own make_holdout with
evaluate's seed and weights. Prints one row per set with the seconds each part took.
Make the data first: benchmarks/make_rating_sets.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from common import run_bookrec
from ease import ease_on_holdout

STRATEGIES = ("popular", "cf", "gnn", "content", "hybrid")
PROTOCOL = ("--split", "random", "--test-fraction", "0.25", "--k", "10", "--seed", "42")


def measure(folder: Path, extra: list[str], with_ease: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix="bookrec-quality-") as scratch:
        url = f"sqlite:///{scratch}/q.db"
        run_bookrec(url, "db", "init")
        run_bookrec(url, "ingest", "books", str(folder / "books.csv"))
        run_bookrec(url, "ingest", "interactions", str(folder / "ratings.csv"))
        evaluated = run_bookrec(url, "evaluate", *PROTOCOL, *extra, "--json")
        report = evaluated["json"]
        row = {
            "set": folder.name,
            "ndcg": {r["strategy"]: r["ndcg"] for r in report["results"]},
            "train_seconds": report["protocol"]["train_seconds"],
            "evaluate_wall": evaluated["wall"],
        }
        if with_ease:
            row["ease"] = _ease(url)
    return row


def _ease(url: str) -> dict:
    from bookrec.algorithms.evaluation import make_holdout
    from bookrec.settings import Settings
    from bookrec.storage import open_repository

    started = time.perf_counter()
    repo = open_repository(url)
    try:
        interactions, books = repo.load_interactions(), repo.book_texts()
    finally:
        repo.close()
    held = make_holdout(
        interactions, books, split="random", test_fraction=0.25, seed=42,
        weights=Settings.defaults().weights.scheme(),
    )  # fmt: skip
    result = ease_on_holdout(held, k=10)
    return {**result["best"], "total_seconds": time.perf_counter() - started}


def print_table(rows: list[dict], label: str) -> None:
    print(f"\n{label}: nDCG@10 (random split 0.25, k 10, seed 42)")
    print(
        "| set | popular | cf | gnn | content | hybrid | EASE (λ) | gnn/popular | gnn s | eval s |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        n = row["ndcg"]
        ease = f"{row['ease']['ndcg']:.3f} ({row['ease']['lambda']:g})" if "ease" in row else "–"
        cells = [f"{n[s]:.3f}" if s in n else "–" for s in STRATEGIES]
        ratio = n["gnn"] / n["popular"] if n.get("popular") and "gnn" in n else float("nan")
        gnn_s = row["train_seconds"].get("gnn", float("nan"))
        print(f"| {row['set']} | {' | '.join(cells)} | {ease} | {ratio:.2f} | {gnn_s:.1f} "
              f"| {row['evaluate_wall']:.1f} |")  # fmt: skip


def main() -> None:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/work/data/rs"))
    parser.add_argument("--presets", default="ml100k-like,sparse-like,large-like")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--no-ease", action="store_true")
    parser.add_argument("--label", default="defaults" + (" " + " ".join(extra) if extra else ""))
    parser.add_argument("--save", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    rows = []
    for preset in args.presets.split(","):
        for seed in args.seeds.split(","):
            folder = args.data / f"{preset}-{seed}"
            rows.append(measure(folder, extra, not args.no_ease))
            print(json.dumps(rows[-1]), flush=True)
    print_table(rows, args.label)
    if args.save:
        args.save.write_text(json.dumps({"label": args.label, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
