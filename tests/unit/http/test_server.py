"""uvicorn's HTTP protocol as hardened for untrusted clients, on a real uvicorn server in this
process (a trivial app): deadlines for request heads and idle connections, a cap on head size,
and room made at the connection limit for a client with a complete request."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from app.http.server import MAX_HEADER_BYTES, ConnectionLimits, hardened_protocol
from bench.server import free_port

HEADER_TIMEOUT_S = 0.5
KEEP_ALIVE_S = 1
MAX_CONNECTIONS = 4


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    chosen = free_port()
    config = uvicorn.Config(
        hello,
        host="127.0.0.1",
        port=chosen,
        http=hardened_protocol(ConnectionLimits(HEADER_TIMEOUT_S, MAX_CONNECTIONS)),
        timeout_keep_alive=KEEP_ALIVE_S,
        limit_concurrency=MAX_CONNECTIONS,
        lifespan="off",
        log_level="warning",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield chosen
    server.should_exit = True
    thread.join(10)


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def _answer(sock: socket.socket) -> bytes:
    """Everything until the server closes the connection (or 5 s pass)."""
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return received


def _closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_a_complete_request_is_served(port: int) -> None:
    with _connect(port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        assert _answer(sock).startswith(b"HTTP/1.1 200")


def test_a_head_that_trickles_past_its_deadline_gets_408_and_is_closed(port: int) -> None:
    with _connect(port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n")
        for _ in range(6):  # a byte every 0.2 s: each one alone would restart an idle timer
            time.sleep(0.2)
            try:
                sock.sendall(b"X")
            except (BrokenPipeError, ConnectionResetError):
                break
        assert _answer(sock).startswith(b"HTTP/1.1 408")


def test_a_head_over_the_size_cap_gets_400(port: int) -> None:
    with _connect(port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(b"X-Filler: " + b"a" * (MAX_HEADER_BYTES + 1024) + b"\r\n")
        assert _answer(sock).startswith(b"HTTP/1.1 400")


def test_a_connection_that_never_sends_a_request_is_closed(port: int) -> None:
    with _connect(port) as sock:
        started = time.monotonic()
        assert _closed(sock)
        assert time.monotonic() - started < KEEP_ALIVE_S + 2


def test_at_the_limit_the_longest_waiting_idle_connections_make_room(port: int) -> None:
    idle = [_connect(port) for _ in range(MAX_CONNECTIONS)]
    time.sleep(0.2)  # all four are open and waiting
    try:
        with _connect(port) as client:
            client.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            assert _answer(client).startswith(b"HTTP/1.1 200")  # not 503
        assert _closed(idle[0])  # the one that waited longest was closed for it
    finally:
        for sock in idle:
            sock.close()
