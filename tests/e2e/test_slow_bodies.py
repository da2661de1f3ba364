"""Slowly sent bodies against the real server: connections that declare large bodies and then
send a byte every few seconds.  They hold nothing of the upload budget (declaring costs a client
nothing), they are cut once they fall below the minimum rate, and honest clients are served
throughout."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Iterator

import httpx2 as httpx
import pytest

from app.store.versions import ModelStore
from tests.support import imagefactory as make
from tests.support.modelfactory import publish_tiny
from tests.support.rawhttp import request_head
from tests.support.servers import Server, running_server

pytestmark = pytest.mark.slow

MIB = 2**20
BUDGET_MIB = 128
GRACE_S = 4  # FLOWERS_UPLOAD_TIMEOUT_S: the pause allowed, and the grace before the rate counts
MIN_RATE = 16 * 1024
DECLARED_MIB = (40, 40, 30, 20, 10, 5, 3, 1)  # 149 MiB between them, over the 128 MiB budget


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    store = ModelStore(tmp_path_factory.mktemp("slow") / "store")
    publish_tiny(store, ["a", "b", "c"])
    env = {
        "FLOWERS_MODEL_STORE": str(store.root),
        "FLOWERS_MAX_INFLIGHT_BYTES": str(BUDGET_MIB * MIB),
        "FLOWERS_MAX_UPLOAD_BYTES": str(6 * MIB),
        "FLOWERS_MAX_FILES_PER_REQUEST": "8",
        "FLOWERS_UPLOAD_TIMEOUT_S": str(GRACE_S),
        "FLOWERS_UPLOAD_MIN_RATE_BYTES_S": str(MIN_RATE),
        "FLOWERS_LOG_LEVEL": "warning",
    }
    with running_server(env) as running:
        yield running


async def _trickle(port: int, declared_mib: int, every_s: float) -> tuple[int, float]:
    """Declare a body, then send one byte every ``every_s``; (status, seconds until answered)."""
    boundary = "trickle"
    head = request_head(
        "/predict",
        {
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(declared_mib * MIB),
        },
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    writer.write(head + f"--{boundary}\r\n".encode())
    answer = asyncio.create_task(reader.readline())
    try:
        while not answer.done() and time.monotonic() - started < 60:
            writer.write(b"x")
            await writer.drain()
            await asyncio.wait({answer}, timeout=every_s)
        status_line = await asyncio.wait_for(answer, 10)
    except (ConnectionError, OSError):
        status_line = await asyncio.wait_for(answer, 10)
    finally:
        writer.close()
    return int(status_line.split()[1]), time.monotonic() - started


def _honest(base: str, stop_after_s: float) -> list[tuple[int, float]]:
    """One /predict every 0.5 s for ``stop_after_s``: (status, seconds) of each."""
    answers, started = [], time.monotonic()
    files = {"file": ("rose.jpg", make.jpeg(seed=4, size=(640, 480)), "image/jpeg")}
    with httpx.Client(base_url=base, timeout=60) as client:
        while time.monotonic() - started < stop_after_s:
            sent = time.monotonic()
            status = client.post("/predict", files=files).status_code
            answers.append((status, time.monotonic() - sent))
            time.sleep(0.5)
    return answers


def test_trickling_bodies_hold_no_budget_are_cut_and_honest_clients_are_served(
    server: Server,
) -> None:
    async def attack() -> list[tuple[int, float]]:
        flood = (_trickle(server.port, size, every_s=2.0) for size in DECLARED_MIB)
        return list(await asyncio.gather(*flood))

    async def both() -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
        attacking = asyncio.create_task(attack())
        await asyncio.sleep(0.5)  # the trickles have declared their bodies
        honest = await asyncio.to_thread(_honest, server.base, GRACE_S + 4)
        return await attacking, honest

    attackers, honest = asyncio.run(both())
    latencies = [seconds for _, seconds in honest]
    print(
        f"\n{len(DECLARED_MIB)} bodies declaring {sum(DECLARED_MIB)} MiB (budget {BUDGET_MIB} "
        f"MiB), a byte every 2 s: answered {sorted({s for s, _ in attackers})} after "
        f"{min(t for _, t in attackers):.1f}-{max(t for _, t in attackers):.1f}s; honest "
        f"/predict meanwhile: {len(honest)} requests, statuses {sorted({s for s, _ in honest})}, "
        f"median {statistics.median(latencies) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms"
    )
    assert [status for status, _ in honest] == [200] * len(honest)
    assert {status for status, _ in attackers} == {408}
    assert all(GRACE_S - 0.5 <= seconds <= GRACE_S + 6 for _, seconds in attackers)
