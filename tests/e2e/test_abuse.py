"""Upload abuse, slow and stuck clients, against the real server (flowers-serve in a subprocess).

Each abusive client is refused with its documented status without the server reading the whole
body into memory (its RSS is watched), and well-behaved clients keep being served meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx2 as httpx
import psutil
import pytest

from app.store.versions import ModelStore
from tests.support import imagefactory as make
from tests.support.modelfactory import publish_tiny
from tests.support.rawhttp import garbage, request_head, stream_until_answered
from tests.support.servers import running_server

pytestmark = pytest.mark.slow

MAX_UPLOAD = 1024 * 1024
MAX_FILES = 8
UPLOAD_TIMEOUT_S = 2
KEEP_ALIVE_S = 5  # app.serve.KEEP_ALIVE_S
RSS_GROWTH_BOUND_MB = 80


class Abused:
    """The server under attack, with its process for RSS readings."""

    def __init__(self, server: Abused) -> None:
        self.base, self.port = server.base, server.port
        self.ps = psutil.Process(server.process.pid)

    def rss_mb(self) -> float:
        return float(self.ps.memory_info().rss) / 2**20

    def predict_ok(self) -> bool:
        files = {"file": ("ok.jpg", make.jpeg(seed=5), "image/jpeg")}
        return httpx.post(f"{self.base}/predict", files=files, timeout=30).status_code == 200


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Abused]:
    store = ModelStore(tmp_path_factory.mktemp("abuse") / "store")
    publish_tiny(store, ["a", "b", "c"])
    env = {
        "FLOWERS_MODEL_STORE": str(store.root),
        "FLOWERS_MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
        "FLOWERS_MAX_FILES_PER_REQUEST": str(MAX_FILES),
        "FLOWERS_UPLOAD_TIMEOUT_S": str(UPLOAD_TIMEOUT_S),
        "FLOWERS_LOG_LEVEL": "warning",
        "FLOWERS_POLL_INTERVAL_S": "0",
    }
    with running_server(env) as running:
        abused = Abused(running)
        for _ in range(5):
            abused.predict_ok()  # warm: the RSS baseline is taken after the first requests
        yield abused


def test_a_body_of_several_hundred_mb_streamed_slowly_is_cut_off_early(server: Abused) -> None:
    before = server.rss_mb()
    served_meanwhile: list[bool] = []
    worker = threading.Thread(
        target=lambda: served_meanwhile.extend(server.predict_ok() for _ in range(5))
    )
    boundary = "XyZ"
    head = request_head(
        "/predict",
        {
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Transfer-Encoding": "chunked",
        },
    )
    part = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.jpg"\r\n\r\n'
    )

    def chunked() -> Iterator[bytes]:
        for chunk in [part.encode(), *garbage(400 * 2**20)]:  # 400 MB if nobody stops it
            yield f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"

    worker.start()
    status, sent = asyncio.run(stream_until_answered(server.port, head, chunked(), pause_s=0.001))
    worker.join()
    growth = server.rss_mb() - before
    print(
        f"\n400 MB upload: answered {status} after {sent / 2**20:.1f} MB; "
        f"server RSS +{growth:.0f} MB"
    )
    assert status == 413
    assert sent < 64 * 2**20  # refused near the 1 MB limit (plus socket buffers), not at 400 MB
    assert growth < RSS_GROWTH_BOUND_MB
    assert served_meanwhile == [True] * 5


def test_a_declared_huge_body_is_refused_before_it_is_sent(server: Abused) -> None:
    head = request_head(
        "/predict",
        {"Content-Type": "multipart/form-data; boundary=b", "Content-Length": str(500 * 2**20)},
    )
    status, sent = asyncio.run(stream_until_answered(server.port, head, garbage(2**20), 0.05))
    assert status == 413
    assert sent <= 2**20


def test_many_small_parts_are_refused(server: Abused) -> None:
    fields = {f"f{i}": "x" * 20 for i in range(10_000)}
    response = httpx.post(
        f"{server.base}/predict",
        data=fields,
        files={"file": ("a.jpg", make.jpeg(), "image/jpeg")},
        timeout=30,
    )
    assert response.status_code == 413
    # Photos (tiny ones): each image's header is read as soon as its part is complete, so a
    # part that is no image at all is refused for that (400) before the count is reached.
    photo = make.jpeg(size=(8, 8))
    files = [("files", (f"{i}.jpg", photo, "image/jpeg")) for i in range(200)]
    assert httpx.post(f"{server.base}/predict", files=files, timeout=30).status_code == 413
    junk = [("files", (f"{i}.jpg", b"x", "image/jpeg")) for i in range(200)]
    refused = httpx.post(f"{server.base}/predict", files=junk, timeout=30)
    assert refused.status_code == 400 and refused.json()["detail"].startswith("0.jpg:")
    assert server.predict_ok()


def test_a_part_without_a_filename_is_422(server: Abused) -> None:
    body = b'--b\r\nContent-Disposition: form-data; name="file"\r\n\r\nabc\r\n--b--\r\n'
    response = httpx.post(
        f"{server.base}/predict",
        content=body,
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert response.status_code == 422


def test_a_huge_part_header_is_refused(server: Abused) -> None:
    header = "X-Junk: " + "y" * 100_000
    body = (
        f'--b\r\n{header}\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"'
        "\r\n\r\nabc\r\n--b--\r\n"
    ).encode()
    response = httpx.post(
        f"{server.base}/predict",
        content=body,
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert response.status_code == 400
    assert "header" in response.json()["detail"].lower()


def test_a_huge_http_header_is_refused_and_the_server_goes_on(server: Abused) -> None:
    request = b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Big: " + b"z" * 2_000_000 + b"\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        # Refused mid-header, the server may answer 400 and close while we are still sending.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        try:
            answer = sock.recv(100)
        except ConnectionResetError:
            answer = b""
    assert answer == b"" or answer.split()[1] == b"400", answer
    assert server.predict_ok()


def test_a_content_length_that_lies_gets_408_not_a_hung_request(server: Abused) -> None:
    head = request_head(
        "/predict", {"Content-Type": "multipart/form-data; boundary=b", "Content-Length": "100000"}
    )
    started = time.monotonic()
    status, _ = asyncio.run(stream_until_answered(server.port, head, iter([b"--b\r\n"]), 0.0))
    waited = time.monotonic() - started
    assert status == 408
    assert waited < UPLOAD_TIMEOUT_S + 5
    assert server.predict_ok()


def test_the_408_answer_has_the_error_shape_of_every_other_error(server: Abused) -> None:
    head = request_head(
        "/predict", {"Content-Type": "multipart/form-data; boundary=b", "Content-Length": "1000"}
    )
    with socket.create_connection(
        ("127.0.0.1", server.port), timeout=UPLOAD_TIMEOUT_S + 10
    ) as sock:
        sock.sendall(head + b"--b\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head_text, _, body = answer.partition(b"\r\n\r\n")
    lines = head_text.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    assert lines[0].split()[1] == "408"
    assert json.loads(body)["request_id"] == headers["x-request-id"]
    assert headers["x-content-type-options"] == "nosniff" and headers["connection"] == "close"


def test_idle_and_slow_reading_clients_do_not_starve_others(server: Abused) -> None:
    idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(200)]
    slow_readers = []
    for _ in range(20):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n")  # ~20 KB, never read
        slow_readers.append(sock)
    try:
        timings = []
        for _ in range(20):
            started = time.monotonic()
            assert server.predict_ok()
            timings.append(time.monotonic() - started)
        print(
            f"\nwith 200 idle and 20 stuck readers: 20 predictions, "
            f"slowest {max(timings) * 1000:.0f} ms"
        )
        assert max(timings) < 5
        time.sleep(KEEP_ALIVE_S + 1.5)
        closed = sum(1 for sock in idle if _closed_by_peer(sock))
        print(f"idle connections closed by the server after {KEEP_ALIVE_S}s: {closed}/200")
        assert closed == 200
    finally:
        for sock in idle + slow_readers:
            sock.close()


def _closed_by_peer(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
