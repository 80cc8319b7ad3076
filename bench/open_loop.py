"""An open-loop HTTP load generator: requests at a constant offered rate, each one's latency taken
from the moment it was *due*, not the moment a connection was free to send it.

    python bench/open_loop.py --url http://127.0.0.1:8000 --kind filing --rate 100 --connections 6 \
        --seconds 30 --key lr_...
    python bench/open_loop.py --url ... --kind proof --numbers numbers.txt --rate 300 --connections 16 ...
    python bench/open_loop.py --url ... --kind filing --closed --connections 6 ...   # saturated rate

wrk (closed loop) sends a connection's next request only when the last one is answered, so a server
that stalls for 200 ms is offered nothing meanwhile and the stall shows up in one sample instead of
in every request that should have been sent during it ("coordinated omission"). Here a scheduler
releases request i at ``start + i / rate`` whatever happens, onto a fixed pool of keep-alive
connections; a request that waits for a free connection has that wait in its latency, as a client
of a real registry would. (Debian has no wrk2, which does the same in C.)

Runs in a process of its own (never the server's), on uvloop, with a small hand-written HTTP/1.1
client: httpx costs several times the CPU per request, and on a 2-core machine the load generator's
CPU is taken from the server. ``--closed`` is the closed-loop mode, for the saturated rate. Prints
one JSON object: offered and achieved rate, counts by status, latency percentiles in ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

MUNIS = ["0201", "0209", "0215", "0219", "0223", "0240", "0250", "0261"]
CONFIRM = ["new_parcel", "possible_duplicate", "grantor_not_owner", "conflicting_conveyance"]


def filing_body(rng: random.Random, munis: list[str] = MUNIS) -> bytes:
    """A deed like service_load.py's: a random parcel of eight municipalities (mostly new to the
    book), confirmed up front so it is recorded at once (201), never left waiting."""
    return json.dumps({
        "doc_type": "DEED", "grantors": [f"SELLER {rng.randint(1, 10**6)}"],
        "grantees": [f"BUYER {rng.randint(1, 10**6)}", f"CO-BUYER {rng.randint(1, 10**6)}"],
        "parcels": [{"municipality_code": rng.choice(munis), "block": str(rng.randint(1, 3000)),
                     "lot": str(rng.randint(1, 40))}],
        "consideration": f"{rng.randint(100000, 2000000)}.00",
        "legal_description": "ALL that certain lot, piece or parcel of land.",
        "document_digest": f"{rng.getrandbits(256):064x}", "preparer": "ANNA LEE, ESQ.",
        "grantee_mailing_address": "12 MAIN STREET, HACKENSACK NJ 07601",
        "confirm": CONFIRM, "confirm_reason": "benchmark load: recorded as filed",
    }).encode()  # fmt: skip


def request_maker(kind: str, host: str, path: str, key: str, numbers: list[str], seed: int,
                  munis: list[str] = MUNIS) -> Callable[[], bytes]:  # fmt: skip
    rng = random.Random(seed)
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    if kind == "filing":

        def make() -> bytes:
            body = filing_body(rng, munis)
            head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n")  # fmt: skip
            return head.encode() + body

        return make

    def fetch() -> bytes:
        target = path.replace("{n}", rng.choice(numbers))
        return f"GET {target} HTTP/1.1\r\nHost: {host}\r\n{auth}\r\n".encode()

    return fetch


class Conn:
    """One keep-alive connection; reconnects when the server closes it."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def exchange(self, request: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length, close = 0, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
            elif name == b"transfer-encoding":
                raise RuntimeError("chunked responses are not read by this client")
        if length:
            await self.reader.readexactly(length)
        if close:
            self.close()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def drive(url: str, make: Callable[[], bytes], rate: float, connections: int, seconds: float,
                closed: bool) -> dict:  # fmt: skip
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    errors: list[str] = []
    due: asyncio.Queue[float | None] = asyncio.Queue()
    start = time.perf_counter() + 0.05
    deadline = start + seconds

    async def worker() -> None:
        conn = Conn(host, port)
        while True:
            if closed:
                intended = time.perf_counter()
                if intended >= deadline:
                    break
            else:
                got = await due.get()
                if got is None:
                    break
                intended = got
            try:
                status = await conn.exchange(make())
                statuses[str(status)] = statuses.get(str(status), 0) + 1
            except (OSError, asyncio.IncompleteReadError, ValueError, RuntimeError) as exc:
                conn.close()
                errors.append(type(exc).__name__)
                continue
            latencies.append(time.perf_counter() - intended)
        conn.close()

    async def schedule() -> None:
        total = int(rate * seconds)
        for i in range(total):
            at = start + i / rate
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            due.put_nowait(at)  # due at ``at`` even if this loop woke late: the lateness counts
        for _ in range(connections):
            due.put_nowait(None)

    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    if not closed:
        await schedule()
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - start
    latencies.sort()

    def pct(p: float) -> float:
        if not latencies:
            return float("nan")
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000

    return {
        "mode": "closed" if closed else "open", "offered_per_s": None if closed else rate,
        "connections": connections, "seconds": round(elapsed, 2), "completed": len(latencies),
        "achieved_per_s": round(len(latencies) / elapsed, 1), "statuses": statuses, "errors": len(errors),
        "p50_ms": round(pct(50), 2), "p90_ms": round(pct(90), 2), "p99_ms": round(pct(99), 2),
        "p999_ms": round(pct(99.9), 2), "max_ms": round(latencies[-1] * 1000, 2) if latencies else None,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the server's base, http://127.0.0.1:PORT")
    parser.add_argument("--kind", choices=["filing", "proof"], required=True)
    parser.add_argument("--path", help="default: /api/v1/instruments, or /api/v1/instruments/{n}/proof")
    parser.add_argument("--numbers", type=Path, help="instrument numbers to fetch proofs of, one a line")
    parser.add_argument("--rate", type=float, default=100.0, help="offered requests per second")
    parser.add_argument("--connections", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--closed", action="store_true", help="closed loop: as fast as answers come back")
    parser.add_argument("--key", default=os.environ.get("LANDREG_BENCH_KEY", ""))
    parser.add_argument(
        "--municipalities",
        default=",".join(MUNIS),
        help="the filings' parcels' municipality codes (give two runs disjoint parcels)",
    )
    parser.add_argument("--seed", type=int, default=int.from_bytes(os.urandom(4), "big"))
    args = parser.parse_args()
    if not 0 < args.seconds <= 600 or not 0 < args.rate <= 5000:
        sys.exit("bounded runs only: --seconds up to 600, --rate up to 5,000/s")
    if urlsplit(args.url).hostname not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("this generator only loads a server on this machine's loopback")
    path = args.path or ("/api/v1/instruments" if args.kind == "filing" else "/api/v1/instruments/{n}/proof")
    numbers = args.numbers.read_text().split() if args.numbers else []
    if args.kind == "proof" and not numbers:
        sys.exit("--numbers is needed for proof fetches")
    host = urlsplit(args.url).netloc
    make = request_maker(args.kind, host, path, args.key, numbers, args.seed, args.municipalities.split(","))
    run = drive(args.url, make, args.rate, args.connections, args.seconds, args.closed)
    try:
        import uvloop

        result = uvloop.run(run)
    except ImportError:
        result = asyncio.run(run)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
