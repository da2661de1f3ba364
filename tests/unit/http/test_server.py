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

from app.http.server import MAX_HEADER_BYTES, MAX_HEADERS, ConnectionLimits, hardened_protocol
from bench.server import free_port

HEADER_TIMEOUT_S = 0.5
KEEP_ALIVE_S = 1
MAX_CONNECTIONS = 4


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the whole body, then answers with its size."""
    size, more = 0, True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello %d" % size})


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


@pytest.mark.parametrize(
    "head",
    [
        b"GET / HTTP/1.1\r\nHost: t\r\nX-Filler: " + b"a" * 100_000 + b"\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: t\r\n"
        + b"".join(b"X-%d: 1\r\n" % i for i in range(10_000))
        + b"\r\n",
        b"GET /" + b"a" * (MAX_HEADER_BYTES + 10) + b" HTTP/1.1\r\nHost: t\r\n\r\n",
    ],
    ids=["100 KB header in one write", "10,000 headers in one write", "a 64 KB URL"],
)
def test_a_head_over_the_limits_sent_in_one_write_gets_400(port: int, head: bytes) -> None:
    """The bytes of the read that completes a head were never counted: 100 KB heads and 10,000
    headers got 200; only heads of 199 KB and more were refused."""
    with _connect(port) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head)
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 400") and b"Request headers are too large" in answer


def test_the_headers_allowed_are_served(port: int) -> None:
    headers = b"".join(b"X-%d: 1\r\n" % i for i in range(MAX_HEADERS - 2))
    with _connect(port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" + headers + b"\r\n")
        assert _answer(sock).startswith(b"HTTP/1.1 200")


def test_a_pipelined_request_after_a_large_body_keeps_both_answers(port: int) -> None:
    """A 272 KB body then, on the same connection, a GET whose head arrives in two reads: the
    GET's head was counted with the body's bytes (400, and the first answer was lost)."""
    body = b"x" * (272 * 1024)
    first = b"POST /infer HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body)
    second = b"GET /next HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    with _connect(port) as sock:
        sock.sendall(first + body + second[:20])
        time.sleep(0.3)
        sock.sendall(second[20:])
        answer = _answer(sock)
    assert answer.count(b"HTTP/1.1 200") == 2, answer[:300]
    assert b"hello %d" % len(body) in answer and b"hello 0" in answer


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
