"""Running landreg as a user does, in processes of its own: the command line and the server.

One helper for every test that starts ``landreg``; the server wrapper waits until it is ready, and
can be stopped gracefully or killed (SIGKILL) like a crashed process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import free_port

LANDREG = [sys.executable, "-m", "registry_service.cli.main"]


def landreg(
    env: dict[str, str],
    *args: str,
    check: bool = False,
    timeout: float = 300,
    crash: str | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """``landreg ARGS`` with ``env``; ``crash`` names a crashpoint that SIGKILLs it; ``check``
    asserts exit status 0 and shows the output otherwise."""
    if crash:
        env = {**env, "LANDREG_CRASHPOINT": crash}
    done = subprocess.run([*LANDREG, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    if check:
        assert done.returncode == 0, f"landreg {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


def landreg_out(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    """What ``landreg ARGS`` prints, which must succeed."""
    return landreg(env, *args, check=True, timeout=timeout).stdout.strip()


def spawn(env: dict[str, str], *args: str, **popen: Any) -> subprocess.Popen[Any]:
    """``landreg ARGS`` in the background (``popen``: stdout, stderr, ...)."""
    return subprocess.Popen([*LANDREG, *args], env=env, **popen)


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


class Server:
    """`landreg serve --port P [ARGS]`: one process with the anchoring worker inside it, unless
    ``args`` say otherwise (``--workers N``, ``--no-worker``)."""

    def __init__(self, env: dict[str, str], log_dir: Path, *args: str) -> None:
        self.env = env
        self.log_dir = log_dir
        self.args = args
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        out = open(self.log_dir / f"serve-{self.starts}.log", "wb")  # noqa: SIM115 - the child writes it
        self.proc = spawn(self.env, "serve", "--port", str(self.port), *self.args, stdout=out, stderr=subprocess.STDOUT)
        out.close()
        assert wait_until(self.ready, 90, 0.2), f"the server did not become ready:\n{self.output()}"

    def ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"the server exited with {self.proc.returncode}:\n{self.output()}")
        try:
            return httpx.get(self.base + "/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        """SIGKILL the server process and any children of its session (none with one process). The
        managed anvil node it started runs in a session of its own and outlives it by design: it is
        the chain, not part of the server."""
        assert self.proc is not None
        pids = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout.split()
        session = os.getsid(self.proc.pid)
        children = []
        for pid in map(int, pids):
            with contextlib.suppress(ProcessLookupError):
                if os.getsid(pid) == session:
                    children.append(pid)
        self.proc.send_signal(signal.SIGKILL)
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(90)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def output(self) -> str:
        path = self.log_dir / f"serve-{self.starts}.log"
        return path.read_text(errors="replace")[-6000:] if path.exists() else ""


def spawned_children(pid: int) -> list[int]:
    """The multiprocessing children of ``pid`` (the server's HTTP and anchoring processes, not
    multiprocessing's resource tracker)."""
    pids = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in pids if "spawn_main" in cmdline(int(p))]


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def rss_kb(pid: int) -> int:
    """Resident memory of a live process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def raw_request(port: int, head: bytes, stream: bytes = b"", times: int = 0, timeout: float = 10) -> bytes:
    """Send ``head`` and then ``stream`` ``times`` times over a raw socket (as an attacker's client
    would, without waiting), and return what the server answered before it closed the connection
    or ``timeout`` seconds passed. The sending runs beside the reading: a server that refuses early closes while bytes are still coming."""
    import socket
    import threading

    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)

    def send() -> None:
        with contextlib.suppress(OSError):
            sock.sendall(head)
            for _ in range(times):
                sock.sendall(stream)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    answer = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = sock.recv(65536)
            except TimeoutError:
                break
            except OSError:  # reset after the answer: the server closed with our bytes unread
                break
            if not data:
                break
            answer += data
    finally:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)  # wakes the sender if it is blocked in sendall
        sock.close()
    return answer


def listening(port: int) -> int:
    """How many sockets listen on ``port`` (one per HTTP process that has started serving)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                    count += 1
    return count
