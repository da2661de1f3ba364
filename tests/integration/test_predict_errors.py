"""Every bad input gets a clear JSON error with the right status, and the server keeps serving."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.store.versions import ModelStore
from tests.support import imagefactory as make
from tests.support.apps import make_settings, running

MAX_UPLOAD = 64 * 1024
MAX_FILES = 3

Send = Callable[[TestClient], object]


def _post(name: str, data: bytes, field: str = "file") -> Send:
    return lambda client: client.post(
        "/predict", files=[(field, (name, data, "application/octet-stream"))]
    )


CASES: dict[str, tuple[Send, int, str]] = {
    "text file named .jpg": (
        _post("notes.jpg", b"just some text\n"),
        400,
        "notes.jpg: the bytes are not a decodable image",
    ),
    "truncated jpeg": (_post("cut.jpg", make.jpeg(size=(200, 200))[:700]), 400, "cut.jpg:"),
    "zero bytes": (_post("empty.jpg", b""), 400, "empty.jpg: the file is empty"),
    "file over the upload limit": (
        _post("huge.png", b"\x89PNG" + b"0" * MAX_UPLOAD),
        413,
        "huge.png: the file is over the 64 KiB (65,536 bytes) limit",
    ),
    "decompression bomb": (
        _post("bomb.png", make.png_with_header_size(50_000, 50_000)),
        413,
        "bomb.png: the image is",
    ),
    "too many files": (
        lambda c: c.post(
            "/predict",
            files=[
                ("files", (f"{i}.jpg", make.jpeg(seed=i), "image/jpeg"))
                for i in range(MAX_FILES + 1)
            ],
        ),
        413,
        "at most 3 images per request",
    ),
    "svg": (
        _post("logo.svg", b'<svg xmlns="http://www.w3.org/2000/svg"/>'),
        415,
        "logo.svg: SVG images are not accepted",
    ),
    "pdf": (_post("doc.pdf", b"%PDF-1.4\n%%EOF"), 415, "doc.pdf: PDF files are not accepted"),
    "heic": (
        _post("phone.heic", b"\x00\x00\x00\x18ftypheic" + b"\x00" * 40),
        415,
        "phone.heic: HEIC images are not accepted",
    ),
    "json body": (lambda c: c.post("/predict", json={"image": "..."}), 415, "not application/json"),
    "no body": (lambda c: c.post("/predict"), 415, "multipart/form-data"),
    "no image part": (
        lambda c: c.post(
            "/predict", content=_raw_part(b'form-data; name="comment"', b"hi"), headers=_RAW_HEADERS
        ),
        422,
        "no image in the form",
    ),
    # curl -F image=@rose.jpg: over 64 KB this was "413 non-file form fields are over 65,536 bytes"
    "a photo under another field name": (
        _post("rose.jpg", make.jpeg() + b"\0" * 100_000, field="image"),
        422,
        "the file part 'image' is not one the API reads: name image parts 'file' or 'files'",
    ),
    "image part without a filename": (
        lambda c: c.post(
            "/predict", content=_raw_part(b'form-data; name="file"', b"abc"), headers=_RAW_HEADERS
        ),
        422,
        "has no filename",
    ),
    "multipart without closing boundary": (
        lambda c: c.post(
            "/predict",
            content=_raw_part(b'form-data; name="file"; filename="a.jpg"', make.jpeg())[:-30],
            headers=_RAW_HEADERS,
        ),
        400,
        "ended before its closing boundary",
    ),
    "multipart without boundary": (
        lambda c: c.post("/predict", content=b"x", headers={"Content-Type": "multipart/form-data"}),
        400,
        "no boundary",
    ),
}

_RAW_HEADERS = {"Content-Type": "multipart/form-data; boundary=XyZ"}


def _raw_part(disposition: bytes, data: bytes) -> bytes:
    return b"--XyZ\r\nContent-Disposition: " + disposition + b"\r\n\r\n" + data + b"\r\n--XyZ--\r\n"


@pytest.fixture(scope="module")
def strict_client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    from tests.support.apps import FLOWERS
    from tests.support.modelfactory import store_with_versions

    store = store_with_versions(tmp_path_factory.mktemp("errors") / "store", FLOWERS)
    settings = make_settings(
        store.root,
        max_upload_bytes=MAX_UPLOAD,
        max_files_per_request=MAX_FILES,
        max_image_pixels=4_000_000,
    )
    with running(settings) as client:
        yield client


@pytest.mark.parametrize("case", CASES)
def test_bad_input_gets_its_status_and_a_clear_message(
    strict_client: TestClient, case: str
) -> None:
    send, status, message = CASES[case]
    response = send(strict_client)
    assert response.status_code == status, response.text
    body = response.json()
    detail = body["detail"] if status != 422 else body["detail"][0]["msg"]  # FastAPI's 422 shape
    assert message in detail
    assert response.headers["content-type"] == "application/json"


def test_the_server_keeps_serving_after_every_bad_input(strict_client: TestClient) -> None:
    for send, _, _ in CASES.values():
        send(strict_client)
    response = strict_client.post("/predict", files={"file": ("ok.jpg", make.jpeg(), "image/jpeg")})
    assert response.status_code == 200


def test_one_bad_file_fails_the_request_and_names_it(strict_client: TestClient) -> None:
    files = [
        ("files", ("good.jpg", make.jpeg(), "image/jpeg")),
        ("files", ("bad.jpg", b"garbage", "image/jpeg")),
    ]
    response = strict_client.post("/predict", files=files)
    assert response.status_code == 400
    assert response.json()["detail"].startswith("bad.jpg:")


def test_a_body_declared_too_large_is_refused_before_reading(strict_client: TestClient) -> None:
    headers = {**_RAW_HEADERS, "Content-Length": str(10**9)}
    response = strict_client.post("/predict", content=b"--XyZ--\r\n", headers=headers)
    assert response.status_code in (400, 413)


@pytest.mark.parametrize(
    "kind", ["png", "webp", "gif", "bmp", "tiff", "cmyk jpeg", "16-bit png", "progressive jpeg"]
)
def test_every_accepted_format_is_classified(strict_client: TestClient, kind: str) -> None:
    import numpy as np
    from PIL import Image

    image = make.gradient()
    data = {
        "png": lambda: make.encode(image, "PNG"),
        "webp": lambda: make.encode(image, "WEBP"),
        "gif": lambda: make.encode(image, "GIF"),
        "bmp": lambda: make.encode(image, "BMP"),
        "tiff": lambda: make.encode(image, "TIFF"),
        "cmyk jpeg": lambda: make.encode(image.convert("CMYK"), "JPEG"),
        "16-bit png": lambda: make.encode(
            Image.fromarray(np.full((20, 20), 30000, np.uint16)), "PNG"
        ),
        "progressive jpeg": lambda: make.jpeg(progressive=True),
    }[kind]()
    response = strict_client.post(
        "/predict", files={"file": (f"x.{kind}", data, "application/octet-stream")}
    )
    assert response.status_code == 200, response.text


def test_without_a_model_the_server_starts_but_is_not_ready(tmp_path: Path) -> None:
    with running(make_settings(ModelStore(tmp_path / "empty").root), ready=False) as client:
        assert client.get("/health/live").json() == {"status": "ok", "model_version": None}
        ready = client.get("/health/ready")
        assert ready.status_code == 503 and ready.headers["retry-after"]
        response = client.post("/predict", files={"file": ("a.jpg", make.jpeg(), "image/jpeg")})
        assert response.status_code == 503
        assert response.json()["detail"].startswith("no model is loaded yet")
        assert response.headers["retry-after"] == "1"
        assert client.get("/classes").status_code == 503
        assert client.get("/model").status_code == 503


def test_anonymous_answers_on_an_empty_store_name_no_path_and_no_command(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every 503 of an empty store said where the store lives and which command trains it: the
    operator's remedy goes to the log (and the admin API), not to anonymous clients."""
    root = ModelStore(tmp_path / "secret-store-path").root
    infer = {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": ["AAAA"]}]}
    with running(make_settings(root), ready=False) as client:
        answers = [
            client.post("/predict", files={"file": ("a.jpg", make.jpeg(), "image/jpeg")}),
            client.get("/classes"),
            client.get("/model"),
            client.get("/v2/models/flowers"),
            client.get("/v2/models/flowers/ready"),
            client.post("/v2/models/flowers/infer", json=infer),
        ]
    for answer in answers:
        assert answer.status_code == 503, answer.text
        assert "secret-store-path" not in answer.text and "app.train" not in answer.text
    remedy = [r.getMessage() for r in caplog.records if "secret-store-path" in r.getMessage()]
    assert remedy and "python -m app.train" in remedy[0]
