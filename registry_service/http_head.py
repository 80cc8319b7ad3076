"""A request's head (request line and headers) bounded while it arrives, before anything buffers it.

httptools, uvicorn's fast parser, has no limit of its own: it keeps concatenating a header's value
until the line ends, so one 70 MB header kept a process busy for seconds and grew it by 100 MB,
and nothing the app does can help, because the app sees a request only once its head is complete.
So the bound sits in the protocol: complete headers are counted and sized exactly as the parser
hands them over, the bytes of a head still incomplete are counted as they arrive (all but the
read it began in, whose start within the read the parser does not tell: so at most one read,
256 KB, is buffered beyond the limit), and a head over either limit is answered 431 and the
connection closed. h11 has a size
limit but parses in Python, ~5x the CPU per request: docs/benchmarks.md, "Bounded request heads".
"""

from __future__ import annotations

import asyncio
import json
import logging

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)


class _HeadTooLarge(Exception):
    """Raised inside a parser callback to stop parsing a head that went over a limit."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a head of at most ``max_head_bytes`` bytes (request line
    and headers) and ``max_headers`` headers. Build one with :func:`bounded_protocol`."""

    max_head_bytes = 32_768
    max_headers = 100

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.head_pending = False
        self.began_in_read = False
        self.head_bytes = 0  # exact: the request line and the headers the parser handed over
        self.arrived = 0  # the raw bytes of the head that came in reads after the one it began in
        self.header_count = 0
        self.too_large = False

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.head_pending = True
        self.began_in_read = True
        self.head_bytes = self.arrived = self.header_count = 0

    def on_url(self, url: bytes) -> None:
        self.head_bytes += len(url)
        if self.head_bytes > self.max_head_bytes:
            self.too_large = True
            raise _HeadTooLarge
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_count += 1
        self.head_bytes += len(name) + len(value) + 4  # ": " and CRLF, as on the wire
        if self.header_count > self.max_headers or self.head_bytes > self.max_head_bytes:
            self.too_large = True
            raise _HeadTooLarge
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self.head_pending = False
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        # uvicorn's own data_received, plus the head's limits; its 400 for anything unparseable stays
        self._unset_keepalive_if_required()
        self.began_in_read = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            if self.too_large:
                self.refuse_head()
            else:
                msg = "Invalid HTTP request received."
                self.logger.warning(msg)
                self.send_400_response(msg)
            return
        if self.head_pending and not self.began_in_read:
            # a header still being received reaches on_header only when it ends: count what arrived
            self.arrived += len(data)
            if self.arrived > self.max_head_bytes:
                self.too_large = True
                self.refuse_head()

    def refuse_head(self) -> None:
        log.warning("refused a request whose head is over %d bytes or %d headers (client %s)",
                    self.max_head_bytes, self.max_headers, self.client)  # fmt: skip
        body = json.dumps({"error": {
            "code": "headers_too_large",
            "message": f"the request's headers are too large: at most {self.max_headers} headers and "
                       f"{self.max_head_bytes} bytes with the request line are accepted",
            "hint": "send fewer or shorter headers (a cookie or token that grew too long, perhaps)",
        }}).encode()  # fmt: skip
        head = (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body))  # fmt: skip
        self.transport.write(head + body)
        self.transport.close()


def bounded_protocol(max_head_bytes: int, max_headers: int) -> type[BoundedHttpToolsProtocol]:
    """The protocol class uvicorn is given (``Config(http=...)``), with these limits."""
    limits = {"max_head_bytes": max_head_bytes, "max_headers": max_headers}
    return type("BoundedHttpToolsProtocol", (BoundedHttpToolsProtocol,), limits)
