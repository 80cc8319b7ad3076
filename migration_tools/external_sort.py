"""Sorting more items than should be held in memory: sorted runs spilled to files, then merged.

A reader that must join tables or reorder a whole book (the CSV export's: four tables joined by
document, the documents handed on in recording order) would otherwise hold the book; a 370,000-
document export took 1.8 GB that way. Here at most one run is held per sorter while it fills, and
a block of items per run file while the runs are merged (at most ``fan_in`` files at once), so
memory depends on the limits, not on the book.

The items are tuples ``(key, payload)`` whose keys are unique within a sorter (a row number makes
them so): tuples compare key first, so two payloads are never compared (no key function: it costs
the merge a wrapper per item), and no two items tie to make the order depend on how runs were cut.
The files are pickles this process wrote into its own temporary folder and reads back; they are
never read from anywhere else.
"""

from __future__ import annotations

import heapq
import itertools
import pickle
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Item = tuple[Any, Any]


@dataclass(frozen=True)
class Limits:
    """When a run is spilled: at ``items`` items or ``chars`` characters of text, whichever first;
    and how many runs one merge reads at once (more are merged in rounds)."""

    items: int = 20_000
    chars: int = 16_000_000
    fan_in: int = 64

    def __post_init__(self) -> None:
        if self.items < 1 or self.chars < 1 or self.fan_in < 2:
            raise ValueError(f"a run needs at least one item and a merge two runs, not {self}")


LIMITS = Limits()
_BUFFER = 1 << 16  # bytes of each run file read or written at a time
# items pickled together (a call per item cost the CSV reader a fifth of its time): up to _BLOCK of
# them and, by the sorter's average item so far, about _BLOCK_CHARS characters; a merge holds one
# block per run it reads
_BLOCK = 256
_BLOCK_CHARS = 32_000


class ExternalSort:
    """Items added in any order, handed back in key order by ``sorted()``."""

    def __init__(self, folder: Path, name: str, limits: Limits = LIMITS):
        self.folder, self.name, self.limits = folder, name, limits
        self._held: list[Item] = []
        self._chars = 0
        self._runs: list[Path] = []
        self._made = 0
        self.added = 0
        self._text = 0  # characters added, all told

    def add(self, key: Any, payload: Any, chars: int = 0) -> None:
        """Add one item; ``chars`` is how much text it holds, for the run's size."""
        self._held.append((key, payload))
        self._chars += chars
        self._text += chars
        self.added += 1
        if len(self._held) >= self.limits.items or self._chars >= self.limits.chars:
            self._spill(self._held)

    def finish(self) -> None:
        """No more items: once anything has been spilled, the rest waits on disk too."""
        if self._runs and self._held:
            self._spill(self._held)

    def sorted(self, *, again: bool = False) -> Iterator[Item]:
        """Every item added, by key; ``again`` keeps them for one more call. A sorter that never
        filled a run sorts in memory only."""
        if not self._runs:
            self._held.sort()
            held = self._held
            if not again:
                self._held = []
            yield from held
            return
        self.finish()
        while len(self._runs) > self.limits.fan_in:  # merge in rounds: open files stay bounded too
            first, self._runs = self._runs[: self.limits.fan_in], self._runs[self.limits.fan_in :]
            self._write(heapq.merge(*(_read_run(path) for path in first)))
        runs = self._runs
        if not again:
            self._runs = []
        yield from heapq.merge(*(_read_run(path, remove=not again) for path in runs))

    def _spill(self, items: list[Item]) -> None:
        items.sort()
        self._write(items)
        self._held, self._chars = [], 0

    def _write(self, items: Iterable[Item]) -> None:
        path = self.folder / f"{self.name}-{self._made}.run"
        self._made += 1
        items = iter(items)
        size = max(1, min(_BLOCK, _BLOCK_CHARS * self.added // max(self._text, 1)))
        with open(path, "wb", buffering=_BUFFER) as f:
            while block := list(itertools.islice(items, size)):
                pickle.dump(block, f, protocol=pickle.HIGHEST_PROTOCOL)
        self._runs.append(path)


def _read_run(path: Path, *, remove: bool = True) -> Iterator[Item]:
    """The items of one run file, in order; the file is removed once read to its end."""
    with open(path, "rb", buffering=_BUFFER) as f:
        while True:
            try:
                block = pickle.load(f)
            except EOFError:
                break
            yield from block
    if remove:
        path.unlink()
