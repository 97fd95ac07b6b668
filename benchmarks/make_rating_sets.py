"""Write the realistic rating sets (bookrec.synthetic.rating_sets) that quality is measured on.

    python benchmarks/make_rating_sets.py [--out /work/data/rs] [--presets a,b] [--seeds 1,2,3]

Each preset × seed goes to OUT/<preset>-<seed>/{books.csv,ratings.csv}; see OUT/README.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from bookrec.synthetic.rating_sets import PRESETS, generate_rating_set


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/work/data/rs"))
    parser.add_argument("--presets", default=",".join(PRESETS))
    parser.add_argument("--seeds", default="1,2,3")
    args = parser.parse_args()
    for preset in args.presets.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            started = time.perf_counter()
            rating_set = generate_rating_set(preset, seed)
            books, _ = rating_set.write(args.out / f"{preset}-{seed}")
            per_user = np.bincount(rating_set.user_index)
            per_book = np.bincount(rating_set.book_index, minlength=rating_set.spec.n_books)
            print(
                f"{books.parent}: {len(rating_set):,} ratings, users {len(per_user):,} "
                f"(min {per_user.min()}, median {np.median(per_user):.0f}, max {per_user.max()}),"
                f" books {len(per_book):,} ({np.count_nonzero(per_book == 0):,} unrated, "
                f"max {per_book.max()}), stars 1-5 "
                f"{np.round(np.bincount(rating_set.stars, minlength=6)[1:] / len(rating_set), 2)}"
                f" in {time.perf_counter() - started:.1f} s"
            )


if __name__ == "__main__":
    main()
