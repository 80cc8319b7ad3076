"""Nobody knocks it over: deep and huge input to every route and every CLI reader, and a killed
HTTP process replaced while the others keep serving."""

from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hybrid_store import strict_json
from registry_service.supervisor import Child, RestartPolicy, Supervisor, supervision
from tests.conftest import free_port
from tests.processes import (
    Server,
    cmdline,
    landreg,
    listening,
    raw_request,
    rss_kb,
    spawn,
    spawned_children,
    wait_until,
)

DEEP = b"[" * 100_000  # 100 KB that segfaulted json.loads under py-evm's recursion limit
DEEP_OBJECT = b'{"a":' * 40_000 + b"1" + b"}" * 40_000
HUGE_FLAT = b"[" + b"0," * 400_000 + b"0]"  # 800 KB, one level


# --- the scanner ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "ok"),
    [
        (b"[" * 32 + b"]" * 32, True),
        (b"[" * 33 + b"]" * 33, False),
        (b'["' + b"[" * 1000 + b'"]', True),  # brackets inside a string do not nest
        (b'["\\"' + b"[" * 40 + b'"]', True),  # an escaped quote does not end the string
        (b'["\\\\"' + b",[" * 40 + b"]" * 40 + b"]", False),  # an escaped backslash does
        (DEEP, False),
        (DEEP_OBJECT, False),
        (HUGE_FLAT, True),
    ],
)
def test_depth_is_bounded_before_parsing(raw, ok):
    if ok:
        strict_json.check_bounds(raw)
    else:
        with pytest.raises(strict_json.InvalidJSON, match="nested deeper than 32"):
            strict_json.check_bounds(raw)


def reference_bounds(raw: bytes, max_depth: int = strict_json.MAX_DEPTH) -> bool:
    """The scanner as it was first written, a token at a time: whether ``raw`` nests within
    ``max_depth`` (the fast one is held to it)."""
    depth, in_string = 0, False
    for match in re.finditer(rb'\\.|["\[\]{}]', raw, re.S):
        token = match.group()
        if token == b'"':
            in_string = not in_string
        elif in_string or len(token) == 2:
            continue
        elif token in (b"[", b"{"):
            depth += 1
            if depth > max_depth:
                return False
        else:
            depth -= 1
    return True


structural = st.lists(st.sampled_from([b"[", b"]", b"{", b"}", b'"', b"\\", b"a", b":", b",", b" ", b"\n", b"\xc3\xa9"]),
                      max_size=120).map(b"".join)  # fmt: skip


@given(st.one_of(structural, st.binary(max_size=200)), st.integers(0, 40))
def test_the_fast_scanner_agrees_with_the_token_by_token_one(raw, max_depth):
    try:
        strict_json.check_bounds(raw, max_depth=max_depth)
        within = True
    except strict_json.InvalidJSON:
        within = False
    assert within == reference_bounds(raw, max_depth)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet=st.characters(codec="utf-8")),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=30,
)


@given(json_values)
def test_the_bounded_parser_agrees_with_json_on_shallow_documents(value):
    raw = json.dumps(value).encode()
    assert strict_json.loads(raw) == json.loads(raw)


@given(st.binary(max_size=300))
def test_any_bytes_give_a_document_or_invalid_json(raw):
    with contextlib.suppress(strict_json.InvalidJSON):
        strict_json.loads(raw)


@pytest.mark.subprocess
def test_the_recursion_limit_is_restored_after_the_chain_libraries():
    done = subprocess.run([sys.executable, "-c", "import sys, registry_service.app as a; "
                           "print(sys.getrecursionlimit()); a.restore_recursion_limit(); print(sys.getrecursionlimit())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    raised, restored = (int(x) for x in done.stdout.split())
    assert raised == 100_000  # what py-evm and py_ecc set at import: the reason for the bound
    assert restored == strict_json.SAFE_RECURSION_LIMIT


# --- every route, as a real server ---------------------------------------------------------------------
def routes() -> list[tuple[str, str]]:
    """Every (method, path) the app serves, from the app itself: a new route gets a case for free."""
    import tempfile
    from pathlib import Path

    from hybrid_store.chain.connect import eth_tester_chain
    from hybrid_store.settings import Settings
    from registry_service.app import create_app
    from tests.conftest import app_routes, make_sqlite

    home = Path(tempfile.mkdtemp())
    app = create_app(Settings(home=home, chain={"backend": "eth-tester"}), db=make_sqlite(home),
                     chain_factory=eth_tester_chain, run_worker=False)  # fmt: skip
    found = sorted(app_routes(app))
    assert len(found) > 30  # the API's, the desk's and the operational routes, not only the docs
    return found


def concrete(path: str) -> str:
    return (path.replace("{number}", "2026-0000001").replace("{parcel_id}", "0223_1_1").replace("{version}", "1")
            .replace("{key}", "0223_1_1"))  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import os

    from tests.conftest import PASSPHRASE_ENV

    home = tmp_path_factory.mktemp("bounded")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LANDREG_") and k != "DATABASE_URL"}
    env.update({"LANDREG_HOME": str(home / "home"), "LANDREG_CHAIN__ANVIL_PORT": str(free_port()), **PASSPHRASE_ENV})
    key = landreg(env, "keys", "create", "clerk", "--name", "c").stdout.strip()
    port = free_port()
    proc = spawn(env, "serve", "--port", str(port), "--workers", "2", "--no-worker", stdout=subprocess.DEVNULL,
                 stderr=subprocess.DEVNULL)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    yield base, key, proc, env
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=90)


BODIES = {
    "json": ("application/json", DEEP),
    "json-object": ("application/json", DEEP_OBJECT),
    "text": ("text/plain", DEEP),
    "none": (None, DEEP),
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", [*BODIES, "multipart"])
def test_deep_input_to_every_route_gets_a_4xx_and_the_service_stays_up(server, kind):
    base, key, proc, _env = server
    problems = []
    with httpx.Client(base_url=base, timeout=30) as client:
        for method, path in routes():
            for auth in ({}, {"Authorization": f"Bearer {key}"}):
                url = concrete(path)
                if kind == "multipart":
                    files = {"bundle_file": ("b.json", DEEP, "application/json"),
                             "receipt_file": ("r.json", DEEP_OBJECT, "application/json")}  # fmt: skip
                    r = client.request(method, url, files=files, headers=auth)
                else:
                    content_type, body = BODIES[kind]
                    headers = {**auth, **({"Content-Type": content_type} if content_type else {})}
                    r = client.request(method, url, content=body, headers=headers)
                to_login = r.status_code == 303 and r.headers.get("location", "").startswith("/desk/login")
                if r.status_code >= 500 or (method == "POST" and not (400 <= r.status_code < 500 or to_login)):
                    problems.append((method, path, bool(auth), r.status_code, r.text[:200]))
            assert client.get("/healthz").status_code == 200, (method, path)
    assert proc.poll() is None and problems == []


@pytest.mark.slow
def test_the_cli_refuses_deep_files_without_a_traceback(server, tmp_path):
    *_, env = server
    deep = tmp_path / "deep.json"
    deep.write_bytes(DEEP)
    verify = landreg(env, "verify", str(deep))
    assert verify.returncode == 1 and "nested deeper than 32 levels" in verify.stdout
    receipt = landreg(env, "receipt", "verify", str(deep), "--bundle", str(deep))
    assert receipt.returncode == 1 and "nested deeper than 32 levels" in receipt.stdout
    trust = landreg(env, "trust", "show", str(deep))
    assert trust.returncode == 1 and "nested deeper than 32 levels" in trust.stderr
    for done in (verify, receipt, trust):
        assert "Traceback" not in done.stdout + done.stderr


# --- the request's head -------------------------------------------------------------------------------
MIB = b"a" * (1 << 20)


@pytest.mark.slow
@pytest.mark.parametrize("where", ["header", "target"])
def test_a_70_mib_head_is_refused_at_once_without_growing_the_process(server, where):
    """A header (or request target) that never ends kept a process busy for 8-20 s and grew it by
    ~100 MB (httptools buffers it whole): it is answered 431 after the first few hundred KB."""
    base, _key, proc, _env = server
    port = int(base.rsplit(":", 1)[1])
    http = spawned_children(proc.pid)
    before = {pid: rss_kb(pid) for pid in http}
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " if where == "header" else b"GET /healthz?q="
    started = time.monotonic()
    answer = raw_request(port, head, MIB, times=70, timeout=15)
    took = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 431 "), (answer[:300], took)
    assert took < 10  # a few ms when the machine is quiet; before the bound, no answer at all
    grown = {pid: rss_kb(pid) - kb for pid, kb in before.items()}
    assert max(grown.values()) < 8 * 1024, grown  # KiB: the bound buffers at most one read past it
    assert httpx.get(base + "/healthz", timeout=10).status_code == 200


@pytest.mark.slow
def test_ten_thousand_headers_are_refused_and_say_what_to_do(server):
    base, *_ = server
    port = int(base.rsplit(":", 1)[1])
    many = b"".join(b"X-%d: a\r\n" % i for i in range(10_000))
    answer = raw_request(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n", timeout=15)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 "), answer[:300]
    error = json.loads(body)["error"]
    assert error["code"] == "headers_too_large" and "at most 100 headers" in error["message"]
    assert "send fewer or shorter headers" in error["hint"]


@pytest.mark.slow
def test_requests_within_the_limits_are_served_as_before(server):
    base, key, *_ = server
    headers = {f"X-Extra-{i}": "v" * 100 for i in range(80)} | {"Cookie": "c=" + "x" * 16_000}
    with httpx.Client(base_url=base, timeout=30) as client:
        assert client.get("/healthz", headers=headers).status_code == 200
        r = client.get("/api/v1/status", headers={**headers, "Authorization": f"Bearer {key}"})
        assert r.status_code == 200, r.text
        # one header over the count, or a cookie that takes the head over the size: refused
        assert client.get("/healthz", headers={f"X-{i}": "v" for i in range(101)}).status_code == 431
        assert client.get("/healthz", headers={"Cookie": "c=" + "x" * 33_000}).status_code == 431
        assert client.get("/healthz").status_code == 200


@pytest.mark.slow
def test_a_killed_http_process_is_replaced_while_the_others_serve(server):
    base, _key, proc, _env = server

    def http_children() -> list[int]:
        return spawned_children(proc.pid)

    answered, failed = [], []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=base, timeout=10) as client:
            while not stop.is_set():
                try:
                    answered.append(client.get("/healthz").status_code)
                except httpx.HTTPError:
                    failed.append(1)

    before = http_children()
    assert len(before) >= 2
    thread = threading.Thread(target=load)
    thread.start()
    time.sleep(0.5)
    subprocess.run(["kill", "-9", str(before[0])], check=True)
    for _ in range(100):  # the replacement starts (it imports and builds the app first)
        time.sleep(0.2)
        if len(http_children()) == len(before):
            break
    time.sleep(1)
    stop.set()
    thread.join()
    after = http_children()
    assert before[0] not in after and len(after) == len(before)  # replaced
    assert answered.count(200) > 50 and len(failed) <= 5  # the other process kept answering
    assert all(httpx.get(base + "/healthz", timeout=30).status_code == 200 for _ in range(20))


# --- a burst of process deaths ---------------------------------------------------------------------------
def burst_env(tmp_path) -> dict[str, str]:
    import os

    from tests.conftest import PASSPHRASE_ENV

    env = {k: v for k, v in os.environ.items() if not k.startswith("LANDREG_") and k != "DATABASE_URL"}
    env.update({"LANDREG_HOME": str(tmp_path / "home"), "LANDREG_CHAIN__ANVIL_PORT": str(free_port()),
                **PASSPHRASE_ENV,
                # the production back-off (1 s doubling to 30 s, over a minute) shrunk to test in seconds
                "LANDREG_SERVICE__RESTART_BACKOFF_S": "0.1", "LANDREG_SERVICE__RESTART_BACKOFF_MAX_S": "0.4",
                "LANDREG_SERVICE__RESTART_WINDOW_S": "15"})  # fmt: skip
    return env


def processes_check(base: str) -> dict:
    """/readyz's view of the server's processes (the chain is down in these tests: no anvil)."""
    return httpx.get(base + "/readyz", timeout=60).json()["checks"]["processes"]


@pytest.mark.slow
@pytest.mark.parametrize("workers", [2, 1])
def test_a_burst_of_kills_never_stops_the_server(tmp_path, workers):
    """Eleven SIGKILLs of HTTP processes within 60 s made the server exit and close the port; now
    each is replaced (after a back-off), /readyz says so while it lasts, then all is well again."""
    server = Server(burst_env(tmp_path), tmp_path, "--workers", str(workers), "--no-worker")
    server.start()
    assert server.proc is not None
    answered, failed = [], []
    stop = threading.Event()

    def load() -> None:  # with two processes, the one never killed answers throughout
        with httpx.Client(base_url=server.base, timeout=30) as client:
            while not stop.is_set():
                try:
                    answered.append(client.get("/healthz").status_code)
                except httpx.HTTPError as exc:
                    failed.append(repr(exc))
                time.sleep(0.02)

    try:
        # 16949d2 ran `--workers 1` in the server's own process: killing "the HTTP process" killed it
        # /readyz answered by one process is not all of them started: the kills begin when all listen
        assert wait_until(lambda: listening(server.port) == workers, 60), listening(server.port)
        first = spawned_children(server.proc.pid)
        in_itself = first == []
        assert len(first) == workers or (in_itself and workers == 1)
        survivor = first[-1] if workers > 1 else None
        thread = threading.Thread(target=load)
        if workers > 1:
            thread.start()
        kills, started = 0, time.monotonic()
        while kills < 12 and time.monotonic() - started < 60:
            assert server.proc.poll() is None, f"the server exited after {kills} kills:\n{server.output()}"
            http = [server.proc.pid] if in_itself else spawned_children(server.proc.pid)
            victims = [p for p in http if p != survivor]
            if victims:
                subprocess.run(["kill", "-9", str(victims[0])], check=False)
                kills += 1
            time.sleep(0.15)
        assert kills == 12 and time.monotonic() - started < 60
        assert server.proc.poll() is None, f"the server exited after {kills} kills:\n{server.output()}"
        during = processes_check(server.base)  # with one process, answered once its replacement runs
        assert during["ok"] is False and during["http"]["deaths_in_window"] >= 11, during
        assert wait_until(lambda: processes_check(server.base)["ok"], 60, 1), processes_check(server.base)
        after = processes_check(server.base)["http"]
        assert after == {"processes": workers, "waiting_to_restart": 0, "deaths_in_window": 0, "deaths": 12,
                         "restarts": 12}  # fmt: skip
        ready = httpx.get(server.base + "/readyz", timeout=30)
        assert ready.status_code == 200 and "pid" not in ready.text  # counts for everyone, no process ids
        assert len(spawned_children(server.proc.pid)) == workers
        if workers > 1:
            stop.set()
            thread.join()
            # a connection the killed process had accepted is lost with it; none is refused
            assert answered.count(200) > 50 and len(failed) <= 12, (answered.count(200), failed)
        else:  # the one process's head is bounded too
            assert raw_request(server.port, b"GET /healthz?q=", MIB, times=5, timeout=15).startswith(b"HTTP/1.1 431 ")
        log = (tmp_path / "serve-1.log").read_text()
        assert log.count("died (killed by signal 9)") == 12 and "started landreg-http-0 again" in log
    finally:
        stop.set()
        code = server.stop()
    assert code == 0


def test_the_wait_doubles_from_the_first_step_up_to_the_cap():
    policy = RestartPolicy(backoff_s=1, backoff_max_s=30, window_s=60)
    assert [policy.delay(n) for n in range(8)] == [0, 1, 2, 4, 8, 16, 30, 30]
    assert policy.delay(10_000) == 30


def run_supervisor_checks(supervisor: Supervisor, deaths: int, timeout: float = 60) -> list[float]:
    """Drive ``supervisor``'s loop (without its signal handling) until ``deaths`` processes died;
    the wait it chose after each death."""
    for slot in supervisor.slots:
        supervisor.start(slot)
    waits: list[float] = []
    slot = supervisor.slots[0]
    deadline = time.monotonic() + timeout
    while slot.deaths < deaths and time.monotonic() < deadline:
        before = slot.deaths
        supervisor.check()
        if slot.deaths > before:
            assert slot.restart_at is not None
            waits.append(slot.restart_at - time.monotonic())
        time.sleep(0.01)
    supervisor.stop()
    if slot.process is not None:
        slot.process.join(10)
    return waits


@pytest.mark.subprocess
def test_processes_dying_young_wait_longer_and_readyz_is_told(tmp_path):
    import multiprocessing

    status = tmp_path / "serve.json"
    policy = RestartPolicy(backoff_s=0.05, backoff_max_s=0.4, window_s=30)
    crashing = Supervisor(multiprocessing.get_context("spawn"), [Child("landreg-http-0", "http", sys.exit, (3,))],
                          policy, status)  # fmt: skip
    waits = run_supervisor_checks(crashing, 6)
    assert [round(w, 2) for w in waits] == [0.05, 0.1, 0.2, 0.4, 0.4, 0.4], waits  # the cap holds
    crashing.write_status()
    seen = supervision(status)
    assert seen is not None and seen["ok"] is False
    assert seen["http"] == {"processes": 1, "waiting_to_restart": 1, "deaths_in_window": 6, "deaths": 6, "restarts": 5}
    assert supervision(status, now=time.time() + 31)["http"]["deaths_in_window"] == 0  # type: ignore[index]


@pytest.mark.subprocess
def test_a_process_that_had_run_its_window_is_replaced_at_once(tmp_path):
    import multiprocessing

    policy = RestartPolicy(backoff_s=5, backoff_max_s=5, window_s=0.5)
    # each lives a second, longer than the window: however many die, none is held back
    steady = Supervisor(multiprocessing.get_context("spawn"), [Child("landreg-http-0", "http", time.sleep, (1.0,))],
                        policy, None)  # fmt: skip
    waits = run_supervisor_checks(steady, 3)
    assert len(waits) == 3 and max(waits) < 0.01, waits


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_port_in_use_is_refused_at_once_not_retried_forever(tmp_path, workers):
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        port = str(taken.getsockname()[1])
        done = landreg(burst_env(tmp_path), "serve", "--port", port, "--workers", workers, "--no-worker", timeout=120)
    finally:
        taken.close()
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and "choose another port with --port" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.slow
def test_the_processes_stop_when_the_supervisor_is_killed(tmp_path):
    """Orphans would hold the port, and the next `landreg serve` could not bind it."""
    server = Server(burst_env(tmp_path), tmp_path, "--workers", "2", "--no-worker")
    server.start()
    assert server.proc is not None
    assert wait_until(lambda: listening(server.port) == 2, 60), listening(server.port)
    children = spawned_children(server.proc.pid)
    assert len(children) == 2
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(30)

    def gone() -> bool:
        return not any(Path(f"/proc/{pid}").exists() and "spawn_main" in cmdline(pid) for pid in children)

    assert wait_until(gone, 90), [cmdline(pid) for pid in children]
    assert listening(server.port) == 0
    server.start()  # the port is free for the next server
    assert server.stop() == 0
