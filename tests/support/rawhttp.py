"""Raw HTTP/1.1 over a socket, for tests that need to control every byte a client sends."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator


def request_head(path: str, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: test", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def stream_until_answered(
    port: int, head: bytes, chunks: Iterator[bytes], pause_s: float
) -> tuple[int, int]:
    """Send ``head`` then chunks (pausing between them) until the server answers.

    Returns (status, body bytes sent before the answer)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head)
    answer = asyncio.create_task(reader.readline())
    sent = 0
    try:
        for chunk in chunks:
            if answer.done():
                break
            writer.write(chunk)
            await writer.drain()
            sent += len(chunk)
            await asyncio.sleep(pause_s)
        status_line = await asyncio.wait_for(answer, 30)
    except (ConnectionError, OSError):
        status_line = await asyncio.wait_for(answer, 30)
    finally:
        writer.close()
    return int(status_line.split()[1]), sent


def garbage(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    block = os.urandom(size)
    for _ in range(total // size):
        yield block
