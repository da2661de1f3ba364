"""The web console's pages and assets as the server sends them: types, the pages' own policy,
the API's headers unchanged, nothing but app/web/ reachable, and pages free of inline code."""

from __future__ import annotations

import re
import tomllib
from fnmatch import fnmatch
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient

from app.http.api_docs import DOCS_CSP
from app.http.web import PAGE_CSP, WEB_ROOT
from tests.conftest import REPO

API_CSP = "default-src 'none'; frame-ancestors 'none'"


@pytest.mark.parametrize(
    ("path", "marker"), [("/", "Classify flower photos"), ("/admin", "Admin token")]
)
def test_the_pages_are_html_with_their_own_policy(
    client: TestClient, path: str, marker: str
) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-security-policy"] == PAGE_CSP
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-request-id"]
    assert marker in response.text


def test_head_answers_like_get_without_a_body(client: TestClient) -> None:
    response = client.head("/")
    assert response.status_code == 200 and response.content == b""
    assert response.headers["content-security-policy"] == PAGE_CSP


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("style.css", "text/css; charset=utf-8"),
        ("classify.js", "text/javascript; charset=utf-8"),
        ("icon.svg", "image/svg+xml"),
    ],
)
def test_assets_are_served_with_their_types(client: TestClient, name: str, media_type: str) -> None:
    response = client.get(f"/web/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"] == media_type
    assert response.content == (WEB_ROOT / name).read_bytes()


@pytest.mark.parametrize(
    "path",
    ["/web/nope.js", "/web/..%2Fapi%2Fweb.py", "/web/%2E%2E%2Fconfig.py", "/web/", "/admin/"],
)
def test_nothing_else_is_reachable(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-security-policy"] == API_CSP


def test_the_api_keeps_its_own_policy(client: TestClient) -> None:
    for path in ("/classes", "/health/live", "/admin/models"):
        assert client.get(path).headers["content-security-policy"] == API_CSP
    for path in ("/docs", "/redoc"):  # the API's reference pages carry a policy of their own
        assert client.get(path).headers["content-security-policy"] == DOCS_CSP


def test_the_pages_are_not_api_operations(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert (
        "/" not in paths and "/admin" not in paths and not any(p.startswith("/web") for p in paths)
    )


class _InlineCode(HTMLParser):
    """Collects what a strict policy would refuse: inline scripts, styles and handlers."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "script" and "src" not in names:
            self.found.append("inline <script>")
        if tag == "style":
            self.found.append("<style>")
        self.found += [
            f"{tag} {name}=" for name in names if name == "style" or name.startswith("on")
        ]
        for name, value in attrs:
            if name in ("src", "href") and value and re.match(r"^(https?:)?//", value):
                self.found.append(f"{tag} {name}={value} (another host)")


@pytest.mark.parametrize("page", ["index.html", "admin.html"])
def test_the_pages_hold_no_inline_code_and_nothing_from_elsewhere(page: str) -> None:
    parser = _InlineCode()
    parser.feed((WEB_ROOT / page).read_text(encoding="utf-8"))
    assert parser.found == []


def test_the_scripts_never_parse_strings_as_html_or_code() -> None:
    for script in WEB_ROOT.glob("*.js"):
        code = script.read_text(encoding="utf-8")
        for risky in (
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "localStorage.set",
        ):
            assert risky not in code, f"{script.name} uses {risky}"
        for url in re.findall(r"""["'`](https?://[^"'`]+)""", code):
            pytest.fail(f"{script.name} names another host: {url}")


def test_every_web_file_ships_in_the_package() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["app.web"]
    for path in WEB_ROOT.rglob("*"):
        if path.is_file():
            name = path.relative_to(WEB_ROOT).as_posix()
            assert any(fnmatch(name, pattern) for pattern in patterns), name


def test_every_script_is_loaded_by_a_page_or_another_script() -> None:
    sources = " ".join(
        p.read_text(encoding="utf-8") for p in WEB_ROOT.iterdir() if p.suffix in (".html", ".js")
    )
    for script in WEB_ROOT.glob("*.js"):
        assert f"/web/{script.name}" in sources, f"{script.name} is never loaded"
