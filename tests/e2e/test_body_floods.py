"""Body floods against the real server: big bodies without a token, oversized JSON, and many
clients uploading large photos at once.  The server's memory stays within a stated budget, and
every refused request is refused before its body is read (the bytes the client managed to send
before the answer are only what the sockets' buffers hold).
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest
from PIL import Image

from app.dataset.spool import PREFIX
from app.store.versions import ModelStore
from tests.support.modelfactory import publish_tiny
from tests.support.rawhttp import garbage, request_head, stream_until_answered
from tests.support.servers import Server, running_server

pytestmark = pytest.mark.slow

MIB = 2**20
TOKEN = "body-flood-d648cccf08d9518683b3e96a"
BUDGET_MIB = 128  # FLOWERS_MAX_INFLIGHT_BYTES for this server
MAX_UPLOAD_MIB = 6
FILES = 8
# What the server may grow by while flooded: the upload budget, plus the decode pool's working
# set (a few full-size decoded photos) and the allocator's slack.
RSS_GROWTH_BOUND_MIB = BUDGET_MIB + 160


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("floods")


@pytest.fixture(scope="module")
def server(root: Path) -> Iterator[Server]:
    store = ModelStore(root / "store")
    publish_tiny(store, ["a", "b", "c"])
    env = {
        "FLOWERS_MODEL_STORE": str(store.root),
        "FLOWERS_DATA_DIR": str(root / "data"),
        "FLOWERS_ADMIN_TOKEN": TOKEN,
        "FLOWERS_MAX_INFLIGHT_BYTES": str(BUDGET_MIB * MIB),
        "FLOWERS_MAX_UPLOAD_BYTES": str(MAX_UPLOAD_MIB * MIB),
        "FLOWERS_MAX_FILES_PER_REQUEST": str(FILES),
        "FLOWERS_QUEUE_LIMIT": "1024",
        "FLOWERS_LOG_LEVEL": "warning",
        "FLOWERS_POLL_INTERVAL_S": "0",
    }
    with running_server(env) as running:
        yield running


class PeakRss:
    """The server's resident memory, sampled every 20 ms while the block runs."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.before = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _rss(self) -> float:
        return float(self.process.memory_info().rss) / MIB

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._rss())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> float:
        return self.peak - self.before


def _timed(coroutine: object) -> tuple[int, int, float]:
    started = time.monotonic()
    status, sent = asyncio.run(coroutine)  # type: ignore[arg-type]
    return status, sent, time.monotonic() - started


def test_big_bodies_without_a_token_are_refused_before_they_are_read(server: Server) -> None:
    head = request_head(
        "/admin/retrain",
        {"Content-Type": "application/json", "Content-Length": str(300 * MIB)},
    )

    async def three_at_once() -> list[tuple[int, int]]:
        flood = (stream_until_answered(server.port, head, garbage(300 * MIB), 0) for _ in "abc")
        return list(await asyncio.gather(*flood))

    with PeakRss(server.process.pid) as rss:
        started = time.monotonic()
        answers = asyncio.run(three_at_once())
        seconds = time.monotonic() - started
    for status, sent in answers:
        print(f"\nno token, 300 MB declared: {status} after {sent / MIB:.1f} MB sent")
    print(f"three floods answered in {seconds:.2f}s; server RSS peak +{rss.growth:.0f} MB")
    assert [status for status, _ in answers] == [401, 401, 401]
    assert all(sent < 16 * MIB for _, sent in answers)  # socket buffers, not the body
    assert rss.growth < 50


def test_an_oversized_json_body_is_413_before_reading_and_never_echoed(server: Server) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    declared = request_head("/admin/retrain", {**auth, "Content-Length": str(50 * MIB)})
    status, sent, seconds = _timed(
        stream_until_answered(server.port, declared, garbage(50 * MIB), 0)
    )
    print(f"\n50 MB JSON declared: {status} after {sent / MIB:.1f} MB sent, {seconds:.2f}s")
    assert status == 413 and sent < 16 * MIB
    chunked = request_head("/admin/retrain", {**auth, "Transfer-Encoding": "chunked"})
    body = (f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in garbage(50 * MIB))
    status, sent, seconds = _timed(stream_until_answered(server.port, chunked, body, 0))
    print(f"50 MB JSON chunked: {status} after {sent / MIB:.1f} MB sent, {seconds:.2f}s")
    assert status == 413 and sent < 16 * MIB


def _photo_part(boundary: str, index: int, size_mib: float) -> bytes:
    rng = np.random.default_rng(index)
    side = int((size_mib * MIB / 3) ** 0.5)  # noise does not compress: ~3 bytes a pixel
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (side, side, 3), np.uint8)).save(buffer, "PNG")
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
        f'filename="big{index}.png"\r\nContent-Type: image/png\r\n\r\n'
    )
    return head.encode() + buffer.getvalue() + b"\r\n"


def test_many_clients_uploading_large_photos_are_admitted_within_the_memory_budget(
    server: Server,
) -> None:
    boundary = "flood"
    parts = [_photo_part(boundary, i, 5) for i in range(FILES)]
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    head = request_head(
        "/predict",
        {
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(len(body)),
        },
    )
    clients = 40

    async def one() -> tuple[int, int, float]:
        started = time.monotonic()
        chunks = (body[i : i + 256 * 1024] for i in range(0, len(body), 256 * 1024))
        status, sent = await stream_until_answered(server.port, head, chunks, 0)
        return status, sent, time.monotonic() - started

    async def flood() -> list[tuple[int, int, float]]:
        return list(await asyncio.gather(*(one() for _ in range(clients))))

    with PeakRss(server.process.pid) as rss:
        answers = asyncio.run(flood())
    refused = [(sent, seconds) for status, sent, seconds in answers if status == 503]
    served = [seconds for status, _, seconds in answers if status == 200]
    print(
        f"\n{clients} clients x {len(body) / MIB:.0f} MB bodies (budget {BUDGET_MIB} MiB): "
        f"{len(served)} served, {len(refused)} refused with 503; refused after at most "
        f"{max(s for s, _ in refused) / MIB:.1f} MB sent and {max(t for _, t in refused):.2f}s; "
        f"server RSS peak +{rss.growth:.0f} MB (bound {RSS_GROWTH_BOUND_MIB})"
    )
    assert {status for status, _, _ in answers} <= {200, 503}
    assert served and refused
    assert all(sent < 16 * MIB for sent, _ in refused)
    assert rss.growth < RSS_GROWTH_BOUND_MIB


def test_labelled_photos_reach_the_disk_part_by_part_while_the_request_streams(
    server: Server, root: Path
) -> None:
    """A request of several large labelled photos is never held in memory whole: each part is
    written to the request's spool folder as soon as it has arrived, before the rest is sent."""
    boundary = "labels"
    parts = [_photo_part(boundary, 100 + i, 5) for i in range(FILES)]
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    first = sum(map(len, parts[:3]))
    head = request_head(
        "/admin/dataset/b",
        {
            "Authorization": f"Bearer {TOKEN}",
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(len(body)),
            "Connection": "close",
        },
    )
    data = root / "data"

    def spooled() -> list[int]:  # the sizes of the whole photos in the spool (not one mid-write)
        sizes = [f.stat().st_size for f in data.glob(f"{PREFIX}*/*") if f.is_file()]
        return [size for size in sizes if size > 4 * MIB]

    async def upload() -> tuple[list[int], bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(head + body[:first])  # three photos of eight, then a pause
        await writer.drain()
        for _ in range(200):  # the disk is polled for up to 10 s
            if len(on_disk := spooled()) >= 2:
                break
            await asyncio.sleep(0.05)
        writer.write(body[first:])
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 60)  # until the server closes
        writer.close()
        return on_disk, answer

    with PeakRss(server.process.pid) as rss:
        on_disk, answer = asyncio.run(upload())
    print(
        f"\n{FILES} labelled photos of {len(parts[0]) / MIB:.1f} MB, 3 sent then a pause: "
        f"{len(on_disk)} already on disk in the spool ({sum(on_disk) / MIB:.1f} MB) before the "
        f"rest was sent; answer {answer.split(b' ')[1].decode()}; server RSS peak "
        f"+{rss.growth:.0f} MB for a {len(body) / MIB:.0f} MB request"
    )
    assert len(on_disk) >= 2  # whole photos on disk while the request was still incomplete
    assert answer.startswith(b"HTTP/1.1 200")
    assert len(list((data / "b").iterdir())) == FILES
    assert not list(data.glob(f"{PREFIX}*"))  # the spool is gone with the request
