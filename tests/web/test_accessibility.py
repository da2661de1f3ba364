"""axe-core (from npm, `make test` fetches it) on every state of both pages the other browser
tests reach, at desktop and phone widths, in light and dark colour schemes: 0 violations."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from app.store.predictions import PhotoPrediction
from tests.support.apps import FLOWERS
from tests.support.modelfactory import publish_tiny
from tests.web.conftest import (
    PHONE,
    TOKEN,
    Tab,
    WebServer,
    axe_violations,
    open_tab,
    sign_in,
    with_axe,
)

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = [pytest.mark.slow, pytest.mark.browser]

LAYOUTS = {
    "desktop": {"viewport": {"width": 1366, "height": 900}},
    "phone": {"viewport": PHONE, "is_mobile": True, "has_touch": True},
}


@pytest.fixture(params=[(layout, scheme) for layout in LAYOUTS for scheme in ("light", "dark")])
def axe_tab(request: pytest.FixtureRequest, browser: Any, web: WebServer) -> Iterator[Tab]:
    layout, scheme = request.param
    opened = open_tab(browser, web, color_scheme=scheme, **LAYOUTS[layout])
    with_axe(opened)
    yield opened
    opened.page.context.close()
    assert opened.problems == []


@pytest.fixture(scope="module")
def finished_job(web: WebServer) -> str:
    """A retrain job that ran to its end, so the console shows the job panel and its log."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    body = {"epochs": 1, "openvino": False, "activate": "never"}
    job = httpx.post(f"{web.base}/admin/retrain", json=body, headers=auth, timeout=30).json()
    status = {"state": "queued"}
    for _ in range(600):
        status = httpx.get(f"{web.base}/admin/jobs/{job['job_id']}", headers=auth).json()
        if status["state"] not in ("queued", "running"):
            break
        __import__("time").sleep(0.5)
    assert status["state"] == "succeeded", status
    return str(job["job_id"])


@pytest.fixture(scope="module")
def a_flag(web: WebServer, flowers_dev: Path) -> Iterator[str]:
    """A flag waiting for review (the console shows it with its photo); rejected after."""
    photo = sorted((flowers_dev / "roses").iterdir())[5]
    files = {"file": (photo.name, photo.read_bytes(), "image/jpeg")}
    answer = httpx.post(f"{web.base}/flags?suggested=tulips&predicted=roses", files=files)
    assert answer.status_code == 202, answer.text
    yield str(answer.json()["id"])
    auth = {"Authorization": f"Bearer {TOKEN}"}
    httpx.delete(f"{web.base}/admin/flags/{answer.json()['id']}", headers=auth)


def _clean(tab: Tab, state: str) -> None:
    assert axe_violations(tab) == [], state


def test_the_classify_page_has_no_violations_in_any_state(axe_tab: Tab, flowers_dev: Path) -> None:
    page = axe_tab.page
    axe_tab.goto("/")
    expect(page.locator("#model-line")).to_contain_text("Model version")
    _clean(axe_tab, "empty")
    sign_in(axe_tab)
    axe_tab.open_classify_page()
    photo = sorted((flowers_dev / "daisy").iterdir())[0]
    notes = {"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": b"not a photo"}
    daisy = {"name": photo.name, "mimeType": "image/jpeg", "buffer": photo.read_bytes()}
    page.get_by_label("Choose photos").set_input_files([daisy, notes])
    expect(page.locator(".card[data-state='done']")).to_have_count(1, timeout=60_000)
    expect(page.locator(".card[data-state='error']")).to_have_count(1)
    page.get_by_role("button", name="Wrong?").click()
    _clean(axe_tab, "a classified card with its feedback form open, and a refused card")
    page.evaluate("sessionStorage.clear()")  # anyone: "Wrong?" sends a flag for review
    axe_tab.open_classify_page()
    page.get_by_label("Choose photos").set_input_files([daisy])
    expect(page.locator(".card[data-state='done']")).to_have_count(1, timeout=60_000)
    page.get_by_role("button", name="Wrong?").click()
    _clean(axe_tab, "a visitor's card with its flag form open")


@pytest.fixture(scope="module")
def compared(web: WebServer) -> tuple[int, int]:
    """Two versions that disagree on a photo of the dataset folder (the comparison lists it)."""
    photo = sorted((web.data / "red").iterdir())[0]
    digest = hashlib.sha256(photo.read_bytes()).hexdigest()
    source = f"red/{photo.name}"
    scores = {n: {"precision": 0.9, "recall": 0.8, "f1": 0.85, "support": 5} for n in FLOWERS}
    eye = [[5 if row == column else 0 for column in range(5)] for row in range(5)]
    a, b = (
        publish_tiny(
            web.store,
            FLOWERS,
            seed=20 + index,
            activate=False,
            metrics={"per_class": scores, "confusion_matrix": eye},
            predictions=[PhotoPrediction(digest, source, "red", said, 0.8)],
        ).number
        for index, said in enumerate(("red", "blue"))
    )
    return a, b


def test_the_console_has_no_violations_in_any_state(
    axe_tab: Tab, finished_job: str, a_flag: str, compared: tuple[int, int]
) -> None:
    page = axe_tab.page
    axe_tab.goto("/admin")
    _clean(axe_tab, "sign-in")
    sign_in(axe_tab)
    expect(page.locator("#job-state")).to_contain_text("succeeded")
    page.get_by_role("button", name="Details of version 1", exact=True).click()  # with plots
    expect(page.locator("#detail figure img").first).to_be_visible()
    page.get_by_text("The whole log, a page at a time").click()
    expect(page.locator("#job-log-all")).to_contain_text("[scan]")
    page.get_by_label("Compare", exact=True).select_option(str(compared[0]))
    page.get_by_label("with", exact=True).select_option(str(compared[1]))
    page.get_by_role("button", name="Compare", exact=True).click()
    expect(page.locator("#comparison table").first).to_be_visible()
    expect(page.locator("#comparison .disagree img")).to_be_visible()
    expect(page.locator("#live-facts dd").first).not_to_have_text("waiting for two readings")
    expect(page.locator(f"#flags li[data-flag='{a_flag}'] img")).to_be_visible()
    _clean(axe_tab, "signed in: live, versions, details, a comparison, a job and its log, a flag")
    page.locator("#versions button:enabled", has_text="Activate").first.click()
    expect(page.get_by_role("dialog")).to_be_visible()
    _clean(axe_tab, "the confirmation dialog")
    page.get_by_role("dialog").get_by_role("button", name="Cancel").click()
