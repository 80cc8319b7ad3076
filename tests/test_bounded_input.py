"""Nobody knocks it over: deep and huge input to every route and every CLI reader, and a killed
HTTP process replaced while the others keep serving."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hybrid_store import strict_json
from tests.conftest import free_port
from tests.processes import landreg, raw_request, rss_kb, spawn, spawned_children

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
