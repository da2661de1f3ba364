"""The API reference pages' vendored files: unmodified (their hashes are the README's), the
scripts and styles served and nothing else, and pages that name no other host."""

from __future__ import annotations

import hashlib
import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.http.api_docs import DOCS_CSP, VENDOR_ROOT, router, vendored_assets
from app.http.web import WEB_ROOT


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI(docs_url=None, redoc_url=None)
    app.include_router(router)
    return TestClient(app)


def _readme_hashes() -> dict[str, str]:
    text = (VENDOR_ROOT / "README.md").read_text()
    return {name: digest for digest, name in re.findall(r"^([0-9a-f]{64})  (\S+)$", text, re.M)}


def test_the_vendored_files_are_the_ones_the_readme_names() -> None:
    hashes = _readme_hashes()
    assert (
        set(hashes)
        == vendored_assets()
        == {
            "swagger-ui-bundle.js",
            "swagger-ui.css",
            "redoc.standalone.js",
        }
    )
    for name, digest in hashes.items():
        assert hashlib.sha256((VENDOR_ROOT / name).read_bytes()).hexdigest() == digest, name


def test_each_vendored_file_ships_with_its_licence() -> None:
    licences = {path.name for path in VENDOR_ROOT.glob("*.txt")}
    assert {"swagger-ui-LICENSE.txt", "swagger-ui-NOTICE.txt", "redoc-LICENSE.txt"} <= licences
    for name in vendored_assets() - {"swagger-ui.css"}:
        assert f"{name}.LICENSE.txt" in licences  # the licences of the code bundled inside


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_the_pages_carry_their_policy_and_load_from_this_origin(
    client: TestClient, path: str
) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"] == DOCS_CSP
    assert not re.search(r"(src|href)=\"(https?:)?//", response.text)
    for asset in re.findall(r"(?:src|href)=\"(/web/vendor/[^\"]+)\"", response.text):
        assert client.get(asset).status_code == 200


def test_the_policy_allows_this_origin_alone() -> None:
    sources = " ".join(part.split(" ", 1)[1] for part in DOCS_CSP.split("; "))
    assert "http" not in sources and "*" not in sources and "unsafe-eval" not in sources


def test_the_pages_scripts_are_files_not_inline() -> None:
    for name in ("api-docs.html", "redoc.html"):
        html = (WEB_ROOT / name).read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), name


def test_scripts_and_styles_are_served_with_their_types(client: TestClient) -> None:
    script = client.get("/web/vendor/redoc.standalone.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    style = client.get("/web/vendor/swagger-ui.css")
    assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")
    assert client.head("/web/vendor/swagger-ui-bundle.js").status_code == 200


@pytest.mark.parametrize(
    "name",
    [
        "README.md",
        "redoc-LICENSE.txt",
        "nope.js",
        "..%2Fapi-docs.html",
        "%2E%2E%2F..%2Fhttp%2Fapi_docs.py",
        "swagger-ui.css%00.js",
    ],
)
def test_nothing_else_in_the_folder_or_beyond_is_served(client: TestClient, name: str) -> None:
    assert client.get(f"/web/vendor/{name}").status_code == 404
