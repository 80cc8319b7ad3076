"""The garbage collector's policy for long bulk runs (a migration stage, a legacy sync or import).

Such a run allocates millions of short-lived objects (rows, hashes, tuples) while the process holds
a large long-lived heap (ORM mappings, the chain library, the batch in flight). With the default
thresholds the collector runs a young pass every 700 allocations and, every so often, a full pass
over that whole heap: measured on a 100,000-record stage, over a second of a run of eight. Freezing
what exists at the start (it lives for the whole run) and collecting the young generation less
often keeps reference cycles collected, only in fewer, larger passes. (A 60,000-document legacy
sync spent 3.3 s of 19.3 in the collector, 43 full passes.)
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

BULK_THRESHOLD = 50_000  # allocations between young passes (the interpreter's default is 700)


@contextmanager
def bulk_run(threshold: int = BULK_THRESHOLD) -> Iterator[None]:
    """Within this block: the heap as it is now is frozen, and young passes are ``threshold`` apart."""
    before = gc.get_threshold()
    gc.collect()  # what is garbage already is not frozen with the rest
    gc.freeze()
    gc.set_threshold(threshold, before[1], before[2])
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def refreeze() -> None:
    """Within ``bulk_run``, between two units of work (a migration batch): what outlived the last
    one joins the frozen heap. A stage's long-lived heap grows as it goes (the title state's node
    cache keeps the top of the tree: up to 400,000 nodes), and full passes over it cost a 370,000-
    record stage more CPU than the title state's own work (bench/migration.py --title-ab). A full
    collection first, so no garbage is frozen; refcounting still frees what is dropped later, and
    ``bulk_run`` unfreezes it all at the end."""
    gc.collect()
    gc.freeze()
