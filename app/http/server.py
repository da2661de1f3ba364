"""uvicorn's httptools protocol, hardened for untrusted clients (used by ``app.serve``).

- **A deadline for the whole request head** (``FLOWERS_HEADER_TIMEOUT_S``): from its first byte,
  a request line and headers must be complete within the deadline, however the bytes trickle
  (uvicorn restarts its keep-alive timer on every byte, so one byte every 4 s held a connection
  forever).  Late heads get 408 and the connection is closed.
- **A connection that never sends a request** is closed after the keep-alive timeout (uvicorn
  starts that timer only after a first response).
- **Request heads over MAX_HEADER_BYTES, or with more than MAX_HEADERS headers**, get 400
  (httptools buffers heads of any size).  A head's bytes are counted as the parser reads them,
  never with the bytes of a body that share a read with it: a pipelined request after a large
  body is not mistaken for a large head.
- **At the connection limit, waiting connections make room**: when a complete request arrives
  while ``FLOWERS_MAX_CONNECTIONS`` connections are open, the connections that have waited
  longest without a request in progress (idle keep-alives, trickling heads) are closed so that
  the request is served; uvicorn alone answered it 503, so a few thousand slow sockets could
  take the service down for every client and for the load balancer's health checks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEADER_BYTES: Final = 64 * 1024
MAX_HEADERS: Final = 100
_HEAD_TOO_LARGE: Final = "Request headers are too large."
_SLOW_HEAD: Final = b"The request head took too long.\n"
_TIMEOUT_408: Final = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(_SLOW_HEAD), _SLOW_HEAD)
)


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout_s: float
    max_connections: int


class HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing a head over its limits."""


def hardened_protocol(limits: ConnectionLimits) -> type[HttpToolsProtocol]:
    """The protocol class for ``uvicorn.Config(http=...)``, with these limits."""
    return type("HardenedHttpToolsProtocol", (HardenedHttpToolsProtocol,), {"limits": limits})


class HardenedHttpToolsProtocol(HttpToolsProtocol):
    limits: ClassVar[ConnectionLimits]
    _reading_head = False
    _head_bytes = 0  # of the head being read
    _headers = 0
    _consumed = 0  # bytes of the current read that the parser has passed on (heads, bodies)
    _begun_at: int | None = None  # where in the current read a message began (None: before it)
    _head_too_large = False
    _waiting_since = 0.0
    _head_timer: Any = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._waiting_since = time.monotonic()
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        head_before = self._head_bytes if self._reading_head else 0
        self._consumed, self._begun_at = 0, None
        super().data_received(data)
        if self._reading_head:
            # The head goes on after this read: every byte since it began is head, a header the
            # parser holds until it ends included (not the bytes of what came before it).
            began = self._begun_at
            self._head_bytes = head_before if began is None else 0
            self._add_head_bytes(len(data) - (began or 0), raising=False)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_head, self._begun_at = True, self._consumed
        self._head_bytes, self._headers = 0, 0
        self._stop_head_timer()
        self._head_timer = self.loop.call_later(self.limits.header_timeout_s, self._head_too_slow)

    def on_url(self, url: bytes) -> None:
        self._add_head_bytes(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers += 1
        self._add_head_bytes(len(name) + len(value) + 4)  # ": " and CRLF
        super().on_header(name, value)

    def on_body(self, body: bytes) -> None:
        self._consumed += len(body)
        super().on_body(body)

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._stop_head_timer()
        self._make_room()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        self._waiting_since = time.monotonic()
        super().on_response_complete()

    def send_400_response(self, msg: str) -> None:
        super().send_400_response(_HEAD_TOO_LARGE if self._head_too_large else msg)

    def _add_head_bytes(self, size: int, raising: bool = True) -> None:
        self._head_bytes += size
        self._consumed += size
        if self._head_bytes <= MAX_HEADER_BYTES and self._headers <= MAX_HEADERS:
            return
        self._head_too_large = True
        if raising:  # inside the parser: stops it; uvicorn answers 400 (send_400_response)
            raise HeadTooLarge(_HEAD_TOO_LARGE)
        if not self.transport.is_closing():
            self.send_400_response(_HEAD_TOO_LARGE)

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self._reading_head and not self.transport.is_closing():
            self.transport.write(_TIMEOUT_408)
            self.transport.close()

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _waiting(self) -> bool:
        """No request of this connection is being served: idle, or reading a head."""
        return self.cycle is None or bool(self.cycle.response_complete)

    def _make_room(self) -> None:
        excess = len(self.connections) - self.limits.max_connections + 1
        if excess <= 0:
            return
        waiting = [
            c
            for c in self.connections
            if isinstance(c, HardenedHttpToolsProtocol) and c is not self and c._waiting()
        ]
        for victim in sorted(waiting, key=lambda c: c._waiting_since)[:excess]:
            victim.transport.close()
            self.connections.discard(victim)  # counts at once; connection_lost comes later
