"""The demo set: users with a planted, explainable taste and a view-click-act funnel."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from bookrec.domain import EVENT_CODES, EVENTS
from bookrec.synthetic.catalog import BookCatalog, read_book_catalog
from bookrec.synthetic.interactions import (
    DEFAULT_END,
    DEFAULT_START,
    SyntheticInteractions,
    UserTaste,
    time_window,
    user_ids,
    with_description,
)
from bookrec.synthetic.sampling import cdf, sample_cdf
from bookrec.synthetic.taste import (
    FAVOURITE_AUTHORS_P,
    FAVOURITE_SERIES_P,
    TasteSpace,
    draw_taste,
)

_VIEW, _CLICK, _LIKE, _RATE, _PURCHASE = (EVENT_CODES[e] for e in EVENTS)

# Match levels of a (user, book) pair: 2 favourite author/series, 1 same era and language,
# 0 anything else.
SOURCE_SHARES = (0.60, 0.25, 0.15)  # favourites, era+language, general popularity
BOOKS_PER_USER_MEDIAN = 20
BOOKS_PER_USER_SIGMA = 0.7
BOOKS_PER_USER_RANGE = (6, 200)
CLICK_P = (0.30, 0.40, 0.60)  # by match level, given a view
AFTER_CLICK_P = {  # by match level, given a click
    _LIKE: (0.12, 0.20, 0.45),
    _RATE: (0.20, 0.25, 0.40),
    _PURCHASE: (0.06, 0.10, 0.25),
}
RATING_P = (  # P(rating 1..5) by match level
    (0.10, 0.18, 0.34, 0.26, 0.12),
    (0.05, 0.10, 0.30, 0.35, 0.20),
    (0.01, 0.03, 0.11, 0.37, 0.48),
)
CLICK_DELAY_MEAN_S = 90.0
FOLLOW_UP_DELAY_MEAN_S = 86_400.0


def generate_demo_interactions(
    catalog: BookCatalog | None = None,
    *,
    n_users: int = 500,
    seed: int = 42,
    start: datetime | int = DEFAULT_START,
    end: datetime | int = DEFAULT_END,
) -> SyntheticInteractions:
    """Interactions of ``n_users`` users ("u00001", ...) with a planted, explainable taste.

    Each user gets a language and an era (drawn in proportion to the catalog's books), 1-3
    favourite authors and 0-2 favourite series of that language (favouring that era and
    popular authors). About 60% of a user's books come from the favourites, 25% from books of
    the era and language and 15% from overall popularity (goodbooks ratings_count).
    Every book is viewed; clicks, likes, ratings and purchases follow with probabilities and
    ratings that are highest for favourites.
    """
    catalog = catalog if catalog is not None else read_book_catalog()
    if n_users < 1:
        raise ValueError("n_users must be at least 1")
    start_s, end_s = time_window(start, end)
    rng = np.random.default_rng(seed)
    space = TasteSpace(catalog)
    users = user_ids(n_users)

    tastes: list[UserTaste] = []
    pair_users: list[np.ndarray] = []
    pair_books: list[np.ndarray] = []
    pair_levels: list[np.ndarray] = []
    for user, user_id in enumerate(users):
        taste, language, era, favourite_books = draw_taste(rng, space, user_id)
        books, levels = _draw_user_books(rng, space, language, era, favourite_books)
        tastes.append(taste)
        pair_users.append(np.full(len(books), user, dtype=np.int32))
        pair_books.append(books.astype(np.int32))
        pair_levels.append(levels)

    user_index, book_index, events, ratings, timestamps = _funnel(
        rng,
        np.concatenate(pair_users),
        np.concatenate(pair_books),
        np.concatenate(pair_levels),
        n_users,
        start_s,
        end_s,
    )
    result = SyntheticInteractions(
        users=users,
        books=catalog.external_ids,
        user_index=user_index,
        book_index=book_index,
        events=events,
        ratings=ratings,
        timestamps=timestamps,
        tastes=tuple(tastes),
    )
    description = _describe_demo(result, np.concatenate(pair_levels), seed, start_s, end_s)
    return with_description(result, description)


def _draw_user_books(
    rng: np.random.Generator,
    space: TasteSpace,
    language: int,
    era: int,
    favourites: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct book indices of one user and their match levels (2, 1 or 0)."""
    low, high = BOOKS_PER_USER_RANGE
    n_books = int(
        np.clip(rng.lognormal(np.log(BOOKS_PER_USER_MEDIAN), BOOKS_PER_USER_SIGMA), low, high)
    )
    from_favourites, from_era, from_anywhere = rng.multinomial(n_books, SOURCE_SHARES)
    weights = np.sqrt(space.popularity[favourites])
    picked = [
        rng.choice(
            favourites,
            size=min(from_favourites, len(favourites)),
            replace=False,
            p=weights / weights.sum(),
        )
    ]
    era_books, era_cdf = space.era_pool(language, era)
    picked.append(era_books[sample_cdf(rng, era_cdf, from_era)])
    picked.append(sample_cdf(rng, space.global_cdf, from_anywhere))
    books = np.unique(np.concatenate(picked))
    levels = np.where(
        (space.language_codes[books] == language) & (space.eras[books] == era), 1, 0
    ).astype(np.int8)
    levels[np.isin(books, favourites, assume_unique=True)] = 2
    return books, levels


def _funnel(
    rng: np.random.Generator,
    pair_users: np.ndarray,
    pair_books: np.ndarray,
    levels: np.ndarray,
    n_users: int,
    start_s: int,
    end_s: int,
) -> tuple[np.ndarray, ...]:
    """Events of every (user, book) pair: a view, maybe a click, then maybe like/rate/buy."""
    span = end_s - start_s
    joined = start_s + (rng.random(n_users) * 0.7 * span).astype(np.int64)
    joined_at = joined[pair_users]
    viewed = joined_at + (rng.random(len(pair_users)) * (end_s - joined_at)).astype(np.int64)
    clicked = rng.random(len(pair_users)) < np.asarray(CLICK_P)[levels]
    clicked_at = viewed + 1 + rng.exponential(CLICK_DELAY_MEAN_S, len(pair_users)).astype(np.int64)

    parts = [(np.arange(len(pair_users)), np.full(len(pair_users), _VIEW), viewed)]
    clicks = np.flatnonzero(clicked)
    parts.append((clicks, np.full(len(clicks), _CLICK), clicked_at[clicks]))
    for event, probabilities in AFTER_CLICK_P.items():
        happens = clicks[rng.random(len(clicks)) < np.asarray(probabilities)[levels[clicks]]]
        delay = 1 + rng.exponential(FOLLOW_UP_DELAY_MEAN_S, len(happens)).astype(np.int64)
        parts.append((happens, np.full(len(happens), event), clicked_at[happens] + delay))

    pair = np.concatenate([p for p, _, _ in parts])
    events = np.concatenate([e for _, e, _ in parts]).astype(np.int8)
    timestamps = np.minimum(np.concatenate([t for _, _, t in parts]), end_s - 1)
    ratings = np.full(len(pair), np.nan, dtype=np.float32)
    rated = np.flatnonzero(events == _RATE)
    ratings[rated] = _draw_ratings(rng, levels[pair[rated]])

    user_index, book_index = pair_users[pair], pair_books[pair]
    order = np.lexsort((events, book_index, user_index, timestamps))
    return (
        user_index[order],
        book_index[order],
        events[order],
        ratings[order],
        timestamps[order],
    )


def _draw_ratings(rng: np.random.Generator, levels: np.ndarray) -> np.ndarray:
    ratings = np.empty(len(levels), dtype=np.float32)
    for level, probabilities in enumerate(RATING_P):
        at_level = np.flatnonzero(levels == level)
        ratings[at_level] = 1 + sample_cdf(rng, cdf(np.asarray(probabilities)), len(at_level))
    return ratings


def _describe_demo(
    result: SyntheticInteractions, pair_levels: np.ndarray, seed: int, start_s: int, end_s: int
) -> str:
    counts = np.bincount(result.events, minlength=len(EVENTS))
    plurals = ("views", "clicks", "likes", "ratings", "purchases")
    mix = ", ".join(f"{count:,} {name}" for count, name in zip(counts, plurals, strict=True))
    favourite_share = float(np.mean(pair_levels == 2)) if len(pair_levels) else 0.0
    rate_rows = np.flatnonzero(result.events == _RATE)
    favourite_rows = np.array(
        [
            result.books[b] in result.tastes[u].book_ids
            for u, b in zip(
                result.user_index[rate_rows].tolist(),
                result.book_index[rate_rows].tolist(),
                strict=True,
            )
        ],
        dtype=bool,
    )
    rated = result.ratings[rate_rows]
    mean_favourite = float(rated[favourite_rows].mean()) if favourite_rows.any() else float("nan")
    mean_other = float(rated[~favourite_rows].mean()) if (~favourite_rows).any() else float("nan")
    favourites, era, anywhere = SOURCE_SHARES
    example = result.tastes[0]
    series = f"; favourite series {', '.join(example.series)}" if example.series else ""
    return "\n".join(
        [
            f"These {len(result):,} interactions of {len(result.users):,} users are SYNTHETIC "
            f"(seed {seed}, {_iso(start_s)} to {_iso(end_s)}); no real person made them.",
            "Each user was given a planted taste: a language and an era, "
            f"1-{len(FAVOURITE_AUTHORS_P)} favourite authors and "
            f"0-{len(FAVOURITE_SERIES_P) - 1} favourite series.",
            f"A user's books were drawn {favourites:.0%} from their favourites, {era:.0%} from "
            f"popular books of their era and language, {anywhere:.0%} from overall popularity "
            f"(goodbooks ratings counts); {favourite_share:.0%} of all user-book pairs are "
            "favourites.",
            f"Every book is viewed; fewer are clicked, liked, rated or bought: {mix}.",
            f"Favourites are rated higher: mean {mean_favourite:.1f} against {mean_other:.1f}.",
            f"Example: {example.user_id} has favourite authors {', '.join(example.authors)}"
            f"{series}; era {example.era}; language {example.language}. "
            "Its recommendations should lean that way.",
        ]
    )


def _iso(epoch_s: int) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%d")
