"""Images that are cheap to send and dear to decode, against the real server, while an honest
client classifies a photo every 0.3 s: its latencies (median and max) are what this measures.

- The attack as it was found: 3 clients, each sending 16 one-colour images of 40 million pixels
  per request (a 38-byte WebP, a 30 KB GIF, a 115 KB PNG), again and again. They were decoded
  (34.5 s of the pool's time per request) and an honest /predict took 109 s.
- The attack adapted to the limits: the same pixels padded below the compression ratio that
  marks a bomb, one per request, so that each is decoded.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Iterator

import httpx2 as httpx
import pytest
from PIL import Image

from app.store.versions import ModelStore
from tests.support import imagefactory as make
from tests.support.modelfactory import publish_tiny
from tests.support.servers import Server, running_server

pytestmark = pytest.mark.slow

ATTACKERS = 3
SECONDS = 12.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    store = ModelStore(tmp_path_factory.mktemp("bombs") / "store")
    publish_tiny(store, ["a", "b", "c"])
    env = {
        "FLOWERS_MODEL_STORE": str(store.root),
        "FLOWERS_MAX_FILES_PER_REQUEST": "16",
        "FLOWERS_MAX_UPLOAD_BYTES": str(1024 * 1024),
        "FLOWERS_LOG_LEVEL": "warning",
    }
    with running_server(env) as running:
        yield running


def _bombs() -> list[tuple[str, bytes]]:
    webp = make.encode(Image.new("RGB", (16383, 2420), (10, 200, 30)), "WEBP", lossless=True)
    gif = make.encode(Image.new("P", (6300, 6300), 3), "GIF")
    return [("bomb.webp", webp), ("bomb.gif", gif), ("bomb.png", make.flat_png(6300, 6300))]


async def _attack(base: str, files: list[tuple[str, bytes]], until: float) -> list[int]:
    statuses = []
    parts = [("files", (name, data, "application/octet-stream")) for name, data in files]
    async with httpx.AsyncClient(base_url=base, timeout=300) as client:
        while time.monotonic() < until:
            statuses.append((await client.post("/predict", files=parts)).status_code)
    return statuses


async def _honest(base: str, until: float) -> list[tuple[int, float]]:
    answers = []
    photo = {"file": ("rose.jpg", make.jpeg(seed=5, size=(800, 600)), "image/jpeg")}
    async with httpx.AsyncClient(base_url=base, timeout=300) as client:
        while time.monotonic() < until:
            started = time.monotonic()
            status = (await client.post("/predict", files=photo)).status_code
            answers.append((status, time.monotonic() - started))
            await asyncio.sleep(0.3)
    return answers


Answers = tuple[list[int], list[tuple[int, float]]]  # attackers' statuses; honest (status, s)


def _run(server: Server, files: list[tuple[str, bytes]]) -> Answers:
    async def both() -> Answers:
        until = time.monotonic() + SECONDS
        attacks = [_attack(server.base, files, until) for _ in range(ATTACKERS)]
        *attackers, honest = await asyncio.gather(*attacks, _honest(server.base, until))
        return [status for statuses in attackers for status in statuses], honest

    return asyncio.run(both())


def _report(what: str, attackers: list[int], honest: list[tuple[int, float]]) -> float:
    latencies = [seconds for _, seconds in honest]
    worst = max(latencies)
    print(
        f"\n{what}: {len(attackers)} attacking requests, statuses {sorted(set(attackers))}; "
        f"honest /predict: {len(honest)} requests, statuses {sorted({s for s, _ in honest})}, "
        f"median {statistics.median(latencies) * 1000:.0f} ms, max {worst * 1000:.0f} ms"
    )
    return worst


def test_bombs_cheap_to_send_are_refused_and_honest_latency_stays_low(server: Server) -> None:
    attackers, honest = _run(server, (_bombs() * 6)[:16])
    worst = _report("16 bombs a request", attackers, honest)
    assert set(attackers) == {413}
    assert {status for status, _ in honest} == {200}
    assert worst < 2.0


def test_padded_bombs_are_decoded_within_a_budget_and_honest_latency_stays_bounded(
    server: Server,
) -> None:
    padded = [("padded.png", make.flat_png(6300, 6300, padding=160_000))]
    attackers, honest = _run(server, padded)
    worst = _report("one padded 40-megapixel PNG a request", attackers, honest)
    assert set(attackers) <= {200, 503}
    assert {status for status, _ in honest} == {200}
    assert worst < 8.0
