"""Running the HTTP server: one process, or several sharing the port.

With several processes each binds its own listening socket with SO_REUSEPORT, so the kernel
spreads connections across them. (With one shared socket, whichever process accepts first takes
every keep-alive connection of a burst and the others idle.) Each process serves the whole app;
the anchoring worker runs in exactly one of them (a database lock decides, see
hybrid_store.worker_lock). SIGTERM/SIGINT stop every process gracefully. A process that dies is
replaced while the others keep serving (with one process, `--workers 1`, nothing can replace it:
production runs several).
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import time
from typing import Any

log = logging.getLogger(__name__)

APP = "registry_service.app:create_app"
GRACEFUL_S = 60
#: a process that dies is replaced, unless processes keep dying (then something is wrong for good)
MAX_RESTARTS = 10
RESTART_WINDOW_S = 60


def _listen(host: str, port: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and
    # without it every keep-alive response waits ~40 ms for a delayed ACK (Nagle)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def run_one(host: str, port: int, reuse_port: bool = False) -> None:
    import uvicorn

    from hybrid_store.settings import get_settings
    from registry_service.http_head import bounded_protocol

    service = get_settings().service
    http = bounded_protocol(service.max_header_bytes, service.max_headers)
    config = uvicorn.Config(APP, factory=True, log_level="warning", access_log=False, http=http,
                            timeout_graceful_shutdown=GRACEFUL_S)  # fmt: skip
    # build the app before binding: a process that joins the SO_REUSEPORT group (at start, or
    # replacing one that died) gets connections only once it can answer them
    config.load()
    uvicorn.Server(config).run(sockets=[_listen(host, port, reuse_port)])


def run_anchoring() -> None:
    """The anchoring worker as a process of its own (``landreg serve --workers N`` with N > 1), so
    building a batch never stalls an HTTP worker's requests."""
    import threading

    from hybrid_store.db.engine import Database
    from hybrid_store.settings import get_settings
    from registry_service.background import BackgroundAnchorer

    settings = get_settings()
    worker = BackgroundAnchorer(settings, Database(settings.db_url))
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    worker.start()
    done.wait()
    worker.stop()


def serve(host: str, port: int, workers: int, anchoring: bool = True) -> int:
    """Serve until SIGTERM/SIGINT; returns the exit status. One process: the anchoring worker runs
    as a thread inside it. Several: HTTP processes sharing the port plus one anchoring process."""
    if workers == 1:
        run_one(host, port)
        return 0
    import os

    os.environ["LANDREG_SERVICE__RUN_WORKER"] = "false"  # the HTTP processes never anchor ...
    ctx = multiprocessing.get_context("spawn")
    specs: list[tuple[Any, tuple[Any, ...], str]] = [
        (run_one, (host, port, True), f"landreg-http-{i}") for i in range(workers)
    ]
    if anchoring:  # ... the one anchoring process does
        specs.append((run_anchoring, (), "landreg-anchoring"))
    children = [ctx.Process(target=target, args=args, name=name) for target, args, name in specs]
    for child in children:
        child.start()
    stopping = False
    restarts: list[float] = []

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.is_alive():
                child.terminate()  # SIGTERM: uvicorn finishes in-flight requests, the worker its batch

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping:
        time.sleep(0.2)
        if not stopping and not _replace_dead(ctx, specs, children, restarts):
            stop(signal.SIGTERM, None)
    for child in children:
        child.join(GRACEFUL_S + 10)
        if child.is_alive():
            child.kill()
    return 0 if len(restarts) <= MAX_RESTARTS else 1


def _replace_dead(ctx: Any, specs: list[tuple[Any, tuple[Any, ...], str]], children: list[Any],
                  restarts: list[float]) -> bool:  # fmt: skip
    """Replace every process that died (a crash, an OOM kill): the others never stopped serving.
    False when processes die too often to go on (``restarts`` keeps the recent restart times)."""
    for i, child in enumerate(children):
        if child.is_alive():
            continue
        now = time.monotonic()
        restarts[:] = [t for t in restarts if now - t < RESTART_WINDOW_S] + [now]
        if len(restarts) > MAX_RESTARTS:
            log.error("%d process restarts within %d s; stopping the server", len(restarts), RESTART_WINDOW_S)
            return False
        log.error("%s died (exit code %s); starting a new one", child.name, child.exitcode)
        target, args, name = specs[i]
        children[i] = ctx.Process(target=target, args=args, name=name)
        children[i].start()
    return True
