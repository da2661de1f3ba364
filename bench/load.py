"""A closed-loop async HTTP load generator: N clients, each sending its next request as soon as
the previous one answers, for a fixed duration.

Requests (bodies and HTTP/1.1 framing) are built before the clock starts, and each
client speaks plain HTTP/1.1 over its own keep-alive connection with asyncio streams: on a
2-core machine that shares its CPUs with the server, a full client library (httpx) spent about
2 ms of CPU per request, which the server would have lost from its own measurement.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class LoadResult:
    concurrency: int
    images_per_request: int
    seconds: float
    requests: int
    images: int
    errors: dict[str, int]
    retry_after_on_503: bool
    latencies_ms: list[float] = field(repr=False)

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")


@dataclass(frozen=True)
class Request:
    """One POST, ready to send: its path, headers and body."""

    path: str
    headers: dict[str, str]
    body: bytes


def multipart_bodies(photos: list[Path], per_request: int, count: int) -> list[Request]:
    """``count`` ready-to-send /predict requests of ``per_request`` photos each (cycling)."""
    bodies = []
    for index in range(count):
        boundary = uuid.uuid4().hex
        parts = []
        for offset in range(per_request):
            photo = photos[(index * per_request + offset) % len(photos)]
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
                f'filename="{photo.name}"\r\nContent-Type: image/jpeg\r\n\r\n'.encode()
                + photo.read_bytes()
                + b"\r\n"
            )
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        content_type = f"multipart/form-data; boundary={boundary}"
        bodies.append(Request("/predict", {"Content-Type": content_type}, body))
    return bodies


async def run(
    base_url: str,
    bodies: list[Request],
    concurrency: int,
    per_request: int,
    seconds: float,
) -> LoadResult:
    """``concurrency`` closed-loop clients, each on its own keep-alive connection."""
    host, port = base_url.removeprefix("http://").split(":")
    requests = [_http_request(host, request) for request in bodies]
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    retry_after = [True]
    deadline = time.perf_counter() + seconds

    async def client(offset: int) -> None:
        connection = await asyncio.open_connection(host, int(port))
        sent = offset
        while time.perf_counter() < deadline:
            request = requests[sent % len(requests)]
            sent += concurrency
            started = time.perf_counter()
            try:
                status, headers = await _exchange(*connection, request)
            except (OSError, asyncio.IncompleteReadError, ValueError) as error:
                statuses[type(error).__name__] += 1
                connection[1].close()
                connection = await asyncio.open_connection(host, int(port))
                continue
            if status == 200:
                latencies.append((time.perf_counter() - started) * 1000)
            else:
                statuses[str(status)] += 1
                retry_after[0] &= status != 503 or "retry-after" in headers
            if headers.get("connection") == "close":
                connection[1].close()
                connection = await asyncio.open_connection(host, int(port))
        connection[1].close()

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    ok = len(latencies)
    return LoadResult(
        concurrency,
        per_request,
        elapsed,
        ok,
        ok * per_request,
        dict(statuses),
        retry_after[0],
        latencies,
    )


def _http_request(host: str, request: Request) -> bytes:
    headers = {"Host": host, **request.headers, "Content-Length": str(len(request.body))}
    lines = [f"POST {request.path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + request.body


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, dict[str, str]]:
    """Send one prepared request; read the status, headers and body (Content-Length framed)."""
    writer.write(request)
    await writer.drain()
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionResetError("the server closed the connection")
    status = int(status_line.split()[1])
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers
