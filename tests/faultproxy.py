"""A TCP proxy between landreg and its chain node that can slow, drop or refuse connections: the
faults of a real network, caused for real on real sockets (tests only).

Modes: ``pass`` forwards; ``delay`` holds every chunk ``delay_s`` before forwarding it; ``drop``
accepts a connection, reads the request and closes without an answer; ``down`` refuses new
connections (the listening socket is closed, as when a node's host is gone) and cuts open ones;
``error`` answers every request with HTTP 502 (a gateway in front of a failing node); ``hang``
accepts and reads every request and never answers (a stopped node, a host gone silent);
``half_open`` is the same on the connection level: it accepts a connection, reads the request and
never answers (a peer behind a dead NAT entry): only a client's own timeout ends the wait.
``switch_after(n, mode, method)`` changes the mode once ``n`` more requests (calling ``method``, if
given) went through: a fault that starts halfway through a command.
"""

from __future__ import annotations

import contextlib
import re
import select
import socket
import threading
import time


class FaultProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self.mode = "pass"
        self.delay_s = 0.0
        self._listener: socket.socket | None = None
        self._stop = threading.Event()
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.connections = 0
        self.requests = 0  # requests (client chunks) forwarded to the node
        self.calls: dict[str, int] = {}  # of them, those calling each JSON-RPC method
        self._switch: tuple[int, str, str | None] | None = None

    def switch_after(self, requests: int, mode: str, method: str | None = None) -> None:
        self._switch = (requests, mode, method)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        self._listen()
        threading.Thread(target=self._accept_loop, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._close_listener()
        self._cut_all()

    def set(self, mode: str, delay_s: float = 0.0) -> None:
        assert mode in ("pass", "delay", "drop", "down", "error", "hang", "half_open")
        self.delay_s = delay_s
        if mode == "down":
            self._close_listener()
            self._cut_all()
        elif self.mode == "down":
            self._listen()
        self.mode = mode

    # --- internals ------------------------------------------------------------------------------
    def _listen(self) -> None:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deadline = time.monotonic() + 2
        while True:  # a closed listener lives on until the accept loop's pending accept() times out
            try:
                s.bind(("127.0.0.1", self.port))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        s.listen(64)
        s.settimeout(0.2)
        self._listener = s

    def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()

    def _cut_all(self) -> None:
        with self._lock:
            for s in list(self._open):
                with contextlib.suppress(OSError):
                    s.close()
            self._open.clear()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            listener = self._listener
            if listener is None:
                time.sleep(0.05)
                continue
            try:
                client, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        if self.mode == "half_open":
            self._hold_open(client)
            return
        if self.mode in ("error", "hang"):
            self._refuse(client)
            return
        if self.mode == "drop":
            with contextlib.suppress(OSError):
                client.settimeout(2)
                client.recv(65536)
            client.close()
            return
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        with self._lock:
            self._open.update((client, upstream))
        try:
            self._pump(client, upstream)
        finally:
            for s in (client, upstream):
                with contextlib.suppress(OSError):
                    s.close()
            with self._lock:
                self._open.difference_update((client, upstream))

    def _hold_open(self, client: socket.socket) -> None:
        """Read whatever comes and answer nothing, until the mode changes or the proxy stops."""
        with self._lock:
            self._open.add(client)
        try:
            while not self._stop.is_set() and self.mode == "half_open":
                ready, _, _ = select.select([client], [], [], 0.2)
                if ready and not client.recv(65536):
                    return  # the client gave up
        except (OSError, ValueError):
            return
        finally:
            with contextlib.suppress(OSError):
                client.close()
            with self._lock:
                self._open.discard(client)

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select(list(peers), [], [], 0.5)
            except (OSError, ValueError):
                return
            for s in ready:
                try:
                    data = s.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                if s is a:
                    self._count_request(data)
                    if self.mode in ("error", "hang"):
                        self._refuse(a, request_read=True)
                        return
                if self.mode == "delay":
                    time.sleep(self.delay_s)
                elif self.mode in ("drop", "down"):
                    return
                try:
                    peers[s].sendall(data)
                except OSError:
                    return

    def _count_request(self, data: bytes) -> None:
        self.requests += 1
        found = re.search(rb'"method":\s*"([A-Za-z0-9_]+)"', data)
        name = found.group(1).decode() if found else None
        if name:
            self.calls[name] = self.calls.get(name, 0) + 1
        if self._switch is None or self._switch[2] not in (None, name):
            return
        left, mode, method = self._switch
        if left == 0:
            self.mode, self._switch = mode, None  # this request already meets the new mode
        else:
            self._switch = (left - 1, mode, method)

    def _refuse(self, client: socket.socket, request_read: bool = False) -> None:
        """``error``: a 502 for each request; ``hang``: silence until the mode changes (then the
        connection is cut, as a node that wakes up would have timed the client out long before)."""
        waiting = request_read
        with self._lock:
            self._open.add(client)  # cut with the others when the node goes down
        with contextlib.suppress(OSError):
            client.settimeout(0.2)
            while not self._stop.is_set() and self.mode in ("error", "hang"):
                if waiting and self.mode == "error":
                    body = b"bad gateway"
                    client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: "
                                   + str(len(body)).encode() + b"\r\n\r\n" + body)  # fmt: skip
                    waiting = False
                try:
                    data = client.recv(65536)  # the (next) request on a kept-alive connection
                except TimeoutError:
                    continue
                if not data:
                    break
                waiting = True
        with contextlib.suppress(OSError):
            client.close()
        with self._lock:
            self._open.discard(client)
