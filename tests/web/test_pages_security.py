"""The pages' security in a real browser: their Content-Security-Policy is enforced (no inline
script runs), and nothing is loaded from any other host."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.http.web import PAGE_CSP
from tests.web.conftest import Tab, WebServer, sign_in

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = [pytest.mark.slow, pytest.mark.browser]

INJECT_INLINE_SCRIPT = """() => new Promise(resolve => {
  document.addEventListener('securitypolicyviolation',
    event => resolve({ran: window.inlineRan === true, blocked: event.violatedDirective}),
    {once: true});
  const script = document.createElement('script');
  script.textContent = 'window.inlineRan = true';
  document.body.append(script);
})"""


@pytest.mark.parametrize("path", ["/", "/admin"])
def test_each_page_carries_its_strict_policy(tab: Tab, path: str) -> None:
    response = tab.goto(path)
    assert response.status == 200
    headers = response.headers
    assert headers["content-security-policy"] == PAGE_CSP
    assert "'unsafe-inline'" not in PAGE_CSP and "frame-ancestors 'none'" in PAGE_CSP
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("path", ["/", "/admin"])
def test_an_injected_inline_script_is_refused_by_the_browser(tab: Tab, path: str) -> None:
    tab.goto(path)
    outcome = tab.page.evaluate(INJECT_INLINE_SCRIPT)
    assert outcome == {"ran": False, "blocked": "script-src-elem"}
    tab.problems.clear()  # the refusal is logged as a console error: the point of this test


def test_the_pages_load_nothing_from_any_other_host(
    tab: Tab, web: WebServer, flowers_dev: Path
) -> None:
    tab.goto("/")
    photo = sorted((flowers_dev / "daisy").iterdir())[0]
    tab.page.get_by_label("Choose photos").set_input_files(photo)
    expect(tab.page.locator(".card[data-state='done']")).to_have_count(1, timeout=60_000)
    sign_in(tab)
    tab.page.get_by_role("button", name="Details of version 1", exact=True).click()
    expect(tab.page.locator("#detail figure img")).to_have_count(2)
    assert tab.requests, "no request was recorded"
    foreign = [
        url
        for url in tab.requests
        if not url.startswith((f"{web.base}/", f"blob:{web.base}/", "data:"))
    ]
    assert foreign == []
    loaded = {url.removeprefix(web.base) for url in tab.requests if url.startswith(web.base)}
    assert {"/", "/admin", "/web/style.css", "/web/classify.js", "/web/console.js"} <= loaded
