"""The chain as this server process last saw it, for probes that must answer at once.

/readyz is asked every few seconds by a load balancer that gives up after a second or two. Asking
the node inline made a hung node (stopped, its host silent) hang the probe for minutes, and every
probe stacked another waiting call on it. Here one background call at a time asks the node for its
head, at most every ``chain_probe_s``; a probe waits for it at most ``WAIT_S`` and otherwise answers
from what is known, marked not ok: a node that has not answered lately is unavailable.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)

#: the longest a probe waits for the node before answering from what it knows
WAIT_S = 1.0


class _HasHead(Protocol):
    def head(self) -> int: ...


@dataclass(frozen=True)
class ChainSeen:
    ok: bool  # the node answered the last question, and not too long ago
    block: int | None  # the last head it reported
    age_s: float | None  # how long ago it last answered


class ChainProbe:
    def __init__(self, read_chain: Callable[[], _HasHead], max_age_s: float, wait_s: float = WAIT_S):
        self.read_chain = read_chain
        self.max_age_s = max_age_s
        self.wait_s = wait_s
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._done.set()
        self._asked_at = 0.0  # when the current (or last) question was asked
        self._answered_at: float | None = None
        self._block: int | None = None
        self._failed = False  # the last question got an error, not a head

    def seen(self) -> ChainSeen:
        """What the node said lately; asks it again (in the background) when that is older than
        ``max_age_s``, and waits for the answer at most ``wait_s``."""
        with self._lock:
            stale = self._answered_at is None or time.monotonic() - self._answered_at >= self.max_age_s
            if stale and self._done.is_set():
                self._done.clear()
                self._asked_at = time.monotonic()
                threading.Thread(target=self._ask, name="chain-probe", daemon=True).start()
        self._done.wait(self.wait_s)
        with self._lock:
            now = time.monotonic()
            overdue = not self._done.is_set() and now - self._asked_at >= self.wait_s
            age = None if self._answered_at is None else now - self._answered_at
            fresh = age is not None and age < self.max_age_s + self.wait_s
            return ChainSeen(ok=fresh and not self._failed and not overdue, block=self._block, age_s=age)

    def _ask(self) -> None:
        try:
            block = self.read_chain().head()
        except Exception:
            log.warning("the chain node did not answer the readiness probe", exc_info=True)
            with self._lock:
                self._failed = True
        else:
            with self._lock:
                self._failed, self._block, self._answered_at = False, block, time.monotonic()
        finally:
            self._done.set()
