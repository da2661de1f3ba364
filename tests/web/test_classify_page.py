"""The classify page (/) in a real browser: real photos picked, dropped or pasted, each answer
read off the page (class, a bar per class, the model version) and checked against the API's."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from tests.web.conftest import Tab, WebServer, sign_in

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = [pytest.mark.slow, pytest.mark.browser]

READ_CARD = """card => ({
  filename: card.querySelector('.filename').textContent,
  className: card.querySelector('.class-name')?.textContent,
  version: card.querySelector('.model-version')?.textContent,
  error: card.querySelector('.error')?.textContent,
  bars: [...card.querySelectorAll('.bar')].map(bar => ({
    name: bar.querySelector('.bar-label').textContent,
    value: bar.querySelector('.bar-value').textContent,
    ratio: bar.querySelector('.bar-fill').getBoundingClientRect().width /
           bar.querySelector('.bar-track').getBoundingClientRect().width,
  })),
})"""


def _photos(flowers_dev: Path, *classes: str) -> list[Path]:
    return [sorted((flowers_dev / name).iterdir())[0] for name in classes]


def _api_prediction(web: WebServer, photo: Path) -> dict[str, Any]:
    files = {"file": (photo.name, photo.read_bytes(), "image/jpeg")}
    body = httpx.post(f"{web.base}/predict", files=files, timeout=60).json()
    return {"version": body["model_version"], **body["predictions"][0]}


def _cards(tab: Tab, count: int) -> list[dict[str, Any]]:
    done = tab.page.locator(".card:not([data-state='pending'])")
    expect(done).to_have_count(count, timeout=60_000)
    return [card.evaluate(READ_CARD) for card in done.all()]


def _assert_shows(card: dict[str, Any], expected: dict[str, Any]) -> None:
    assert card["filename"] == expected["filename"]
    assert card["className"] == expected["class_name"]
    assert card["version"] == f"model version {expected['version']}"
    shown = {bar["name"]: bar for bar in card["bars"]}
    assert set(shown) == set(expected["probabilities"])  # a bar for every class
    for name, probability in expected["probabilities"].items():
        assert shown[name]["value"] == f"{probability * 100:.1f}%", name
        assert shown[name]["ratio"] == pytest.approx(probability, abs=0.01), name


def test_one_real_photo_shows_its_class_bars_and_version(
    tab: Tab, web: WebServer, flowers_dev: Path
) -> None:
    (photo,) = _photos(flowers_dev, "roses")
    tab.goto("/")
    expect(tab.page.locator("#model-line")).to_contain_text("Model version")
    tab.page.get_by_label("Choose photos").set_input_files(photo)
    (card,) = _cards(tab, 1)
    _assert_shows(card, _api_prediction(web, photo))
    expect(tab.page.get_by_role("status")).to_contain_text(f"{photo.name}: {card['className']}")


def test_several_real_photos_each_get_their_own_card(
    tab: Tab, web: WebServer, flowers_dev: Path
) -> None:
    photos = _photos(flowers_dev, "daisy", "dandelion", "sunflowers", "tulips")
    tab.goto("/")
    tab.page.get_by_label("Choose photos").set_input_files(photos)
    cards = {card["filename"]: card for card in _cards(tab, len(photos))}
    assert set(cards) == {photo.name for photo in photos}
    for photo in photos:
        _assert_shows(cards[photo.name], _api_prediction(web, photo))
    thumbnails = tab.page.locator(".card img.thumb")
    assert all(width > 0 for width in thumbnails.evaluate_all("(i) => i.map(x => x.naturalWidth)"))


def test_a_text_file_named_jpg_shows_the_apis_error(tab: Tab, web: WebServer) -> None:
    notes = b"shopping list: tulip bulbs, compost\n"
    api = httpx.post(
        f"{web.base}/predict", files={"file": ("notes.jpg", notes, "image/jpeg")}, timeout=30
    )
    assert api.status_code == 400
    tab.goto("/")
    tab.page.get_by_label("Choose photos").set_input_files(
        {"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": notes}
    )
    (card,) = _cards(tab, 1)
    assert card["error"] == f"Refused (HTTP 400): {api.json()['detail']}"
    assert card["className"] is None and card["bars"] == []


def test_photos_can_be_dropped_and_pasted(tab: Tab, flowers_dev: Path) -> None:
    dropped, pasted = _photos(flowers_dev, "daisy", "tulips")
    tab.goto("/")
    for photo, event, target in ((dropped, "drop", "#drop-zone"), (pasted, "paste", "body")):
        tab.page.evaluate(
            """([bytes, name, event, target]) => {
                const transfer = new DataTransfer();
                transfer.items.add(new File([new Uint8Array(bytes)], name, {type: 'image/jpeg'}));
                const init = {bubbles: true, cancelable: true};
                const fired = event === 'drop'
                  ? new DragEvent('drop', {...init, dataTransfer: transfer})
                  : new ClipboardEvent('paste', {...init, clipboardData: transfer});
                document.querySelector(target).dispatchEvent(fired);
            }""",
            [list(photo.read_bytes()), photo.name, event, target],
        )
    names = [card["filename"] for card in _cards(tab, 2)]
    assert names == [dropped.name, pasted.name]


def test_the_file_picker_is_reachable_and_usable_by_keyboard(tab: Tab, flowers_dev: Path) -> None:
    (photo,) = _photos(flowers_dev, "sunflowers")
    # A listener turns Playwright's file-chooser interception on before any key is pressed (it is
    # switched on asynchronously; a chooser opened meanwhile would be missed).
    tab.page.on("filechooser", lambda chooser: None)
    tab.goto("/")
    for _ in range(10):
        tab.page.keyboard.press("Tab")
        if tab.page.evaluate("document.activeElement.id") == "pick":
            break
    assert tab.page.evaluate("document.activeElement.id") == "pick"
    outline = tab.page.evaluate(
        "getComputedStyle(document.querySelector('label[for=pick]')).outlineStyle"
    )
    assert outline == "solid"  # the visible button shows the hidden input's focus
    with tab.page.expect_file_chooser() as chooser:
        tab.page.keyboard.press("Enter")
    chooser.value.set_files(photo)
    assert _cards(tab, 1)[0]["filename"] == photo.name


def test_a_wrong_prediction_goes_to_the_dataset_in_one_gesture(
    tab: Tab, web: WebServer, flowers_dev: Path
) -> None:
    (photo,) = _photos(flowers_dev, "roses")
    tab.goto("/")
    expect(tab.page.locator(".feedback")).to_have_count(0)  # no token, no feedback form
    sign_in(tab)  # the token is in this tab's sessionStorage now
    tab.goto("/")
    tab.page.get_by_label("Choose photos").set_input_files(photo)
    _cards(tab, 1)
    tab.page.get_by_label("Wrong? File this photo under").select_option("green")
    tab.page.get_by_role("button", name="Add to dataset").click()
    digest = hashlib.sha256(photo.read_bytes()).hexdigest()
    expect(tab.page.locator(".feedback output")).to_have_text(
        f"Added to the dataset as green/{digest}.jpg."
    )
    stored = web.data / "green" / f"{digest}.jpg"
    assert stored.read_bytes() == photo.read_bytes()


def test_the_page_fits_a_phone_screen(phone: Tab, flowers_dev: Path) -> None:
    phone.goto("/")
    phone.page.get_by_label("Choose photos").set_input_files(_photos(flowers_dev, "tulips"))
    _cards(phone, 1)
    overflow = phone.page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    camera = phone.page.get_by_label("Take a photo")
    assert camera.get_attribute("capture") == "environment"
    assert camera.get_attribute("accept") == "image/*"
