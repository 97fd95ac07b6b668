"""What a gnn setting costs: `bookrec train gnn` at 1M ratings of the realistic generator, with
walk tokens, skip-gram seconds and the extrapolation to 10M interactions by tokens (issue #16:
train gnn at 10M ≤ 300 s).

    python benchmarks/bench_gnn_cost.py [--users 20000] [--books 10000] [--ratings 1000000]
        "LABEL=--epochs 3 --walks-per-node 2" "defaults=" ...

Each candidate is one `train gnn --json` on the same SQLite database (made once under /tmp);
wrap the run in `flock -x /tmp/bookrec-bench.lock` so no other benchmark times at once.
Extrapolation: the skip-gram's tokens/s of this run times the 10M tokens (walks start at every
node, so tokens scale with users + books; at 10M, 300k users + 200k books as issue #16 measured)
plus the non-skip-gram phases scaled by interactions.
"""

from __future__ import annotations

import argparse
import json
import shlex
import tempfile
from pathlib import Path

from common import run_bookrec

from bookrec.synthetic.rating_sets import RatingSetSpec, generate_rating_set

NODES_AT_10M = 300_000 + 200_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--books", type=int, default=10_000)
    parser.add_argument("--ratings", type=int, default=1_000_000)
    parser.add_argument("candidates", nargs="+", help='"label=train gnn options"')
    args = parser.parse_args()
    spec = RatingSetSpec("cost", args.users, args.books, args.ratings, "placeholder")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bookrec-gnn-cost-") as scratch:
        books, ratings = generate_rating_set(spec, seed=1).write(Path(scratch) / "set")
        url = f"sqlite:///{scratch}/cost.db"
        run_bookrec(url, "db", "init")
        run_bookrec(url, "ingest", "books", str(books))
        run_bookrec(url, "ingest", "interactions", str(ratings))
        for candidate in args.candidates:
            label, _, options = candidate.partition("=")
            run = run_bookrec(url, "train", "gnn", *shlex.split(options), "--json")
            report = run["json"]
            phases = report["phases"]
            skipgram = sum(v for k, v in phases.items() if k.endswith("skipgram"))
            rate = report.get("skipgram_tokens_per_second", 0)
            tokens = round(rate * skipgram)
            nodes = args.users + args.books
            tokens_10m = tokens * NODES_AT_10M / nodes
            other = sum(v for k, v in phases.items() if not k.endswith("skipgram"))
            at_10m = tokens_10m / max(rate, 1) + other * 10_000_000 / args.ratings
            rows.append((label, options, run["wall"], skipgram, tokens, rate, at_10m))
            print(json.dumps({"label": label, "options": options, "wall": run["wall"],
                              "phases": phases}), flush=True)  # fmt: skip
    print(f"\ntrain gnn at {args.ratings:,} ratings ({args.users:,} users, {args.books:,} books)")
    print("| candidate | options | wall s | skip-gram s | tokens | tokens/s | ≈ 10M s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for label, options, wall, skipgram, tokens, rate, at_10m in rows:
        print(f"| {label} | `{options}` | {wall:.1f} | {skipgram:.1f} | {tokens / 1e6:.2f}M "
              f"| {rate / 1e3:.0f}k | {at_10m:.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
