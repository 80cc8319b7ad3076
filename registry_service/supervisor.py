"""Keeping the server's processes running: every one that dies is replaced, however often.

A burst of deaths (a crash on some request, the OOM killer, an operator's kill) used to stop the
whole server after ten within a minute, closing the port for good; an attacker who can kill a
process could take the service down. Now the supervisor never gives up: it waits longer before
each replacement while replacements keep dying young (an exponential back-off, capped), logs
each death and each replacement, and writes what it is doing to a small status file that every
HTTP process's /readyz reads, so a load balancer and an operator see "degraded" and the counts.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TICK_S = 0.1
PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass(frozen=True)
class Child:
    """What one slot runs: ``target(*args)`` in a process called ``name``; ``kind`` groups slots
    for the back-off and the status ("http" or "anchoring")."""

    name: str
    kind: str
    target: Callable[..., None]
    args: tuple[Any, ...] = ()


@dataclass(frozen=True)
class RestartPolicy:
    """A process that had run for ``window_s`` is replaced at once when it dies; each further
    death of its kind before a replacement has run that long doubles the wait, from ``backoff_s``
    up to ``backoff_max_s``. (Counting deaths within a sliding window instead would let the
    back-off itself, by spacing the deaths out, bring the wait down again.)"""

    backoff_s: float
    backoff_max_s: float
    window_s: float

    def delay(self, streak: int) -> float:
        """The wait before the replacement, after ``streak`` deaths in a row of short-lived processes."""
        if streak <= 0:
            return 0.0
        return min(self.backoff_max_s, self.backoff_s * 2 ** min(streak - 1, 32))


@dataclass
class _Slot:
    child: Child
    process: Any = None
    started_at: float = 0.0  # monotonic
    restart_at: float | None = None  # monotonic time of the next start, while it waits
    deaths: int = 0
    restarts: int = 0


@dataclass
class Supervisor:
    """Runs ``children`` until SIGTERM/SIGINT, replacing each that dies (see the module's docstring)."""

    ctx: Any  # a multiprocessing context
    children: list[Child]
    policy: RestartPolicy
    status_path: Path | None = None
    graceful_s: float = 60
    slots: list[_Slot] = field(init=False)
    deaths: dict[str, list[float]] = field(init=False, default_factory=dict)  # kind -> recent wall times
    streak: dict[str, int] = field(init=False, default_factory=dict)  # kind -> deaths in a row
    stopping: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.slots = [_Slot(child) for child in self.children]

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        for slot in self.slots:
            self.start(slot)
        self.write_status()
        while not self.stopping:
            time.sleep(TICK_S)
            if not self.stopping and self.check():
                self.write_status()
        alive = [slot.process for slot in self.slots if slot.process is not None and slot.process.is_alive()]
        for process in alive:
            process.terminate()  # SIGTERM: uvicorn finishes in-flight requests, the worker its batch
        for process in alive:
            process.join(self.graceful_s + 10)
            if process.is_alive():
                process.kill()
        if self.status_path is not None:
            self.status_path.unlink(missing_ok=True)
        return 0

    def stop(self, _signum: int = signal.SIGTERM, _frame: object = None) -> None:
        self.stopping = True

    def start(self, slot: _Slot) -> int:
        """Start the slot's process; its pid."""
        if slot.restart_at is not None:
            slot.restarts += 1
        child = slot.child
        slot.process = self.ctx.Process(target=run_child, args=(child.target, child.args, os.getpid()), name=child.name)
        slot.process.start()
        slot.started_at = time.monotonic()
        slot.restart_at = None
        return slot.process.pid

    def check(self) -> bool:
        """Notice deaths and start the replacements that are due; True when something changed."""
        changed = False
        now = time.monotonic()
        for slot in self.slots:
            if slot.process is not None and not slot.process.is_alive():
                self.died(slot, now)
                changed = True
            elif slot.process is None and slot.restart_at is not None and slot.restart_at <= now:
                log.warning("started %s again (pid %d)", slot.child.name, self.start(slot))
                changed = True
        return changed

    def died(self, slot: _Slot, now: float) -> None:
        process, kind = slot.process, slot.child.kind
        wall = time.time()
        recent = [t for t in self.deaths.get(kind, []) if wall - t < self.policy.window_s] + [wall]
        self.deaths[kind] = recent
        lived = now - slot.started_at
        self.streak[kind] = 0 if lived >= self.policy.window_s else self.streak.get(kind, 0) + 1
        slot.deaths += 1
        slot.process = None
        delay = self.policy.delay(self.streak[kind])
        slot.restart_at = now + delay
        code = process.exitcode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        log.error("%s (pid %d) died (%s) after %.1f s; %d %s process deaths in the last %g s: replacing it in %.1f s",
                  slot.child.name, process.pid, how, lived, len(recent), kind, self.policy.window_s, delay)  # fmt: skip

    def write_status(self) -> None:
        if self.status_path is None:
            return
        status = {
            "supervisor_pid": os.getpid(),
            "window_s": self.policy.window_s,
            "deaths": self.deaths,
            "processes": [
                {
                    "name": slot.child.name,
                    "kind": slot.child.kind,
                    "pid": slot.process.pid if slot.process is not None else None,
                    "waiting": slot.process is None,
                    "deaths": slot.deaths,
                    "restarts": slot.restarts,
                }
                for slot in self.slots
            ],
        }
        tmp = self.status_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(status))
        tmp.replace(self.status_path)  # readers never see half a file


def run_child(target: Callable[..., None], args: tuple[Any, ...], supervisor_pid: int) -> None:
    """A child's entry point: it is stopped (SIGTERM, gracefully) when its supervisor dies, even by
    SIGKILL, rather than orphaned holding the port, where the next ``landreg serve`` could not bind."""
    import ctypes
    import ctypes.util

    with contextlib.suppress(OSError, AttributeError):  # Linux only; elsewhere children may outlive it
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != supervisor_pid:  # it died before the request above was made
        return
    target(*args)


def supervision(path: Path, now: float | None = None) -> dict[str, Any] | None:
    """What /readyz says about the server's processes, from the supervisor's status file: ``ok``
    is false while a process waits to be replaced or one died within the window. None without a
    supervisor (a server run another way) or when its file cannot be read."""
    try:
        status = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    now = time.time() if now is None else now
    window = float(status["window_s"])
    report: dict[str, Any] = {"ok": True, "window_s": window}
    for kind in sorted({p["kind"] for p in status["processes"]}):
        processes = [p for p in status["processes"] if p["kind"] == kind]
        recent = [t for t in status["deaths"].get(kind, []) if now - t < window]
        waiting = sum(p["waiting"] for p in processes)
        report[kind] = {
            "processes": len(processes),
            "waiting_to_restart": waiting,
            "deaths_in_window": len(recent),
            "deaths": sum(p["deaths"] for p in processes),
            "restarts": sum(p["restarts"] for p in processes),
        }
        report["ok"] = report["ok"] and not recent and not waiting
    return report
