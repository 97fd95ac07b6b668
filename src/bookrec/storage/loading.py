"""What the interaction loaders of both backends share: the transaction as a context manager,
the user ids of a batch (created where new), the batch's rows in unique-key order with
duplicates dropped, and a filter of the keys a load has written for its new users."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bookrec.domain import InteractionBatch


@dataclass
class InteractionLoadResult:
    rows: int = 0
    inserted: int = 0
    duplicates: int = 0
    new_users: int = 0


class InteractionLoader(ABC):
    """One transaction, as a context manager: each add() writes a batch (new users, new
    interactions, duplicates skipped, the first of identical events in the file kept);
    leaving the block commits them all (or commit() does it earlier, giving the result), an
    exception rolls back every one of them.

        with repo.interaction_loader() as loader:
            loader.add(batch)
        result = loader.result

    add() may run on another thread than the one that entered the block (one at a time)."""

    def __init__(self) -> None:
        self.result = InteractionLoadResult()
        self._user_ids: dict[str, int] = {}
        self._created: set[int] = set()  # ids of the users this load created
        self._open = False

    def __enter__(self) -> InteractionLoader:
        self._begin()
        self._open = True
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        if not self._open:
            return
        if kind is None:
            self.commit()
        else:
            self.rollback()

    def commit(self) -> InteractionLoadResult:
        """Commit the load (at most once; leaving the block does it otherwise)."""
        if not self._open:
            raise RuntimeError("the interaction load is not open: use it in a with block")
        self._open = False
        try:
            self._commit()
        except BaseException:
            self._rollback()
            raise
        self.result.duplicates = self.result.rows - self.result.inserted
        return self.result

    def rollback(self) -> None:
        """Abandon the load: nothing of it is written."""
        if self._open:
            self._open = False
            self._rollback()

    def add(self, batch: InteractionBatch) -> None:
        if not self._open:
            raise RuntimeError("the interaction load is not open: use it in a with block")
        self._add(batch)

    @abstractmethod
    def _begin(self) -> None:
        """Open the load's transaction."""

    @abstractmethod
    def _add(self, batch: InteractionBatch) -> None: ...

    @abstractmethod
    def _commit(self) -> None: ...

    @abstractmethod
    def _rollback(self) -> None:
        """Roll the transaction back (and restore the connection's settings); never raises
        for a connection that is already broken."""

    @abstractmethod
    def _find_users(self, external_ids: Sequence[str]) -> dict[str, int]:
        """Database ids of those of the users that exist."""

    @abstractmethod
    def _create_users(self, external_ids: Sequence[str]) -> dict[str, int]:
        """Insert the users; the ids of those inserted (not those that exist meanwhile)."""

    def user_ids(self, users: list[str]) -> np.ndarray:
        """The database id of each user (int64), creating the unknown ones in this load."""
        known = self._user_ids
        unknown = [u for u in dict.fromkeys(users) if u not in known]  # in order of appearance
        if unknown:
            known.update(self._find_users(unknown))
            missing = [u for u in unknown if u not in known]
            created = self._create_users(missing) if missing else {}
            known.update(created)
            self._created.update(created.values())
            self.result.new_users += len(created)
            if len(created) < len(missing):  # created by someone else meanwhile
                known.update(self._find_users([u for u in missing if u not in created]))
        return np.fromiter(map(known.__getitem__, users), dtype=np.int64, count=len(users))

    def created_by_this_load(self, user_ids: np.ndarray) -> np.ndarray:
        """Whether each user id is of a user this load created."""
        created = self._created.__contains__
        return np.fromiter(map(created, user_ids.tolist()), dtype=bool, count=len(user_ids))


def first_in_key_order(
    user_ids: np.ndarray, book_ids: np.ndarray, events: np.ndarray, times: np.ndarray
) -> np.ndarray:
    """Indices of the rows in unique-key order (user, book, event, time), keeping only the
    first row in file order of each key: inserting in key order walks the indexes in order."""
    order = np.lexsort((times, events, book_ids, user_ids))  # stable: file order within a key
    if len(order) < 2:
        return order
    keys = (user_ids[order], book_ids[order], events[order], times[order])
    repeats = np.logical_and.reduce([k[1:] == k[:-1] for k in keys])
    return order[np.concatenate(([True], ~repeats))]


class KeyFilter:
    """The interaction keys a load has written, as a Bloom filter: `seen` is true for every
    key added before, and for a few (well under 1% of 1M keys) that were not. It only sends
    rows to the loader's exact path, never decides what is a duplicate."""

    BITS = 1 << 27  # 16 MiB

    def __init__(self) -> None:
        self.bits = np.zeros(self.BITS // 8, dtype=np.uint8)

    def seen_then_add(self, *columns: np.ndarray) -> np.ndarray:
        """Whether each key (one row across the int64 columns) may have been added before;
        then adds them all. The keys must be distinct."""
        positions = _two_positions(columns, self.BITS)
        byte, bit = positions >> 3, (positions & 7).astype(np.uint8)
        present = (self.bits[byte] >> bit) & 1
        seen = present.all(axis=0).astype(bool)
        np.bitwise_or.at(self.bits, byte.ravel(), np.left_shift(1, bit.ravel()).astype(np.uint8))
        return seen


def _two_positions(columns: tuple[np.ndarray, ...], size: int) -> np.ndarray:
    """Two bit positions per row (shape 2 × n) from a 64-bit mix of the row's columns."""
    mixed = np.zeros(len(columns[0]), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for column in columns:
            mixed = _mix(mixed ^ column.astype(np.int64).view(np.uint64))
    shift = np.uint64(64 - (size.bit_length() - 1))
    return np.stack([mixed >> shift, (mixed & np.uint64(size - 1))]).astype(np.int64)


def _mix(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser: every input bit affects every output bit."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))
