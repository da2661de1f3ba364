"""The classify page's example photos in a real browser: a server whose active version ships real
dev photos as examples (with their real credit lines, and one hostile line), clicked, classified,
credited, and checked by axe at both widths in both colour schemes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from app.store.versions import ModelStore
from tests.support.apps import FLOWERS
from tests.support.modelfactory import publish_tiny
from tests.support.servers import running_server
from tests.web.conftest import WebServer, axe_violations, open_tab, with_axe
from tests.web.test_accessibility import LAYOUTS

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = [pytest.mark.slow, pytest.mark.browser]

HOSTILE = 'CC-BY by <img src=x onerror="window.owned=1"> - javascript:window.owned=2'


def _credited(flowers_dev: Path, class_name: str) -> tuple[str, bytes, str]:
    """The first photo of a class that the dev photos' LICENSE.txt credits, with its line."""
    for line in (flowers_dev / "LICENSE.txt").read_text().splitlines():
        name, _, credit = line.partition(" ")
        if name.startswith(f"{class_name}/") and (flowers_dev / name).is_file():
            return class_name, (flowers_dev / name).read_bytes(), credit
    raise AssertionError(f"no credited {class_name} photo")


@pytest.fixture(scope="module")
def examples_server(
    tmp_path_factory: pytest.TempPathFactory, flowers_dev: Path
) -> Iterator[tuple[WebServer, list[tuple[str, bytes, str]]]]:
    root = tmp_path_factory.mktemp("examples")
    store = ModelStore(root / "store")
    daisy, roses = _credited(flowers_dev, "daisy"), _credited(flowers_dev, "roses")
    examples = [daisy, roses, ("tulips", daisy[1], HOSTILE)]
    publish_tiny(store, FLOWERS, seed=2, examples=examples)
    env = {"FLOWERS_MODEL_STORE": str(store.root), "FLOWERS_ENGINE": "tensorflow"}
    with running_server(env) as server:
        yield WebServer(server.base, store, root, root / "log"), examples


def test_an_example_is_classified_like_an_upload_and_every_one_is_credited(
    browser: Any, examples_server: tuple[WebServer, list[tuple[str, bytes, str]]]
) -> None:
    web, examples = examples_server
    tab = open_tab(browser, web, viewport={"width": 1280, "height": 900})
    page = tab.page
    try:
        tab.goto("/")
        buttons = page.locator("button.example")
        expect(buttons).to_have_count(3)
        page.get_by_role("button", name="Classify example 2. roses").click()
        card = page.locator(".card[data-state='done']")
        expect(card).to_have_count(1, timeout=60_000)
        expect(card.locator(".filename")).to_have_text("example 2 (roses).jpg")
        files = {"file": ("roses.jpg", examples[1][1], "image/jpeg")}
        api = httpx.post(f"{web.base}/predict", files=files, timeout=60).json()
        expect(card.locator(".class-name")).to_have_text(api["predictions"][0]["class_name"])
        expect(card.locator(".latency")).to_contain_text(" ms")

        credits = page.locator(".example-credits li")
        expect(credits).to_have_count(3)
        for index, (class_name, _, credit) in enumerate(examples[:2]):
            who, address = credit.rsplit(" - ", 1)
            link = credits.nth(index).get_by_role("link")
            expect(link).to_have_text(f"{index + 1}. {class_name}: {who}")
            expect(link).to_have_attribute("href", address)
        # a credit line is text: no markup runs, and a javascript: address is no link
        expect(credits.nth(2)).to_have_text(f"3. tulips: {HOSTILE.rsplit(' - ', 1)[0]}")
        expect(credits.nth(2).locator("a, img")).to_have_count(0)
        assert page.evaluate("window.owned") is None
        license_link = page.locator(".example-license a")
        expect(license_link).to_have_attribute(
            "href", "https://creativecommons.org/licenses/by/2.0/"
        )
        # the example thumbnails came from this server, like everything else the page loaded
        local = (f"{web.base}/", f"blob:{web.base}/")
        assert [url for url in tab.requests if not url.startswith(local)] == []
        assert f"{web.base}/examples/1/1" in tab.requests
        assert tab.problems == []
    finally:
        page.context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_the_examples_have_no_axe_violations(
    browser: Any,
    examples_server: tuple[WebServer, list[tuple[str, bytes, str]]],
    layout: str,
    scheme: str,
) -> None:
    web, _ = examples_server
    tab = open_tab(browser, web, color_scheme=scheme, **LAYOUTS[layout])
    try:
        with_axe(tab)
        tab.goto("/")
        expect(tab.page.locator("button.example")).to_have_count(3)
        tab.page.locator("button.example").first.click()
        expect(tab.page.locator(".card[data-state='done']")).to_have_count(1, timeout=60_000)
        assert axe_violations(tab) == []
        overflow = tab.page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0
        assert tab.problems == []
    finally:
        tab.page.context.close()
