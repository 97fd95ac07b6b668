"""Generated interactions as the generic interactions CSV that ``bookrec ingest`` reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bookrec.domain import EVENTS
from bookrec.synthetic.benchmark import generate_benchmark_interactions
from bookrec.synthetic.interactions import SyntheticInteractions

CSV_HEADER = "user_id,book_id,event,rating,timestamp"


def write_interactions_csv(
    path: str | Path, interactions: SyntheticInteractions, *, chunk_rows: int = 200_000
) -> int:
    """Write the generic interactions CSV (ISO 8601 UTC timestamps); returns the row count."""
    users = list(interactions.users)
    books = list(interactions.books)
    ratings_text = ["", "1", "2", "3", "4", "5"]
    with Path(path).open("w", encoding="utf-8", newline="") as out:
        out.write(CSV_HEADER + "\n")
        for begin in range(0, len(interactions), chunk_rows):
            window = slice(begin, begin + chunk_rows)
            ratings = np.nan_to_num(interactions.ratings[window], nan=0.0).astype(np.int64)
            times = np.datetime_as_string(
                interactions.timestamps[window].astype("datetime64[s]"), unit="s"
            )
            out.write(
                "".join(
                    [
                        f"{users[u]},{books[b]},{EVENTS[e]},{ratings_text[r]},{t}Z\n"
                        for u, b, e, r, t in zip(
                            interactions.user_index[window].tolist(),
                            interactions.book_index[window].tolist(),
                            interactions.events[window].tolist(),
                            ratings.tolist(),
                            times.tolist(),
                            strict=True,
                        )
                    ]
                )
            )
    return len(interactions)


def write_benchmark_csv(path: str | Path, **kwargs: object) -> SyntheticInteractions:
    """Generate benchmark interactions (kwargs of generate_benchmark_interactions) to CSV."""
    interactions = generate_benchmark_interactions(**kwargs)  # type: ignore[arg-type]
    write_interactions_csv(path, interactions)
    return interactions
