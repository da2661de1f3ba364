"""Browser tests: Debian's Chromium driven by Playwright against the real server (``python -m
app.serve`` in a subprocess) over a store of tiny real models and a small dataset folder.

Skipped, with the reason, where Playwright or a Chromium binary is missing (CI installs both).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from app.store.versions import ModelStore
from tests.conftest import REPO, write_colour_dataset
from tests.support.apps import FLOWERS
from tests.support.browser import CHROMIUM_ARGS, chromium_path
from tests.support.modelfactory import publish_tiny
from tests.support.servers import running_server

TOKEN = "web-console-5be97db3511cfb42891ce49b"
# Retention is on (the console shows it) but roomy: the tests' versions 1 and 2 must outlive the
# versions later tests publish.
KEEP_VERSIONS = 40
PHONE = {"width": 390, "height": 844}
# Chromium's console messages that are the page working as intended: an API answer with an
# error status is logged by the browser itself, and the pages show that answer.
EXPECTED_CONSOLE = ("Failed to load resource: the server responded with a status of",)
# What the browser logs for a request a test cut off (page.route(...).abort()): expected there.
CUT_OFF = "Failed to load resource: net::ERR_FAILED"
AXE = REPO / ".cache" / "axe-core" / "axe.min.js"  # `make test` fetches it (Makefile: $(AXE))


@dataclass
class WebServer:
    base: str
    store: ModelStore
    data: Path
    log: Path


@dataclass
class Tab:
    """A page in a fresh browser context, with what it requested and what went wrong in it."""

    page: Any
    base: str
    requests: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def goto(self, path: str) -> Any:
        return self.page.goto(self.base + path)

    def open_classify_page(self) -> None:
        """Open / and wait until it takes photos: the page accepts none until its first /model
        answer names the model (the picker is disabled until then, and a file set on it is not
        sent; tests raced that). The model line is written with the page's ready state."""
        from playwright.sync_api import expect

        self.goto("/")
        line = self.page.locator("#model-line")
        expect(line).to_contain_text("Model version", timeout=60_000)
        expect(self.page.locator("#pick")).to_be_enabled()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    executable = chromium_path()
    if executable is None:
        reason = "no Chromium found (apt-get install chromium, or set FLOWERS_CHROMIUM)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}: .ci/run installs it, so CI must have it")
        pytest.skip(reason)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright for Python is not installed (pip install -e '.[dev]')")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def web(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[WebServer]:
    """The server: versions 1 (with plots and per-class scores) and 2 (active) of a tiny model
    over the five flower classes, and a dataset folder of blue/green/red photos to retrain on."""
    root = tmp_path_factory.mktemp("web")
    store = ModelStore(root / "store")
    scores = {
        name: {"precision": 0.8, "recall": 0.6, "f1": 0.6857, "support": 5} for name in FLOWERS
    }
    publish_tiny(store, FLOWERS, seed=0, plots=True, metrics={"per_class": scores})
    publish_tiny(store, FLOWERS, seed=1)
    data = write_colour_dataset(root / "data", per_class=5)
    env = {
        "FLOWERS_MODEL_STORE": str(store.root),
        "FLOWERS_DATA_DIR": str(data),
        "FLOWERS_ADMIN_TOKEN": TOKEN,
        "FLOWERS_RETRAIN_WEIGHTS": "none",
        "FLOWERS_KEEP_VERSIONS": str(KEEP_VERSIONS),
        "FLOWERS_POLL_INTERVAL_S": "0",
        "FLOWERS_ENGINE": "tensorflow",
    }
    log = root / "server.log"
    with running_server(env, log=log) as server:
        yield WebServer(server.base, store, data, log)


def open_tab(browser: Any, web: WebServer, **context_options: Any) -> Tab:
    context = browser.new_context(**context_options)
    page = context.new_page()
    tab = Tab(page, web.base)
    page.on("request", lambda request: tab.requests.append(request.url))
    page.on("pageerror", lambda error: tab.problems.append(f"uncaught: {error}"))

    def console(message: Any) -> None:
        if message.type == "error" and not message.text.startswith(EXPECTED_CONSOLE):
            tab.problems.append(f"console: {message.text}")

    page.on("console", console)
    return tab


@pytest.fixture
def tab(browser: Any, web: WebServer) -> Iterator[Tab]:
    """A desktop-sized page; the test fails if the page threw or the browser refused anything
    (a Content-Security-Policy violation is a console error), or if axe finds a violation in the
    state the test leaves the page in, at either width in either colour scheme."""
    opened = open_tab(browser, web, viewport={"width": 1280, "height": 900})
    armed = _arm_axe(opened)
    yield opened
    found = axe_in_every_layout(opened) if armed else []
    opened.page.context.close()
    assert opened.problems == []
    assert found == [], "axe, on the state the test left the page in"


@pytest.fixture
def phone(browser: Any, web: WebServer) -> Iterator[Tab]:
    opened = open_tab(browser, web, viewport=PHONE, is_mobile=True, has_touch=True)
    armed = _arm_axe(opened)
    yield opened
    found = axe_in_every_layout(opened) if armed else []
    opened.page.context.close()
    assert opened.problems == []
    assert found == [], "axe, on the state the test left the page in"


def _arm_axe(tab: Tab) -> bool:
    """axe-core in every page the tab loads, where `make test` fetched it (CI: always)."""
    if not AXE.exists() and not os.environ.get("CI"):
        return False
    with_axe(tab)
    return True


OUR_PAGES = ("/", "/admin")  # the console's two pages
LAYOUTS_CHECKED = (("desktop", {"width": 1280, "height": 900}), ("phone", PHONE))


def axe_in_every_layout(tab: Tab) -> list[str]:
    """axe-core's violations on the page as it is now, at desktop and phone widths, each in the
    light and the dark colour scheme (the page is put back as it was)."""
    page = tab.page
    if page.is_closed() or urlsplit(page.url).path not in OUR_PAGES:
        return []  # about:blank, or the vendored API docs (Swagger UI and ReDoc: not ours)
    if page.evaluate("typeof axe") != "object":
        raise AssertionError(f"axe is not loaded in {page.url}: call with_axe before loading it")
    original = page.viewport_size
    found: list[str] = []
    try:
        for name, size in LAYOUTS_CHECKED:
            page.set_viewport_size(size)
            for scheme in ("light", "dark"):
                page.emulate_media(color_scheme=scheme)
                found += [f"{name}, {scheme}: {v}" for v in axe_violations(tab)]
    finally:
        page.emulate_media(color_scheme="light")
        if original is not None:
            page.set_viewport_size(original)
    return found


def forgive_cut_offs(tab: Tab) -> None:
    """Drop the console errors of requests the test itself cut off; any other problem stays."""
    tab.problems[:] = [problem for problem in tab.problems if CUT_OFF not in problem]


def with_axe(tab: Tab) -> None:
    """axe-core in every document the tab loads from now on (an init script: the pages' CSP
    refuses inline and injected scripts, and it must stay that strict)."""
    if not AXE.exists():
        reason = f"{AXE.relative_to(REPO)} is missing: `make test` fetches it from npm"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    tab.page.add_init_script(path=str(AXE))


def axe_violations(tab: Tab) -> list[str]:
    """axe-core's violations on the page as it is now, one line each (rule, impact, where)."""
    result = tab.page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']} ({v['impact']}): {[node['target'] for node in v['nodes']]}"
        for v in result["violations"]
    ]


def sign_in(tab: Tab, token: str = TOKEN) -> None:
    """Sign in on the console with ``token`` (the page stays on /admin)."""
    from playwright.sync_api import expect

    tab.goto("/admin")
    tab.page.get_by_label("Admin token").fill(token)
    tab.page.get_by_role("button", name="Sign in").click()
    if token == TOKEN:
        expect(tab.page.locator("#versions tbody tr").first).to_be_visible()
