"""Scoring through a running server: its REST API (``POST /predict``) or the Open Inference
Protocol (``POST /v2/models/{model}/infer``, images as binary tensor data), with a deadline on
every call, a cap on what an answer may hold, ``Retry-After`` honoured a few times, and a
refused batch retried file by file so that one bad file costs only itself."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from app.scoring.inputs import read_capped
from app.scoring.results import Result, Scored, ScoringError, Unreadable

MAX_ANSWER_BYTES: Final = 64 * 1024 * 1024
MAX_RETRY_AFTER_S: Final = 30.0
RETRIES: Final = 5
FILE_REFUSALS: Final = frozenset({400, 413, 415, 422})  # what one bad file can cause


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    retry_after: float | None

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            raise ScoringError(f"the server answered {self.status} with no JSON body") from None

    def detail(self) -> str:
        try:
            document = json.loads(self.body)
            text = document.get("detail") or document.get("error")
        except (ValueError, AttributeError):
            text = None
        return str(text or self.body[:200].decode("utf-8", "replace") or f"HTTP {self.status}")


class _Client:
    """Plain HTTP calls to one server: no redirects followed, every call under a deadline."""

    def __init__(self, url: str, timeout_s: float, max_file_bytes: int) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ScoringError(f"--url {url!r}: give an http:// or https:// URL with a host")
        self.base = url.rstrip("/")
        self.timeout_s = timeout_s
        self.max_file_bytes = max_file_bytes
        self._opener = urllib.request.build_opener(_NoRedirects())

    def call(
        self, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> Answer:
        """The answer, after waiting out a few 503s' Retry-After; ScoringError if unreachable."""
        for _ in range(RETRIES):
            answer = self._once(path, body, headers or {})
            if answer.status != 503 or answer.retry_after is None:
                return answer
            time.sleep(min(answer.retry_after, MAX_RETRY_AFTER_S))
        return answer

    def _once(self, path: str, body: bytes | None, headers: dict[str, str]) -> Answer:
        # http(s) only: checked when the client was made
        request = urllib.request.Request(self.base + path, data=body, headers=headers)  # noqa: S310
        deadline = time.monotonic() + self.timeout_s
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                return Answer(response.status, _capped(response, deadline), None)
        except urllib.error.HTTPError as error:
            with error:
                retry_after = _retry_after(error.headers.get("Retry-After"))
                return Answer(error.code, _capped(error, deadline), retry_after)
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise ScoringError(f"{self.base}{path}: {reason}") from None


class RestScorer:
    """``POST /predict``: multipart parts named ``files``."""

    def __init__(self, url: str, batch_size: int, timeout_s: float, max_file_bytes: int) -> None:
        self._client = _Client(url, timeout_s, max_file_bytes)
        self.batch_size = batch_size
        answer = self._client.call("/classes")
        if answer.status != 200:
            raise ScoringError(f"{url}/classes answered {answer.status}: {answer.detail()}")
        self.classes: list[str] = list(answer.json()["classes"])

    def describe(self) -> str:
        return f"{self._client.base}/predict"

    def score(self, paths: list[Path]) -> list[Result]:
        return _score_or_split(paths, self._client, self._send)

    def _send(self, files: list[tuple[Path, bytes]]) -> list[Result] | Answer:
        boundary = uuid.uuid4().hex
        body = _multipart(files, boundary)
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        answer = self._client.call("/predict", body, headers)
        if answer.status != 200:
            return answer
        document = answer.json()
        version = str(document["model_version"])
        return [
            Scored(path, version, self._ordered(prediction["probabilities"]))
            for (path, _), prediction in zip(files, document["predictions"], strict=True)
        ]

    def _ordered(self, probabilities: dict[str, float]) -> tuple[float, ...]:
        if list(probabilities) != self.classes:
            raise ScoringError(
                f"the server's classes changed during the run: {list(probabilities)}"
            )
        return tuple(float(value) for value in probabilities.values())


class V2Scorer:
    """The Open Inference Protocol over REST: ``BYTES`` images as binary tensor data, all
    classes' probabilities asked through the classification extension (``score:index:label``)."""

    def __init__(
        self, url: str, model: str, batch_size: int, timeout_s: float, max_file_bytes: int
    ) -> None:
        self._client = _Client(url, timeout_s, max_file_bytes)
        self._path = f"/v2/models/{urllib.parse.quote(model, safe='')}"
        self.batch_size = batch_size
        answer = self._client.call(self._path)
        if answer.status != 200:
            raise ScoringError(f"{url}{self._path} answered {answer.status}: {answer.detail()}")
        self._count = _class_count(answer.json())
        self.classes: list[str] = []

    def describe(self) -> str:
        return f"{self._client.base}{self._path}/infer"

    def score(self, paths: list[Path]) -> list[Result]:
        return _score_or_split(paths, self._client, self._send)

    def _send(self, files: list[tuple[Path, bytes]]) -> list[Result] | Answer:
        images = b"".join(len(data).to_bytes(4, "little") + data for _, data in files)
        header = json.dumps(
            {
                "inputs": [
                    {
                        "name": "image",
                        "shape": [len(files)],
                        "datatype": "BYTES",
                        "parameters": {"binary_data_size": len(images)},
                    }
                ],
                "outputs": [
                    {"name": "probabilities", "parameters": {"classification": self._count}}
                ],
            }
        ).encode()
        headers = {
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": str(len(header)),
        }
        answer = self._client.call(f"{self._path}/infer", header + images, headers)
        if answer.status != 200:
            return answer
        document = answer.json()
        version = str(document.get("model_version", ""))
        [output] = [o for o in document["outputs"] if o["name"] == "probabilities"]
        rows = [
            output["data"][i : i + self._count]
            for i in range(0, len(files) * self._count, self._count)
        ]
        return [
            Scored(path, version, self._ordered(row))
            for (path, _), row in zip(files, rows, strict=True)
        ]

    def _ordered(self, entries: list[str]) -> tuple[float, ...]:
        """``score:index:label`` entries -> probabilities in class index order (and the names)."""
        probabilities = [0.0] * self._count
        labels = [""] * self._count
        for entry in entries:
            score, index, label = entry.split(":", 2)
            probabilities[int(index)], labels[int(index)] = float(score), label
        if self.classes and labels != self.classes:
            raise ScoringError(f"the server's classes changed during the run: {labels}")
        self.classes = labels
        return tuple(probabilities)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a redirect is answered as it is: the URL to give is the one it names


Send = Callable[[list[tuple[Path, bytes]]], "list[Result] | Answer"]


def _score_or_split(paths: list[Path], client: _Client, send: Send) -> list[Result]:
    read = [(path, read_capped(path, client.max_file_bytes)) for path in paths]
    files = [(path, data) for path, data in read if isinstance(data, bytes)]
    scored = _send_or_split(files, send) if files else {}
    return [scored[path] if isinstance(data, bytes) else data for path, data in read]


def _send_or_split(files: list[tuple[Path, bytes]], send: Send) -> dict[Path, Result]:
    """The batch's results; when the server refuses the batch for what a file holds, each file
    sent alone, so the refusal lands on the file that caused it."""
    try:
        outcome = send(files)
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise ScoringError(f"the server's answer is not the protocol's: {error!r}") from None
    if isinstance(outcome, list):
        return {result.path: result for result in outcome}
    if outcome.status not in FILE_REFUSALS:
        raise ScoringError(f"the server answered {outcome.status}: {outcome.detail()}")
    if len(files) == 1:
        path = files[0][0]
        return {path: Unreadable(path, _without_name(outcome.detail(), path))}
    results: dict[Path, Result] = {}
    for file in files:
        results.update(_send_or_split([file], send))
    return results


def _without_name(detail: str, path: Path) -> str:
    """The server's reason without the name it gives the file (the output names the file)."""
    for prefix in (f"{path.name}: ", "image[0]: "):
        detail = detail.removeprefix(prefix)
    return detail


def _multipart(files: list[tuple[Path, bytes]], boundary: str) -> bytes:
    parts = []
    for path, data in files:
        name = "".join(c for c in path.name if c.isprintable() and c not in '"\\')
        head = (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="files"; filename="{name or "image"}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        )
        parts += [head.encode(), data, b"\r\n"]
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts)


def _capped(response: Any, deadline: float) -> bytes:
    """The answer's body, read before ``deadline`` and up to MAX_ANSWER_BYTES."""
    chunks, size = [], 0
    read = getattr(response, "read1", None) or getattr(response.fp, "read1", response.read)
    while chunk := read(64 * 1024):  # what has arrived: a trickle meets the deadline check
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise ScoringError(f"the server's answer is over {MAX_ANSWER_BYTES:,} bytes")
        if time.monotonic() > deadline:
            raise ScoringError("the server's answer took longer than --timeout")
    return b"".join(chunks)


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return 1.0


def _class_count(metadata: Any) -> int:
    try:
        [output] = [o for o in metadata["outputs"] if o["name"] == "probabilities"]
        return int(output["shape"][-1])
    except (KeyError, TypeError, ValueError, IndexError):
        raise ScoringError(
            f"the model's metadata names no probabilities output: {metadata}"
        ) from None
