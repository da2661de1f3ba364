"""Slowloris against the real server: thousands of connections that trickle their headers.

Each attacker connection sends the start of a request head, then one byte every 2 s, and
reconnects as soon as it is closed, from its own loopback addresses (127.0.0.2-9), so the
server's connection limit stays full for the whole test.  Meanwhile a well-behaved client asks
for readiness and predictions: every answer must be 200.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import statistics
import threading
import time
from collections.abc import Iterator

import httpx2 as httpx
import pytest

from app.store.versions import ModelStore
from tests.support import imagefactory as make
from tests.support.modelfactory import publish_tiny
from tests.support.servers import Server, running_server

pytestmark = pytest.mark.slow

ATTACKERS = 2100
MAX_CONNECTIONS = 2048
HEADER_TIMEOUT_S = 3.0
TRICKLE_EVERY_S = 2.0
ATTACK_S = 20.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    store = ModelStore(tmp_path_factory.mktemp("flood") / "store")
    publish_tiny(store, ["a", "b", "c"])
    env = {
        "FLOWERS_MODEL_STORE": str(store.root),
        "FLOWERS_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
        "FLOWERS_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
        "FLOWERS_LOG_LEVEL": "error",
        "FLOWERS_POLL_INTERVAL_S": "0",
    }
    with running_server(env) as running:
        yield running


class Trickle:
    """ATTACKERS connections kept open and trickling, reconnecting when the server closes one."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.open = 0
        self.peak_open = 0
        self.closed_by_server = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> Trickle:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    async def _run(self) -> None:
        await asyncio.gather(*(self._attacker(i) for i in range(ATTACKERS)))

    async def _attacker(self, index: int) -> None:
        source = (f"127.0.0.{2 + index % 8}", 0)
        while not self._stop.is_set():
            with contextlib.suppress(OSError):
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", self.port, local_addr=source
                )
                self.open += 1
                self.peak_open = max(self.peak_open, self.open)
                try:
                    await self._trickle(reader, writer)
                finally:
                    self.open -= 1
                    writer.close()
            await asyncio.sleep(0.05)

    async def _trickle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"GET /health/live HTTP/1.1\r\nHost: x\r\n")
        await writer.drain()
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(reader.read(1024), TRICKLE_EVERY_S)
            except TimeoutError:
                writer.write(b"X")  # one more byte of a header that never ends
                await writer.drain()
                continue
            self.closed_by_server += 1  # an answer (408) or EOF: the server let go
            return


def test_ready_and_predict_answer_200_throughout_a_slowloris_flood(server: Server) -> None:
    statuses: list[int] = []
    latencies: list[float] = []
    image = {"file": ("x.jpg", make.jpeg(seed=1), "image/jpeg")}
    with Trickle(server.port) as attack:
        time.sleep(4)  # the flood fills the connection limit
        deadline = time.monotonic() + ATTACK_S
        while time.monotonic() < deadline:
            for call in (
                lambda: httpx.get(f"{server.base}/health/ready", timeout=30),
                lambda: httpx.post(f"{server.base}/predict", files=image, timeout=30),
            ):
                started = time.monotonic()
                statuses.append(call().status_code)
                latencies.append(time.monotonic() - started)
            time.sleep(0.25)
        peak, closed = attack.peak_open, attack.closed_by_server
    print(
        f"\nslowloris: {ATTACKERS} trickling connections (peak {peak} open at once, "
        f"{closed} closed by the server), {len(statuses)} legitimate requests: "
        f"statuses {sorted(set(statuses))}, latency median {statistics.median(latencies):.3f}s "
        f"max {max(latencies):.3f}s"
    )
    assert peak >= MAX_CONNECTIONS - 50  # the limit really was full
    assert statuses and set(statuses) == {200}


def test_a_head_that_trickles_is_closed_at_its_deadline(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n")
        answer = b""
        while time.monotonic() - started < 20:
            sock.settimeout(1.0)
            try:
                chunk = sock.recv(4096)
            except TimeoutError:
                sock.sendall(b"X")  # a byte a second: the keep-alive timer alone never fires
                continue
            if not chunk:
                break
            answer += chunk
        held = time.monotonic() - started
    print(f"\na trickling head was answered {answer.split(b' ')[1:2]} and closed after {held:.1f}s")
    assert answer.startswith(b"HTTP/1.1 408")
    assert HEADER_TIMEOUT_S - 0.1 <= held < HEADER_TIMEOUT_S + 2
