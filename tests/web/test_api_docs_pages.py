"""/docs (Swagger UI) and /redoc (ReDoc) in a real browser: they render the app's own OpenAPI
document from vendored files under their Content-Security-Policy, with no CSP violation, no
request to any other host, and an operation tried from Swagger UI."""

from __future__ import annotations

import pytest

from app.http.api_docs import DOCS_CSP
from tests.web.conftest import Tab, WebServer

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def _local_only(tab: Tab, web: WebServer) -> list[str]:
    return [
        url
        for url in tab.requests
        if not url.startswith((f"{web.base}/", f"blob:{web.base}/", "data:"))
    ]


def test_swagger_ui_renders_and_tries_an_operation_from_this_server_alone(
    tab: Tab, web: WebServer
) -> None:
    response = tab.goto("/docs")
    assert response.headers["content-security-policy"] == DOCS_CSP
    page = tab.page
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Flower classifier")
    operation = page.locator(".opblock-get", has_text="/classes").first
    operation.locator(".opblock-summary").first.click()
    operation.get_by_role("button", name="Try it out").click()
    operation.get_by_role("button", name="Execute").click()
    live = operation.locator(".live-responses-table tbody tr.response").first
    expect(live.locator("td.response-col_status")).to_contain_text("200")
    expect(live.locator("td.response-col_description")).to_contain_text("daisy")
    assert any(url.endswith("/web/vendor/swagger-ui-bundle.js") for url in tab.requests)
    assert _local_only(tab, web) == []


REDOCLY_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


def test_redoc_renders_from_this_server_alone(tab: Tab, web: WebServer) -> None:
    """ReDoc's footer always asks for Redocly's logo from their CDN (no option turns it off):
    the page's policy refuses it, so the browser never sends that request."""
    failed: dict[str, str] = {}
    tab.page.on("requestfailed", lambda request: failed.update({request.url: request.failure}))
    response = tab.goto("/redoc")
    assert response.headers["content-security-policy"] == DOCS_CSP
    expect(tab.page.locator("h1", has_text="Flower classifier")).to_be_visible(timeout=20_000)
    expect(tab.page.get_by_text("/predict", exact=False).first).to_be_attached()
    assert any(url.endswith("/web/vendor/redoc.standalone.js") for url in tab.requests)
    tab.page.wait_for_timeout(500)
    assert _local_only(tab, web) == [REDOCLY_LOGO]
    assert failed == {REDOCLY_LOGO: "csp"}  # refused by the page's own policy, never sent
    assert [problem for problem in tab.problems if REDOCLY_LOGO not in problem] == []
    tab.problems.clear()  # the refusal is logged as a console error: expected here
