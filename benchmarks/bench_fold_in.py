"""Fold-in (issue 15): quality against a full retrain, and cost against the full `train cf`.

quality (--quality DIR, a folder of books.csv + ratings.csv such as /work/data/rs/<preset>):
20% of the users keep only the first 60% of their interactions in the base data; the next 20%
arrive after the base run (folded in) and their last 20% are the test set. The base run is a
full `train cf` + `train gnn` on the base data, which also lacks every interaction of 50 "new"
books of middling popularity (they arrive with the later data). Then `train cf --fold-in`,
`train gnn --fold-in`, and a full retrain of both on the same data. Printed: nDCG@10 (test
pairs rated 4-5★, seen books excluded) of the 20% users with their base vectors, folded-in
vectors and retrained vectors; implicit's recalculate_user vs the folded-in vectors (cosine);
for the new books, nDCG@10 of their gnn `similar` lists (truth: the retrain's top 10) for the
two-step-walk mean (weighted, what fold-in does) and an unweighted one, beside a second full
retrain of another seed (the retrain's own noise).

cost (--sizes 1e6,3e6[,1e7]): N interactions (N/33 users × N/50 books, the benchmark
generator), a full `train cf`, then 1,000 users' new interactions (half new users, half
existing, 20 each) and 100 new books read by 20 of them, then `train cf --fold-in`; each timed
command runs under `flock -x /tmp/bookrec-bench.lock` (its wall time from /usr/bin/time, not
counting the wait for the lock).

Run by hand: python benchmarks/bench_fold_in.py --quality /work/data/rs/ml100k-like-1
python benchmarks/bench_fold_in.py --sizes 1e6,3e6 --backends sqlite,postgresql
Targets: fold-in nDCG@10 >= 0.95x the retrain's; cosine >= 0.999; at 10M, fold-in <= 5 s and
the full train cf >= 10x that.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import common
import numpy as np
from common import BOOKREC, fresh_database

LOCK = "/tmp/bookrec-bench.lock"
OUT = common.OUT = Path(os.environ.get("BOOKREC_BENCH_OUT", "/tmp/bookrec-bench-fold-in"))


def timed(url: str, *args: str) -> dict:
    """bookrec under flock and /usr/bin/time: its own wall seconds and JSON output."""
    env = {**os.environ, "BOOKREC_DATABASE_URL": url}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    timer = shutil.which("time") or "/usr/bin/time"
    proc = subprocess.run(
        ["flock", "-x", LOCK, timer, "-v", *BOOKREC, *args],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"bookrec {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", proc.stderr)
    parts = [float(p) for p in wall.group(1).split(":")]
    seconds = sum(p * 60**i for i, p in enumerate(reversed(parts)))
    data = json.loads(proc.stdout) if "--json" in args else {}
    return {"wall": seconds, "json": data}


def run(url: str, *args: str) -> None:
    env = {**os.environ, "BOOKREC_DATABASE_URL": url}
    proc = subprocess.run([*BOOKREC, *args], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"bookrec {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")


# -- cost -------------------------------------------------------------------------------------
def _reused(backend: str, name: str) -> str | None:
    """The URL of a database of that name loaded by an earlier run (base data only), if any."""
    name = os.environ.get("BOOKREC_BENCH_PREFIX", "") + name
    if backend == "sqlite":
        path = OUT / f"{name}.db"
        return f"sqlite:///{path}" if path.exists() else None
    import psycopg

    with psycopg.connect(common.POSTGRES_SERVER, autocommit=True) as admin:
        found = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return common.POSTGRES_SERVER.rsplit("/", 1)[0] + "/" + name if found else None


def _timed_pair(url: str, later: Path) -> tuple[dict, dict]:
    """Under one hold of the benchmark lock: a full `train cf`, the later interactions
    (untimed), and `train cf --fold-in`, each under /usr/bin/time."""
    timer = shutil.which("time") or "/usr/bin/time"
    bookrec = " ".join(BOOKREC)
    files = {k: OUT / f"pair-{k}" for k in ("full.json", "full.err", "fold.json", "fold.err")}
    script = (
        # The gate aside: the cost of the fit and write a fold-in replaces.
        f"{timer} -v {bookrec} train cf --no-gate --json > {files['full.json']}"
        f" 2> {files['full.err']}"
        f" && {bookrec} ingest interactions {later} > /dev/null"
        f" && {timer} -v {bookrec} train cf --fold-in --json > {files['fold.json']}"
        f" 2> {files['fold.err']}"
    )
    env = {**os.environ, "BOOKREC_DATABASE_URL": url}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    proc = subprocess.run(["flock", "-x", LOCK, "sh", "-c", script], env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(
            f"the timed pair failed: {files['full.err'].read_text()[-2000:]}"
            f"{files['fold.err'].read_text()[-2000:] if files['fold.err'].exists() else ''}"
        )
    return tuple(
        {"wall": _elapsed(files[f"{k}.err"].read_text()),
         "json": json.loads(files[f"{k}.json"].read_text())}
        for k in ("full", "fold")
    )  # fmt: skip


def _elapsed(time_output: str) -> float:
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", time_output)
    parts = [float(p) for p in wall.group(1).split(":")]
    return sum(p * 60**i for i, p in enumerate(reversed(parts)))


def cost(
    sizes: list[float], backends: list[str], new_users: int, new_books: int, reuse: bool
) -> None:
    from bookrec.synthetic import write_benchmark_csv

    OUT.mkdir(exist_ok=True)
    print(f"load average {os.getloadavg()[0]:.1f}")
    for size in sizes:
        n = int(size)
        n_users, n_books = max(1000, n // 33), max(1000, n // 50)
        events = OUT / f"fold-in-base-{n}.csv"
        books = OUT / f"fold-in-books-{n_books}.csv"
        later = OUT / f"fold-in-later-{n}.csv"
        if not events.exists():
            write_benchmark_csv(events, n_users=n_users, n_books=n_books, n_interactions=n, seed=42)
        with books.open("w") as out:
            out.write("external_id,title\n")
            out.writelines(f"{i},Book {i}\n" for i in range(1, n_books + 1))
            out.writelines(f"new-{i},New book {i}\n" for i in range(new_books))
        _later_events(later, n_users, n_books, new_users, new_books)
        for backend in backends:
            name = f"bookrec_bench_fold_in_{backend}_{n}"
            url = _reused(backend, name) if reuse else None
            if url is not None:
                run(url, "db", "upgrade")  # loaded by an older bookrec, perhaps
            else:
                url = fresh_database(backend, name)
                run(url, "ingest", "books", str(books), "--skip-embeddings")
                run(url, "ingest", "interactions", str(events))
            full, fold = _timed_pair(url, later)
            summary = fold["json"]
            phases = ", ".join(f"{k} {v:.2f}" for k, v in summary["phases"].items())
            print(
                f"{n:>11,} {backend:10s} full train cf {full['wall']:6.1f} s;"
                f" fold-in {fold['wall']:5.2f} s ({summary['users']:,} users,"
                f" {summary['books']:,} books; phases {phases}; {summary['seconds']:.2f} s inside)"
                f"; ratio {full['wall'] / fold['wall']:.1f}x",
                flush=True,
            )


def _later_events(path: Path, n_users: int, n_books: int, users: int, books: int) -> None:
    """`users` users (half new, half existing) with 20 interactions each on popular-ish
    books, and 20 readers for each of the `books` new books."""
    rng = np.random.default_rng(7)
    t = 1_800_000_000  # after the generator's window
    weights = 1.0 / (np.arange(1, n_books + 1) + 5.0)
    weights /= weights.sum()
    existing = rng.choice(np.arange(1, n_users + 1), size=users - users // 2, replace=False)
    names = [f"fold-new-{i}" for i in range(users // 2)] + [f"u{u}" for u in existing]
    lines = ["user_id,book_id,event,rating,timestamp"]
    events = ("view", "click", "like", "purchase")
    for i, name in enumerate(names):
        for k, book in enumerate(rng.choice(n_books, size=20, replace=False, p=weights) + 1):
            lines.append(f"{name},{book},{events[k % 4]},,{t + i * 100 + k}")
    for b in range(books):
        for k, reader in enumerate(rng.choice(len(names), size=20, replace=False)):
            lines.append(f"{names[reader]},new-{b},like,,{t + 1_000_000 + b * 100 + k}")
    path.write_text("\n".join(lines) + "\n")


# -- quality ----------------------------------------------------------------------------------
def quality(folder: Path, scratch: Path) -> None:
    import csv

    import bookrec
    from bookrec.readers.timestamps import iso_column_seconds

    scratch.mkdir(parents=True, exist_ok=True)
    with (folder / "ratings.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    users = np.array([r["user_id"] for r in rows])
    books = np.array([r["book_id"] for r in rows])
    times = iso_column_seconds([r["timestamp"] for r in rows])
    ratings = np.array([float(r["rating"] or 0) for r in rows])
    rng = np.random.default_rng(0)
    distinct = np.unique(users)
    chosen = set(rng.choice(distinct, size=len(distinct) // 5, replace=False).tolist())
    part = np.zeros(len(rows), dtype=np.int8)  # 0 base, 1 later (fold-in), 2 test
    for user in chosen:
        at = np.flatnonzero(users == user)
        at = at[np.argsort(times[at], kind="stable")]
        n = len(at)
        part[at[int(n * 0.6) : int(n * 0.8)]] = 1
        part[at[int(n * 0.8) :]] = 2
    counts = {b: c for b, c in zip(*np.unique(books, return_counts=True), strict=True)}
    middling = sorted(b for b, c in counts.items() if 20 <= c <= 60)
    new_books = set(rng.choice(middling, size=min(50, len(middling)), replace=False).tolist())
    is_new_book = np.isin(books, list(new_books))
    part[(part == 0) & is_new_book] = 1
    header = "user_id,book_id,event,rating,timestamp\n"

    def write(name: str, mask: np.ndarray) -> Path:
        path = scratch / name
        with path.open("w") as out:
            out.write(header)
            out.writelines(
                f"{rows[i]['user_id']},{rows[i]['book_id']},{rows[i]['event']},"
                f"{rows[i]['rating']},{rows[i]['timestamp']}\n"
                for i in np.flatnonzero(mask)
            )
        return path

    base, later = write("base.csv", part == 0), write("later.csv", part == 1)
    db_path = scratch / "quality.db"
    for leftover in scratch.glob("quality.db*"):
        leftover.unlink()
    test = {(users[i], books[i]) for i in np.flatnonzero((part == 2) & (ratings >= 4))}
    with bookrec.open(f"sqlite:///{db_path}", create=True) as db:
        db.init()
        db.ingest_books(folder / "books.csv", embed=False)
        db.ingest_interactions(base)
        db.train_cf()
        db.train_gnn()
        base_ndcg = _ndcg(db, chosen, test)
        db.ingest_interactions(later)
        folded = db.fold_in_cf()
        gnn_folded = db.fold_in_gnn()
        fold_ndcg = _ndcg(db, chosen, test)
        cosine = _against_implicit(db, chosen)
        new_ids = _book_ids(db, new_books)
        fold_gnn = _vectors(db, "gnn")
        unweighted = _unweighted_walk_mean(db, new_ids)
        co_read = _co_read(db, new_ids, fold_gnn[0])
        db.train_cf()
        db.train_gnn()
        full_ndcg = _ndcg(db, chosen, test)
        full_gnn = _vectors(db, "gnn")
        db.train_gnn(seed=7)
        other_gnn = _vectors(db, "gnn")
    print(
        f"{folder.name}: {len(chosen)} users folded in ({folded.users} vectors,"
        f" {folded.books} new books cf, {gnn_folded.books} gnn); nDCG@10 on their test pairs:"
        f" base vectors {base_ndcg:.4f}, folded-in {fold_ndcg:.4f}, full retrain"
        f" {full_ndcg:.4f} -> fold-in / retrain = {fold_ndcg / full_ndcg:.3f};"
        f" cosine to implicit's recalculate_user: min {cosine.min():.5f}"
    )
    for name, truth in (
        ("the retrain's top 10", _similar_lists(full_gnn, new_ids)),
        ("the 10 nearest by reader-set cosine", co_read),
    ):
        print(
            f"{folder.name}: gnn similar@10 of {len(new_ids)} new books, nDCG against {name}:"
            f" two-step weighted mean (fold-in) {_agreement(fold_gnn, new_ids, truth):.3f},"
            f" unweighted {_agreement(unweighted, new_ids, truth):.3f},"
            f" full retrain {_agreement(full_gnn, new_ids, truth):.3f},"
            f" another full retrain (seed 7) {_agreement(other_gnn, new_ids, truth):.3f}"
        )


def _ndcg(db, chosen: set[str], test: set[tuple[str, str]]) -> float:
    from bookrec.algorithms.metrics import ndcg_at_k

    repo = db.repo
    book_ids, book_vectors = repo.load_vectors("cf", "books")
    user_ids, user_vectors = repo.load_vectors("cf", "users")
    external = {s.id: s.external_id for s in repo.book_summaries(book_ids.tolist())}
    interactions = repo.load_interactions()
    seen: dict[int, set[int]] = {}
    for u, b in zip(interactions.user_ids.tolist(), interactions.book_ids.tolist(), strict=True):
        seen.setdefault(u, set()).add(b)
    column = {b: i for i, b in enumerate(book_ids.tolist())}
    scores, relevant = [], []
    for user in sorted(chosen):
        uid = repo.find_user(user)
        at = np.flatnonzero(user_ids == uid)
        wanted = [column[b] for b in book_ids.tolist() if (user, external[b]) in test]
        if not wanted:
            continue
        s = book_vectors @ user_vectors[at[0]] if len(at) else np.zeros(len(book_ids))
        for b in seen.get(uid, ()):
            if b in column:
                s[column[b]] = -np.inf
        scores.append(np.argsort(-s, kind="stable")[:10])
        relevant.append(np.array(sorted(wanted)))
    return float(np.mean(ndcg_at_k(np.array(scores), relevant)))


def _against_implicit(db, chosen: set[str]) -> np.ndarray:
    from implicit.cpu.als import AlternatingLeastSquares

    from bookrec.algorithms.matrix import WeightScheme, build_matrix

    repo = db.repo
    base = repo.latest_run("cf")
    book_ids, book_vectors = repo.load_vectors("cf", "books")
    user_ids, user_vectors = repo.load_vectors("cf", "users")
    als = AlternatingLeastSquares(
        factors=book_vectors.shape[1], regularization=base.parameters["regularization_used"],
        alpha=base.parameters["alpha"], dtype=np.float32,
    )  # fmt: skip
    als.item_factors = np.array(book_vectors)
    als.user_factors = np.zeros((1, book_vectors.shape[1]), np.float32)
    cosines = []
    for user in sorted(chosen)[:50]:
        uid = repo.find_user(user)
        at = np.flatnonzero(user_ids == uid)
        if not len(at):
            continue
        rows = build_matrix(
            repo.load_interactions(uid), WeightScheme(), user_ids=np.array([uid]),
            book_ids=book_ids,
        )  # fmt: skip
        expected = als.recalculate_user(0, rows.matrix).ravel()
        got = user_vectors[at[0]]
        cosines.append(got @ expected / (np.linalg.norm(got) * np.linalg.norm(expected)))
    return np.array(cosines)


def _book_ids(db, external: set[str]) -> np.ndarray:
    return np.array(sorted(db.repo.find_book(b) for b in external), dtype=np.int64)


def _vectors(db, family: str) -> tuple[np.ndarray, np.ndarray]:
    ids, vectors = db.repo.load_vectors(family, "books")
    return ids.copy(), vectors.copy()


def _unweighted_walk_mean(db, new_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The fold-in's gnn vectors with every confidence replaced by 1 (the alternative)."""
    import scipy.sparse as sp

    from bookrec.algorithms.foldin import neighbour_mean
    from bookrec.algorithms.matrix import WeightScheme, build_matrix

    repo = db.repo
    ids, vectors = _vectors(db, "gnn")
    old = ~np.isin(ids, new_ids)
    max_id = repo.counts()["max_interaction_id"]
    book_rows = repo.interactions_of("books", new_ids, max_id)
    readers = np.unique(book_rows.user_ids.astype(np.int64))
    reader_rows = repo.interactions_of("users", readers, max_id)
    scheme = WeightScheme()
    new = build_matrix(book_rows, scheme, user_ids=readers, book_ids=new_ids)
    known = build_matrix(reader_rows, scheme, user_ids=readers, book_ids=ids[old])
    ones = [sp.csr_matrix((np.ones_like(m.data), m.indices, m.indptr), m.shape)
            for m in (new.matrix.T.tocsr(), known.matrix)]  # fmt: skip
    means = neighbour_mean(ones[0], ones[1], vectors[old])
    out = vectors.copy()
    out[np.searchsorted(ids, new_ids)] = means
    return ids, out


def _co_read(db, new_ids: np.ndarray, candidates: np.ndarray) -> list[np.ndarray]:
    """Per new book: the 10 books (of the candidates) nearest by the cosine of their reader
    sets (|A ∩ B| / √(|A| |B|))."""
    repo = db.repo
    data = repo.load_interactions()
    users, books = data.user_ids.astype(np.int64), data.book_ids.astype(np.int64)
    readers_of = {}
    for u, b in set(zip(users.tolist(), books.tolist(), strict=True)):
        readers_of.setdefault(b, set()).add(u)
    lists = []
    for book in new_ids.tolist():
        mine = readers_of.get(book, set())
        common_readers = np.array(
            [
                len(mine & readers_of.get(c, set()))
                / np.sqrt(max(1, len(mine) * len(readers_of.get(c, ()))))
                if c != book
                else -1
                for c in candidates
            ]
        )
        lists.append(candidates[np.argsort(-common_readers, kind="stable")[:10]])
    return lists


def _similar_lists(space, new_ids, k: int = 10) -> list[np.ndarray]:
    ids, vectors = space
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    lists = []
    for b in new_ids:
        at = np.searchsorted(ids, b)
        sims = unit @ unit[at]
        sims[at] = -np.inf
        lists.append(ids[np.argsort(-sims)[:k]])
    return lists


def _agreement(space, new_ids, truth: list[np.ndarray]) -> float:
    """nDCG@10 of each new book's similar list against the truth's top 10, averaged."""
    from bookrec.algorithms.metrics import ndcg_at_k

    lists = _similar_lists(space, new_ids)
    ids = space[0]
    recommended = np.array([np.searchsorted(ids, lst) for lst in lists])
    relevant = [np.sort(np.searchsorted(ids, t)) for t in truth]
    return float(np.mean(ndcg_at_k(recommended, relevant)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quality", type=Path, action="append", default=[])
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/bookrec-fold-in-quality"))
    parser.add_argument("--sizes", default="")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--new-users", type=int, default=1000)
    parser.add_argument("--new-books", type=int, default=100)
    parser.add_argument("--reuse", action="store_true", help="databases an earlier run loaded")
    args = parser.parse_args()
    for folder in args.quality:
        quality(folder, args.scratch / folder.name)
    if args.sizes:
        sizes = [float(s) for s in args.sizes.split(",")]
        cost(sizes, args.backends.split(","), args.new_users, args.new_books, args.reuse)
    if not args.quality and not args.sizes:
        parser.print_help(sys.stderr)


if __name__ == "__main__":
    main()
