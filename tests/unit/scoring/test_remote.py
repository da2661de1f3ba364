"""Scoring through a server, against a scripted (and sometimes hostile) one: retries, batches
refused for one file, redirects, endless, trickling or silent answers, garbage."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from app.scoring import remote
from app.scoring.remote import RestScorer, V2Scorer
from app.scoring.results import Scored, ScoringError, Unreadable

CLASSES = ["daisy", "roses"]
Reply = Callable[[BaseHTTPRequestHandler, bytes], None]


class Script:
    """What the server answers, per path, and what it was sent."""

    def __init__(self) -> None:
        self.replies: dict[str, list[Reply]] = {"/classes": [_classes]}
        self.requests: list[tuple[str, bytes]] = []

    def reply(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length)
        self.requests.append((handler.path, body))
        replies = self.replies.get(handler.path.split("?")[0]) or [_json(404, {"detail": "no"})]
        (replies.pop(0) if len(replies) > 1 else replies[0])(handler, body)


@pytest.fixture
def script() -> Iterator[tuple[str, Script]]:
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            script.reply(self)

        def do_POST(self) -> None:
            script.reply(self)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", script
    server.shutdown()
    server.server_close()


def _json(status: int, document: object, headers: dict[str, str] | None = None) -> Reply:
    def reply(handler: BaseHTTPRequestHandler, _: bytes) -> None:
        body = json.dumps(document).encode()
        handler.send_response(status)
        for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return reply


_classes = _json(200, {"model_version": "1", "classes": CLASSES})


def _predictions(handler: BaseHTTPRequestHandler, body: bytes) -> None:
    """The server's way: a request with one undecodable file is refused whole (400)."""
    names = [part.split(b'"')[0].decode() for part in body.split(b'filename="')[1:]]
    if b"BAD" in body:
        reply = _json(400, {"detail": "bad.jpg: the bytes are not a decodable image"})
    else:
        rows = [{"filename": n, "probabilities": {"daisy": 0.25, "roses": 0.75}} for n in names]
        reply = _json(200, {"model_version": "7", "predictions": rows})
    reply(handler, body)


@pytest.fixture
def photos(tmp_path: Path) -> list[Path]:
    paths = [tmp_path / "a.jpg", tmp_path / "bad.jpg", tmp_path / "c.jpg"]
    for path in paths:
        path.write_bytes(b"BAD" if path.name == "bad.jpg" else b"image bytes")
    return paths


def _rest(base: str, timeout_s: float = 5) -> RestScorer:
    return RestScorer(base, batch_size=16, timeout_s=timeout_s, max_file_bytes=1024)


def test_a_batch_refused_for_one_file_is_sent_again_file_by_file(
    script: tuple[str, Script], photos: list[Path]
) -> None:
    base, server = script
    server.replies["/predict"] = [_predictions]
    results = _rest(base).score(photos)
    assert results == [
        Scored(photos[0], "7", (0.25, 0.75)),
        Unreadable(photos[1], "the bytes are not a decodable image"),
        Scored(photos[2], "7", (0.25, 0.75)),
    ]
    assert [path for path, _ in server.requests].count("/predict") == 4  # the batch, then 3


def test_retry_after_is_waited_out_a_few_times(
    script: tuple[str, Script], photos: list[Path]
) -> None:
    base, server = script
    busy = _json(503, {"detail": "busy"}, {"Retry-After": "0"})
    server.replies["/predict"] = [busy, busy, _predictions]
    assert isinstance(_rest(base).score(photos[:1])[0], Scored)
    still_busy = [busy] * (remote.RETRIES + 1)
    server.replies["/predict"] = still_busy
    with pytest.raises(ScoringError, match="503: busy"):
        _rest(base).score(photos[:1])


def test_a_server_error_stops_the_run_with_its_detail(
    script: tuple[str, Script], photos: list[Path]
) -> None:
    base, server = script
    server.replies["/predict"] = [_json(500, {"detail": "internal error"})]
    with pytest.raises(ScoringError, match="answered 500: internal error"):
        _rest(base).score(photos[:1])


def test_a_redirect_is_reported_not_followed(script: tuple[str, Script]) -> None:
    base, server = script
    server.replies["/classes"] = [_json(307, {}, {"Location": f"{base}/elsewhere"})]
    with pytest.raises(ScoringError, match="answered 307"):
        _rest(base)
    assert [path for path, _ in server.requests] == ["/classes"]


def test_an_endless_answer_is_cut(
    script: tuple[str, Script], photos: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, server = script
    monkeypatch.setattr(remote, "MAX_ANSWER_BYTES", 1024 * 1024)

    def endless(handler: BaseHTTPRequestHandler, _: bytes) -> None:
        handler.send_response(200)
        handler.end_headers()  # no length: the body ends when the connection does
        for _ in range(10_000):
            handler.wfile.write(b" " * 65536)

    server.replies["/predict"] = [endless]
    with pytest.raises(ScoringError, match="over 1,048,576 bytes"):
        _rest(base).score(photos[:1])


def test_a_trickling_answer_fails_at_the_deadline(
    script: tuple[str, Script], photos: list[Path]
) -> None:
    base, server = script

    def trickle(handler: BaseHTTPRequestHandler, _: bytes) -> None:
        handler.send_response(200)
        handler.end_headers()
        for _ in range(100):
            handler.wfile.write(b" ")
            handler.wfile.flush()
            time.sleep(0.1)

    server.replies["/predict"] = [trickle]
    scorer = _rest(base, timeout_s=1)
    started = time.monotonic()
    with pytest.raises(ScoringError, match="longer than --timeout"):
        scorer.score(photos[:1])
    assert time.monotonic() - started < 5


def test_a_silent_server_times_out(script: tuple[str, Script], photos: list[Path]) -> None:
    base, server = script
    server.replies["/predict"] = [lambda handler, body: time.sleep(3)]
    with pytest.raises(ScoringError, match="timed out"):
        _rest(base, timeout_s=0.5).score(photos[:1])


def test_an_answer_that_is_not_the_protocols_is_an_error(
    script: tuple[str, Script], photos: list[Path]
) -> None:
    base, server = script
    server.replies["/predict"] = [_json(200, {"predictions": "nope"})]
    with pytest.raises(ScoringError, match="not the protocol's"):
        _rest(base).score(photos[:1])


def test_a_file_over_the_limit_is_never_sent(script: tuple[str, Script], tmp_path: Path) -> None:
    base, server = script
    big = tmp_path / "big.jpg"
    big.write_bytes(b"x" * 1025)
    [result] = _rest(base).score([big])
    assert result == Unreadable(big, "larger than 1,024 bytes (FLOWERS_MAX_UPLOAD_BYTES)")
    assert "/predict" not in [path for path, _ in server.requests]


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://host/", "localhost:8000", "http://"])
def test_only_http_urls_with_a_host_are_called(url: str) -> None:
    with pytest.raises(ScoringError, match="http:// or https://"):
        _rest(url)


def test_an_unreachable_server_is_one_error() -> None:
    with pytest.raises(ScoringError, match=r"127\.0\.0\.1:9"):
        _rest("http://127.0.0.1:9")


def test_v2_reads_every_class_from_the_classification_extension(
    script: tuple[str, Script], photos: list[Path]
) -> None:
    base, server = script
    metadata = {"outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]}]}
    answer = {
        "model_version": "7",
        "outputs": [{"name": "probabilities", "data": ["0.75:1:roses", "0.25:0:daisy"] * 2}],
    }
    server.replies["/v2/models/flowers"] = [_json(200, metadata)]
    server.replies["/v2/models/flowers/infer"] = [_json(200, answer)]
    scorer = V2Scorer(base, "flowers", batch_size=16, timeout_s=5, max_file_bytes=1024)
    results = scorer.score([photos[0], photos[2]])
    assert results == [Scored(photos[0], "7", (0.25, 0.75)), Scored(photos[2], "7", (0.25, 0.75))]
    assert scorer.classes == CLASSES
    _, body = server.requests[-1]
    header = json.loads(body[: body.index(b"}]}") + 3])
    assert header["inputs"][0]["shape"] == [2]
    assert header["outputs"] == [{"name": "probabilities", "parameters": {"classification": 2}}]
    assert body.endswith((11).to_bytes(4, "little") + b"image bytes")
