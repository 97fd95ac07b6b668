"""Small planted-structure data sets for end-to-end tests: disjoint groups of readers and books."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_planted(
    folder: Path, groups: int = 2, users_per_group: int = 20, books_per_group: int = 15,
    per_user: int = 8, seed: int = 7,
) -> tuple[Path, Path]:  # fmt: skip
    """books.csv and events.csv where user g* reads only books of group g.

    Book external ids are "g{group}-b{n}", users "g{group}-u{n}"; titles and authors carry the
    group too, so content vectors see the same structure.
    """
    rng = np.random.default_rng(seed)
    books = ["external_id,title,authors,year,language,tags"]
    for g in range(groups):
        for b in range(books_per_group):
            books.append(f"g{g}-b{b},Group{g} saga part {b},Author{g},{1950 + 10 * g},eng,topic{g}")
    events = ["user_id,book_id,event,rating,timestamp"]
    t0 = 1_767_225_600
    for g in range(groups):
        popularity = 1.0 / np.arange(1, books_per_group + 1)
        popularity /= popularity.sum()
        for u in range(users_per_group):
            chosen = rng.choice(books_per_group, size=per_user, replace=False, p=popularity)
            for i, b in enumerate(chosen):
                event = ["view", "click", "like", "purchase"][i % 4]
                events.append(f"g{g}-u{u},g{g}-b{b},{event},,{t0 + 60 * (u * per_user + i)}")
                if i % 3 == 0:
                    events.append(f"g{g}-u{u},g{g}-b{b},rate,5,{t0 + 60 * (u * per_user + i) + 1}")
    books_path = folder / "planted_books.csv"
    events_path = folder / "planted_events.csv"
    books_path.write_text("\n".join(books) + "\n")
    events_path.write_text("\n".join(events) + "\n")
    return books_path, events_path
