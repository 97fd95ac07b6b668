"""The quality gate's cost: bookrec train cf and train gnn on 1M interactions (20k users × 10k
books, skewed, seeded) with the gate and with --no-gate, alternating, in one database.

Run by hand: flock -x /tmp/bookrec-bench.lock python benchmarks/bench_gate.py [--rows 1000000]
[--backend sqlite] [--models cf,gnn] [--repeat 1]
Target: the gate (its own phase, plus what holding out pairs changes) ≤ 1.5 × the training
time it guards (the fit phase).
"""

from __future__ import annotations

import argparse

from common import OUT, books_csv, fresh_database, run_bookrec


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--backend", default="sqlite")
    parser.add_argument("--database", default="bookrec_bench_gate")
    parser.add_argument("--models", default="cf,gnn")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    from bookrec.synthetic import write_benchmark_csv

    events = OUT / f"interactions-{args.rows}.csv"
    if not events.exists():
        write_benchmark_csv(events, n_interactions=args.rows, seed=42)
    url = fresh_database(args.backend, args.database)
    run_bookrec(url, "ingest", "books", str(books_csv()), "--skip-embeddings")
    run_bookrec(url, "ingest", "interactions", str(events))
    for model in args.models.split(","):
        run_bookrec(url, "train", model, "--force", "--json")  # something published to compare with
        for _ in range(args.repeat):
            for flag in ("--no-gate", "--gate"):
                result = run_bookrec(url, "train", model, flag, "--json")
                summary = result["json"]
                phases = summary["phases"]
                fit = phases.get("fit") or sum(
                    v for k, v in phases.items() if k not in ("load", "filter", "write", "gate")
                )
                gate = summary.get("gate") or {}
                gate_seconds = phases.get("gate", 0.0)
                print(
                    f"{model} {flag:9s} wall {result['wall']:.1f}s  fit {fit:.1f}s"
                    f"  gate {gate_seconds:.1f}s ({gate_seconds / fit:.2f}x fit)"
                    f"  held-out nDCG@10 candidate {gate.get('candidate')} popular"
                    f" {gate.get('popular')} published {gate.get('published')}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
