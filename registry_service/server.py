"""Running the HTTP server: one process, or several sharing the port.

With several processes each binds its own listening socket with SO_REUSEPORT, so the kernel
spreads connections across them. (With one shared socket, whichever process accepts first takes
every keep-alive connection of a burst and the others idle.) Each process serves the whole app;
the anchoring worker runs in a process of its own, or with one HTTP process as a thread inside it
(a database lock keeps it to one per registry, see hybrid_store.worker_lock). Every process is a
child of `landreg serve`, which replaces each that dies, however often, waiting longer while
deaths keep coming (registry_service/supervisor.py); with several the others keep serving
meanwhile. SIGTERM/SIGINT stop every process gracefully.
"""

from __future__ import annotations

import logging
import multiprocessing
import shutil
import signal
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path

from hybrid_store.errors import LandregError

log = logging.getLogger(__name__)

APP = "registry_service.app:create_app"
GRACEFUL_S = 60


def _listen(host: str, port: int, reuse_port: bool, backlog: int | None = 2048) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and
    # without it every keep-alive response waits ~40 ms for a delayed ACK (Nagle)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    if backlog is not None:
        sock.listen(backlog)
    return sock


class PortUnavailable(LandregError):
    hint = "stop whatever listens there (another `landreg serve`?), or choose another port with --port"


def _claim(host: str, port: int, reuse_port: bool, backlog: int | None = 2048) -> socket.socket:
    """The port, or an error in the operator's words (in the supervisor, before any process starts:
    a child that cannot bind would only be replaced, again and again)."""
    try:
        return _listen(host, port, reuse_port, backlog)
    except OSError as exc:
        raise PortUnavailable(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def run_one(host: str, port: int, reuse_port: bool = False) -> None:
    """One HTTP process with a listening socket of its own (one of several sharing the port)."""
    # bound, not listening: uvicorn listens once the app has started, so the kernel hands this
    # process no connection it would lose if it died while starting
    _serve_on(lambda: _listen(host, port, reuse_port, backlog=None))


def run_one_on(sock: socket.socket) -> None:
    """The one HTTP process, on the socket its supervisor listens on."""
    _serve_on(lambda: sock)


def _serve_on(listening: Callable[[], socket.socket]) -> None:
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
    uvicorn.Server(config).run(sockets=[listening()])


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
    """Serve until SIGTERM/SIGINT; returns the exit status. One HTTP process: the anchoring worker
    runs as a thread inside it. Several: HTTP processes sharing the port plus one anchoring process.
    Either way the processes are children of this one, which replaces each that dies."""
    import os

    from hybrid_store.settings import get_settings
    from registry_service.supervisor import Child, RestartPolicy, Supervisor

    settings = get_settings()
    service = settings.service
    if workers == 1:
        # this process holds the port, so while the one HTTP process is being replaced connections
        # wait in the backlog instead of being refused
        sock = _claim(host, port, reuse_port=False)
        children = [Child("landreg-http-0", "http", run_one_on, (sock,))]
    else:
        _claim(host, port, reuse_port=True, backlog=None).close()  # a port taken: refused here, at once
        os.environ["LANDREG_SERVICE__RUN_WORKER"] = "false"  # the HTTP processes never anchor ...
        children = [Child(f"landreg-http-{i}", "http", run_one, (host, port, True)) for i in range(workers)]
        if anchoring:  # ... the one anchoring process does
            children.append(Child("landreg-anchoring", "anchoring", run_anchoring))
    # private to this server: several servers (containers) may share LANDREG_HOME and the port number
    run_dir = Path(tempfile.mkdtemp(prefix="landreg-serve-"))
    status = run_dir / "processes.json"
    os.environ["LANDREG_SERVICE__SUPERVISOR_STATUS"] = str(status)  # every HTTP process's /readyz reads it
    policy = RestartPolicy(service.restart_backoff_s, service.restart_backoff_max_s, service.restart_window_s)
    supervisor = Supervisor(multiprocessing.get_context("spawn"), children, policy, status, GRACEFUL_S)
    try:
        return supervisor.run()
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
