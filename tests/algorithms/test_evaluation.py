import json
import math

import numpy as np
import pytest

from bookrec.algorithms.evaluation import make_holdout
from bookrec.domain import EVENT_CODES, BookText, InteractionArrays
from bookrec.errors import InputError
from bookrec.models import STRATEGIES
from bookrec.models.evaluate import evaluate
from bookrec.results import METRICS, EvaluationReport
from bookrec.settings import Settings
from bookrec.synthetic import generate_benchmark_interactions

VIEW, RATE = EVENT_CODES["view"], EVENT_CODES["rate"]
N_GROUPS, N_BOOKS = 4, 200
# Small and fast, the structure of train gnn's defaults otherwise; workers=1 for determinism.
SETTINGS = Settings.defaults().with_overrides(
    "gnn", dim=64, walk_length=20, walks_per_node=5, workers=1
)


def hybrid_settings(**weights: float) -> Settings:
    return SETTINGS.with_overrides("hybrid", **weights)


def arrays(rows: list[tuple[int, int, int, float, int]]) -> InteractionArrays:
    """(user, book, event, rating, time) rows as InteractionArrays."""
    users, books, events, ratings, times = zip(*rows, strict=True)
    return InteractionArrays(
        user_ids=np.array(users, dtype=np.int64),
        book_ids=np.array(books, dtype=np.int64),
        events=np.array(events, dtype=np.int8),
        ratings=np.array(ratings, dtype=np.float32),
        timestamps=np.array(times, dtype=np.int64),
    )


def book(book_id: int, title: str = "", authors: str | None = None) -> BookText:
    return BookText(book_id, title or f"Book {book_id}", authors, None, 2000, "eng", [])


def planted(n_interactions: int = 6_000, seed: int = 3) -> tuple[InteractionArrays, list]:
    """300 users and 200 books in 4 planted groups (80% of rows inside the user's group); the
    books' titles and authors name their group."""
    data = generate_benchmark_interactions(
        n_users=300, n_books=N_BOOKS, n_interactions=n_interactions, clusters=N_GROUPS, seed=seed
    )
    interactions = InteractionArrays(
        user_ids=data.user_index.astype(np.int64) + 1,
        book_ids=data.book_index.astype(np.int64) + 1,
        events=data.events,
        ratings=data.ratings,
        timestamps=data.timestamps,
    )
    books = [
        book(i + 1, f"Chronicles of realm {i % N_GROUPS} volume {i}", f"Author {i % N_GROUPS}")
        for i in range(N_BOOKS)
    ]
    return interactions, books


@pytest.fixture(scope="module")
def planted_report() -> EvaluationReport:
    interactions, books = planted()
    return evaluate(interactions, books, SETTINGS, seed=42)


def test_models_beat_popularity_on_planted_structure(planted_report):
    ndcg = {r.strategy: r.metrics["ndcg"] for r in planted_report.results}
    # Popularity alone ignores the groups (nDCG@10 ~0.14); the models find them (~0.35).
    for strategy in ("cf", "gnn", "content", "hybrid"):
        assert ndcg[strategy] >= ndcg["popular"] + 0.10, (strategy, ndcg)
        assert ndcg[strategy] >= 1.8 * ndcg["popular"], (strategy, ndcg)


def test_report_holds_every_metric_of_every_strategy(planted_report):
    assert [r.strategy for r in planted_report.results] == list(STRATEGIES)
    rows = planted_report.rows()
    for row in rows:
        assert set(row) == set(planted_report.TABLE_COLUMNS)
        for metric in METRICS:
            assert 0.0 <= row[metric] <= 1.0
        assert row["users"] == planted_report.protocol["evaluated_users"] > 250
        assert row["users_served"] == row["users"]
        assert row["train_seconds"] >= 0 and row["score_seconds"] > 0
    assert rows[0]["coverage"] < rows[1]["coverage"]  # popular lists are all alike
    data = json.loads(json.dumps(planted_report.to_dict()))
    assert data["k"] == 10 and data["protocol"]["method"] == "random"
    assert set(data["protocol"]["train_seconds"]) == {"cf", "gnn", "content"}


def test_evaluation_is_deterministic_for_a_seed(planted_report):
    interactions, books = planted()
    again = evaluate(interactions, books, SETTINGS, seed=42)

    def without_times(report: EvaluationReport) -> list[dict]:
        return [
            {key: value for key, value in row.items() if not key.endswith("seconds")}
            for row in report.rows()
        ]

    assert without_times(again) == without_times(planted_report)


def test_users_a_strategy_cannot_serve_count_as_misses():
    interactions, books = planted(3_000)
    # Ten light readers with two books each: leave-last keeps one in training, and the cf
    # k-core (at least 2 per user) drops them.
    light = [
        (1_000 + u, 1 + (u + b) % N_BOOKS, VIEW, math.nan, 1_767_225_600 + 10 * u + b)
        for u in range(10)
        for b in range(2)
    ]
    extra = arrays(light)
    combined = InteractionArrays(
        *(
            np.concatenate([getattr(interactions, f), getattr(extra, f)])
            for f in ("user_ids", "book_ids", "events", "ratings", "timestamps")
        )
    )
    report = evaluate(
        combined,
        books,
        hybrid_settings(cf=1.0, gnn=0.0, content=0.0, popular=0.1),
        split="leave-last",
        strategies=("popular", "cf", "hybrid"),
    )
    popular, cf, hybrid = report.results
    assert cf.users == popular.users == hybrid.users
    assert cf.users_served <= cf.users - 10
    assert hybrid.users_served == hybrid.users  # falls back to popularity
    assert cf.metrics["hit_rate"] <= cf.users_served / cf.users
    assert set(report.protocol["train_seconds"]) == {"cf"}


def test_relevant_items_are_positive_test_pairs_not_disliked_and_unseen():
    t = 1_000
    data = arrays(
        [
            (1, 1, VIEW, math.nan, t + 1),
            (1, 2, VIEW, math.nan, t + 2),
            (1, 3, VIEW, math.nan, t + 3),  # held out: relevant
            (2, 1, VIEW, math.nan, t + 1),
            (2, 2, VIEW, math.nan, t + 2),
            (2, 3, VIEW, math.nan, t + 5),  # held out, viewed but then rated 1★: not relevant
            (2, 3, RATE, 1.0, t + 6),
            (3, 1, VIEW, math.nan, t + 1),
            (3, 4, RATE, 2.0, t + 4),  # held out, a 2★ rating alone weighs 0: not relevant
            (4, 1, VIEW, math.nan, t),
            (4, 3, RATE, 1.0, t + 2),  # held out, re-rated 5★: relevant
            (4, 3, RATE, 5.0, t + 3),
            (5, 2, VIEW, math.nan, t),  # a single book: stays in training, not ranked
        ]
    )
    held = make_holdout(data, [book(i) for i in range(1, 6)], split="leave-last")
    assert held.catalogue.tolist() == [1, 2, 3, 4, 5]
    assert held.users.tolist() == [1, 2, 3, 4]
    assert held.relevant.toarray().tolist() == [
        [0, 0, 1, 0, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 1, 0, 0],
    ]
    assert held.exclude.toarray().tolist() == [
        [1, 1, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [1, 0, 0, 0, 0],
        [1, 0, 0, 0, 0],
    ]


def test_temporal_split_leaves_cold_start_users_out():
    data = arrays(
        [
            (1, 1, VIEW, math.nan, 1),
            (1, 2, VIEW, math.nan, 2),
            (1, 3, VIEW, math.nan, 9),
            (2, 1, VIEW, math.nan, 3),
            (2, 2, VIEW, math.nan, 4),
            (3, 3, VIEW, math.nan, 10),  # only after the cut: cold start
        ]
    )
    held = make_holdout(data, split="temporal", test_fraction=0.34)
    assert held.users.tolist() == [1]
    assert held.summary.cold_start_users.tolist() == [3]
    assert held.relevant.toarray().tolist() == [[0, 0, 1]]


def test_bad_arguments_are_refused():
    data = arrays([(1, 1, VIEW, math.nan, 1), (1, 2, VIEW, math.nan, 2)])
    with pytest.raises(InputError, match="unknown strategies"):
        evaluate(data, [], SETTINGS, strategies=("cf", "magic"))
    with pytest.raises(InputError, match="k must be"):
        evaluate(data, [], SETTINGS, k=0)
    with pytest.raises(InputError, match="unknown split 'sideways'"):
        evaluate(data, [], SETTINGS, split="sideways")
    with pytest.raises(InputError, match="test_fraction"):
        evaluate(data, [], SETTINGS, test_fraction=1.0)
    with pytest.raises(InputError, match="no user with both"):
        evaluate(arrays([(1, 1, VIEW, math.nan, 1)]), [], SETTINGS, strategies=("popular",))


def test_a_bug_in_a_model_is_raised_not_skipped(monkeypatch):
    # Only "the data cannot support this model" skips a model; anything else is a bug.
    def broken(*_args, **_kwargs):
        raise ValueError("a bug")

    monkeypatch.setattr("bookrec.algorithms.cf.fit_als", broken)
    interactions, books = planted(2_000)
    with pytest.raises(ValueError, match="a bug"):
        evaluate(interactions, books, SETTINGS, strategies=("cf",))


def test_a_model_the_data_cannot_support_is_skipped_with_its_reason():
    interactions, books = planted(2_000)
    settings = hybrid_settings(cf=1.0, gnn=0.0, content=0.0, popular=0.0)
    report = evaluate(
        interactions,
        books,
        settings.with_overrides("cf", min_interactions=1_000),
        strategies=("cf", "hybrid"),
    )
    cf, hybrid = report.results
    assert "Not enough users/items" in report.protocol["skipped_models"]["cf"]
    assert cf.users_served == 0 and cf.metrics["ndcg"] == 0.0
    assert hybrid.users_served == hybrid.users > 0  # popularity serves everyone
    assert hybrid.metrics["ndcg"] > 0.05
