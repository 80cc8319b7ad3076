"""Benchmark: CPU time per request of the HTTP protocols uvicorn can run, in one process.

    python bench/http_parsers.py [--requests 20000] [--rounds 7]

Each protocol (httptools unbounded, as before issue 20; httptools with landreg's head bound,
registry_service/http_head.py; h11 with its size bound) is fed one keep-alive connection of
filing requests (the head and body bench/service_load.py sends) through a stand-in transport, and
answers them from a trivial ASGI app, so the figure is the protocol's own cost per request (on
asyncio's loop; production adds uvloop, which cuts the loop's share, not the parser's).
Rounds alternate the order; the medians and every round are printed. CPU time, so the machine's
other load moves it less than a wall-clock rate would.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BODY = (
    b'{"doc_type":"DEED","grantors":["SELLER 1"],"grantees":["BUYER 2","CO-BUYER 3"],'
    b'"parcels":[{"municipality_code":"0223","block":"12","lot":"3"}],"consideration":"123456.00",'
    b'"legal_description":"ALL that certain lot, piece or parcel of land.","document_digest":"' + b"ab" * 32 + b'"}'
)
REQUEST = (
    b"POST /api/v1/instruments HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nContent-Type: application/json\r\n"
    b"Authorization: Bearer lr_abcdefghijklmnopqrstuvwxyz0123456789abcdefghij\r\nUser-Agent: wrk\r\n"
    b"Content-Length: %d\r\n\r\n" % len(BODY)
) + BODY


async def app(scope: dict, receive: Any, send: Any) -> None:
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 201, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"ok":true}'})


class Transport:
    """What the protocols call on a socket's transport, counting the writes."""

    def __init__(self) -> None:
        self.writes = 0
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def write(self, _data: bytes) -> None:
        self.writes += 1

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def per_request_us(http: Any, requests: int) -> float:
    from uvicorn.config import Config
    from uvicorn.server import ServerState

    extra = {"h11_max_incomplete_event_size": 32_768} if http == "h11" else {}
    config = Config(app=app, http=http, log_level="warning", lifespan="off", access_log=False, **extra)
    config.load()
    protocol = config.http_protocol_class(config=config, server_state=ServerState(), app_state={})
    transport = Transport()
    protocol.connection_made(transport)
    started = time.process_time()
    for _ in range(requests):
        answered = transport.writes + 2  # the response's start and its body
        protocol.data_received(REQUEST)
        while transport.writes < answered and not transport.closed:
            await asyncio.sleep(0)
    assert not transport.closed, "the protocol closed the connection"
    return (time.process_time() - started) / requests * 1e6


def main() -> None:
    from registry_service.http_head import bounded_protocol

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    kinds: dict[str, Any] = {
        "httptools, unbounded (before)": "httptools",
        "httptools + head bound (landreg)": bounded_protocol(32_768, 100),
        "h11, 32 KiB bound": "h11",
    }
    results: dict[str, list[float]] = {name: [] for name in kinds}
    for r in range(args.rounds):
        order = list(kinds.items()) if r % 2 == 0 else list(kinds.items())[::-1]
        for name, http in order:
            results[name].append(asyncio.run(per_request_us(http, args.requests)))
    for name, values in results.items():
        rounds = ", ".join(f"{v:.1f}" for v in values)
        print(f"{name}: median {statistics.median(values):.1f} µs CPU per request [{rounds}]")


if __name__ == "__main__":
    main()
