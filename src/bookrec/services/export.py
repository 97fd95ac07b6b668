"""export vectors: one vector family to a file other serving stacks read (see bookrec.writers)."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bookrec import __version__
from bookrec.domain import VECTOR_FAMILIES
from bookrec.errors import InputError, NotReadyError
from bookrec.models import VECTOR_STRATEGIES
from bookrec.progress import Phases
from bookrec.results import VectorExport
from bookrec.storage.base import Repository, TrainingRun
from bookrec.writers import FORMATS, atomic_file, format_of, open_writer

SIDES = ("books", "users")


def export_vectors(
    repo: Repository,
    family: str,
    path: Path,
    phases: Phases,
    *,
    side: str = "books",
    fmt: str | None = None,
) -> VectorExport:
    """Write the family's vectors of one side to `path`, in `fmt` (default: from the file's
    suffix). InputError for an unknown family, side or format or a path that cannot be
    written; NotReadyError when the family has no vectors there. Nothing is left at `path` on
    failure (an older file there stays as it was)."""
    started = time.perf_counter()
    if family not in VECTOR_FAMILIES:
        raise InputError(f"unknown family {family!r} (expected cf, gnn or content)")
    if side not in SIDES:
        raise InputError(f"unknown side {side!r} (expected books or users)")
    if VECTOR_FAMILIES[family][1 if side == "users" else 0] is None:
        raise InputError(f"the {family} family has no {side} vectors (only cf has users)")
    _check_writable(path)
    chosen = format_of(path, fmt)
    if chosen not in FORMATS:
        what = f"unknown format {fmt!r}" if fmt else f"no format known for {path.name!r}"
        raise InputError(
            f"{what} (expected {', '.join(FORMATS)})",
            hint="name it with --format, or give the file a .parquet, .npz or .jsonl suffix",
        )
    with repo.read_vector_chunks(family, side) as source:
        if source.rows == 0:
            raise NotReadyError(
                f"no {family} {side} vectors to export", hint=f"run {VECTOR_STRATEGIES[family]}"
            )
        metadata = _metadata(family, side, source.rows, source.dim, source.run)
        with (
            phases.phase("export", total=source.rows) as update,
            atomic_file(path) as file,
        ):
            writer = open_writer(chosen, file, source.rows, source.dim, metadata)
            done = 0
            for chunk in source.chunks:
                if chunk.vectors.shape[1] != source.dim:
                    raise NotReadyError(
                        f"{family} {side} vectors of two dimensions ({source.dim} and"
                        f" {chunk.vectors.shape[1]}); nothing written",
                        hint=f"run {VECTOR_STRATEGIES[family]}",
                    )
                writer.write(chunk.ids, chunk.external_ids, chunk.vectors)
                done += len(chunk.ids)
                update(done, source.rows)
            writer.close()
    seconds = time.perf_counter() - started
    return VectorExport(
        file=str(path),
        format=chosen,
        family=family,
        side=side,
        rows=source.rows,
        dim=source.dim,
        run_id=source.run.id if source.run else None,
        read_from=source.stored_as,
        bytes=path.stat().st_size,
        vectors_per_second=int(source.rows / seconds) if seconds > 0 else None,
        seconds=round(seconds, 3),
    )


def _check_writable(path: Path) -> None:
    parent = path.parent
    if path.is_dir():
        raise InputError(f"{path}: is a directory")
    if not parent.is_dir():
        raise InputError(f"{path}: no directory {str(parent)!r}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{path}: the directory is not writable")


def _metadata(
    family: str, side: str, rows: int, dim: int, run: TrainingRun | None
) -> dict[str, Any]:
    """What a file says about its vectors: the family, the run that wrote them, its settings."""
    return {
        "format_version": 1,
        "family": family,
        "side": side,
        "rows": rows,
        "dim": dim,
        "dtype": "float32",
        "id": "the row's internal id in the bookrec database",
        "external_id": f"the {side[:-1]}'s external id (as ingested)",
        "run": None
        if run is None
        else {
            "id": run.id,
            "model": run.model,
            "parameters": run.parameters,
            "started_at": _iso(run.started_at),
            "finished_at": _iso(run.finished_at),
            "n_users": run.n_users,
            "n_books": run.n_books,
            "n_interactions": run.n_interactions,
            "max_interaction_id": run.max_interaction_id,
            "metrics": run.metrics,
        },
        "bookrec_version": __version__,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat()
