"""The classify page (/) in a real browser: real photos picked, dropped or pasted, each answer
read off the page (class, a bar per class, the model version) and checked against the API's."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from app.store.versions import ModelStore
from tests.support.apps import FLOWERS
from tests.support.modelfactory import publish_tiny
from tests.support.servers import running_server
from tests.web.conftest import (
    Tab,
    WebServer,
    axe_in_every_layout,
    forgive_cut_offs,
    open_tab,
    sign_in,
    with_axe,
)

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
    # the engine and the arithmetic it serves in (f32, bf16 or int8 with its float layers')
    expect(tab.page.locator("#model-line")).to_contain_text(
        re.compile(r"Model version \d+ \(\w+ in (f32|bf16|int8, its float layers in \w+,) on ")
    )
    expect(tab.page.locator("#examples")).to_be_hidden()  # this version ships none
    tab.page.get_by_label("Choose photos").set_input_files(photo)
    (card,) = _cards(tab, 1)
    _assert_shows(card, _api_prediction(web, photo))
    expect(tab.page.get_by_role("status")).to_contain_text(f"{photo.name}: {card['className']}")


def test_several_real_photos_each_get_their_own_card(
    tab: Tab, web: WebServer, flowers_dev: Path
) -> None:
    photos = _photos(flowers_dev, "daisy", "dandelion", "sunflowers", "tulips")
    tab.open_classify_page()
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
    tab.open_classify_page()
    tab.page.get_by_label("Choose photos").set_input_files(
        {"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": notes}
    )
    (card,) = _cards(tab, 1)
    assert card["error"] == f"Refused (HTTP 400): {api.json()['detail']}"
    assert card["className"] is None and card["bars"] == []


def test_photos_can_be_dropped_and_pasted(tab: Tab, flowers_dev: Path) -> None:
    dropped, pasted = _photos(flowers_dev, "daisy", "tulips")
    tab.goto("/")
    expect(tab.page.locator("#model-line")).to_contain_text("Model version")
    # Dragging over the page: the zone says what a drop does, in words as well as colour.
    tab.page.evaluate("window.dispatchEvent(new DragEvent('dragover', {cancelable: true}))")
    zone = tab.page.locator("#drop-zone.dragging")
    expect(zone).to_have_count(1)
    said = zone.locator("h2").evaluate("h => getComputedStyle(h, '::after').content")
    assert said == '" — release to classify"'
    assert axe_in_every_layout(tab) == []
    tab.page.evaluate("window.dispatchEvent(new DragEvent('dragleave'))")
    expect(zone).to_have_count(0)
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
    tab.open_classify_page()  # the picker is disabled (not focusable) until a model is known
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


def test_nothing_is_filed_until_wrong_is_pressed_and_a_class_chosen_and_undo_removes_it(
    tab: Tab, web: WebServer, flowers_dev: Path
) -> None:
    (photo,) = _photos(flowers_dev, "roses")
    tab.open_classify_page()
    tab.page.get_by_label("Choose photos").set_input_files(photo)
    (card,) = _cards(tab, 1)
    # No token: "Wrong?" can only send the photo for review, never file it in the dataset.
    tab.page.get_by_role("button", name="Wrong?").click()
    expect(tab.page.get_by_role("button", name="Send for review")).to_be_disabled()
    expect(tab.page.get_by_role("button", name="Add to dataset")).to_have_count(0)
    sign_in(tab)  # the token is in this tab's sessionStorage now
    tab.open_classify_page()
    tab.page.get_by_label("Choose photos").set_input_files(photo)
    (card,) = _cards(tab, 1)
    page = tab.page
    # A card offers "Wrong?" and nothing else: no class chosen for the user, nothing to press.
    expect(page.locator(".feedback select")).to_be_hidden()
    expect(page.get_by_role("button", name="Add to dataset")).to_be_hidden()
    page.get_by_role("button", name="Wrong?").click()
    select = page.get_by_label(f"Not {card['className']}? File this photo under")
    expect(select).to_be_focused()
    expect(select).to_have_value("")  # the placeholder: no class pre-selected
    offered = select.locator("option:not([disabled])").all_inner_texts()
    assert card["className"] not in offered and "green" in offered
    add = page.get_by_role("button", name="Add to dataset")
    expect(add).to_be_disabled()
    select.select_option("green")
    add.click()
    digest = hashlib.sha256(photo.read_bytes()).hexdigest()
    output = page.locator(".feedback output")
    expect(output).to_have_text(f"Added to the dataset as green/{digest}.jpg. Undo")
    stored = web.data / "green" / f"{digest}.jpg"
    assert stored.read_bytes() == photo.read_bytes()
    expect(add).to_be_disabled()  # filed once; Undo first to file it elsewhere
    page.get_by_role("button", name=f"Undo: remove green/{digest}.jpg from the dataset").click()
    expect(output).to_have_text(f"Removed green/{digest}.jpg from the dataset.")
    assert not stored.exists()
    expect(select).to_be_focused()
    expect(add).to_be_enabled()


def test_a_busy_server_is_asked_again_after_its_retry_after(tab: Tab, flowers_dev: Path) -> None:
    (photo,) = _photos(flowers_dev, "daisy")
    refused: list[str] = []

    def busy_twice(route: Any) -> None:
        if len(refused) < 2:
            refused.append(route.request.url)
            route.fulfill(
                status=503,
                headers={"Retry-After": "1", "Content-Type": "application/json"},
                body='{"detail": "the server is at capacity: try again shortly"}',
            )
        else:
            route.continue_()

    tab.open_classify_page()
    tab.page.route("**/predict", busy_twice)
    tab.page.get_by_label("Choose photos").set_input_files(photo)
    (card,) = _cards(tab, 1)
    assert len(refused) == 2
    assert card["error"] is None and card["className"]
    expect(tab.page.locator(".card .latency")).to_have_text(re.compile(r"^ · \d+ ms$"))


def test_an_unreachable_server_gets_one_banner_and_a_retry_button_that_works(
    tab: Tab, web: WebServer, flowers_dev: Path
) -> None:
    (photo,) = _photos(flowers_dev, "tulips")
    tab.goto("/")
    expect(tab.page.locator("#model-line")).to_contain_text("Model version")
    banner = tab.page.get_by_role("alert").filter(has_text="cannot be reached")
    expect(banner).to_be_hidden()
    for path in ("**/predict", "**/health/live"):  # the server is down, as far as the page can tell
        tab.page.route(path, lambda route: route.abort())
    tab.page.get_by_label("Choose photos").set_input_files(photo)
    card = tab.page.locator(".card")
    expect(card.locator(".error")).to_have_text(
        "Not classified: the server cannot be reached (tried 5 times).", timeout=30_000
    )
    expect(banner).to_be_visible()
    expect(banner).to_have_count(1)
    assert axe_in_every_layout(tab) == []  # the banner, and a card with its Retry
    tab.page.unroute("**/predict")
    tab.page.unroute("**/health/live")
    expect(banner).to_be_hidden(timeout=10_000)  # it asks /health/live every few seconds
    card.get_by_role("button", name=f"Retry {photo.name}").click()
    expected = _api_prediction(web, photo)["class_name"]
    expect(card.locator(".class-name")).to_have_text(expected, timeout=30_000)
    expect(card.locator(".error")).to_have_count(0)
    forgive_cut_offs(tab)


def test_clear_is_hidden_until_there_is_something_to_clear_and_gives_focus_back(
    tab: Tab, flowers_dev: Path
) -> None:
    tab.open_classify_page()
    clear = tab.page.get_by_role("button", name="Clear results")
    expect(clear).to_be_hidden()
    tab.page.get_by_label("Choose photos").set_input_files(_photos(flowers_dev, "daisy"))
    _cards(tab, 1)
    clear.click()
    expect(clear).to_be_hidden()
    expect(tab.page.locator(".card")).to_have_count(0)
    assert tab.page.evaluate("document.activeElement.id") == "pick"


def test_a_refused_file_shows_a_line_not_a_broken_image(tab: Tab) -> None:
    tab.open_classify_page()
    tab.page.get_by_label("Choose photos").set_input_files(
        {"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": b"not a photo"}
    )
    card = tab.page.locator(".card[data-state='error']")
    expect(card.locator(".no-preview")).to_have_text(
        "No preview: the browser cannot draw this file."
    )
    expect(card.locator("img")).to_have_count(0)


def test_an_empty_store_shows_no_internals_and_takes_photos_once_a_model_serves(
    browser: Any, tmp_path: Path
) -> None:
    store = ModelStore(tmp_path / "store")
    env = {"FLOWERS_MODEL_STORE": str(store.root), "FLOWERS_POLL_INTERVAL_S": "0.5"}
    with running_server(env, until="live") as server:
        tab = open_tab(browser, WebServer(server.base, store, tmp_path, tmp_path / "log"))
        try:
            with_axe(tab)
            tab.goto("/")
            line = tab.page.locator("#model-line")
            expect(line).to_have_text(
                "The classifier is not ready yet: no model serves. This page will accept photos "
                "as soon as one does."
            )
            body = tab.page.locator("body").inner_text()
            for internal in (str(tmp_path), "python -m", "app.train", "/admin"):
                assert internal not in body, internal
            expect(tab.page.locator("#pick")).to_be_disabled()
            expect(tab.page.locator("#drop-zone")).to_have_attribute("aria-disabled", "true")
            # a photo dropped anyway is not sent, and the page says so rather than nothing
            tab.page.evaluate(
                """() => {
                    const transfer = new DataTransfer();
                    const photo = new File([new Uint8Array(4)], 'early.jpg', {type: 'image/jpeg'});
                    transfer.items.add(photo);
                    document.querySelector('#drop-zone').dispatchEvent(new DragEvent('drop',
                      {bubbles: true, cancelable: true, dataTransfer: transfer}));
                }"""
            )
            expect(tab.page.locator("#status")).to_contain_text(
                "No model serves yet: these photos were not sent."
            )
            expect(tab.page.locator(".card")).to_have_count(0)
            assert axe_in_every_layout(tab) == []
            publish_tiny(store, FLOWERS, seed=3)
            expect(line).to_contain_text("Model version 1", timeout=30_000)
            expect(tab.page.locator("#pick")).to_be_enabled()
            assert tab.problems == []
        finally:
            tab.page.context.close()


def test_an_int8_model_is_shown_with_the_arithmetic_of_its_float_layers(
    browser: Any, tmp_path: Path
) -> None:
    pytest.importorskip("nncf")
    from app.ml import engines
    from tests.support.modelfactory import colour_kernel

    store, colours = ModelStore(tmp_path / "store"), ["blue", "green", "red"]
    version = publish_tiny(store, colours, weights=colour_kernel(colours), int8=True)
    float_layers = engines.int8_float_precision(version, engines.cpu_capabilities())
    env = {"FLOWERS_MODEL_STORE": str(store.root), "FLOWERS_ENGINE_PRECISION": "int8"}
    with running_server(env) as server:
        tab = open_tab(browser, WebServer(server.base, store, tmp_path, tmp_path / "log"))
        try:
            tab.goto("/")
            expect(tab.page.locator("#model-line")).to_have_text(
                f"Model version 1 (openvino in int8, its float layers in {float_layers}, on CPU) "
                "knows 3 classes: blue, green, red."
            )
            assert tab.problems == []
        finally:
            tab.page.context.close()


def test_the_page_fits_a_phone_screen(phone: Tab, flowers_dev: Path) -> None:
    phone.open_classify_page()
    phone.page.get_by_label("Choose photos").set_input_files(_photos(flowers_dev, "tulips"))
    _cards(phone, 1)
    overflow = phone.page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    # A phone has no Ctrl+V to paste with: the hint is not shown there.
    assert phone.page.evaluate("matchMedia('(pointer: coarse)').matches")
    expect(phone.page.locator(".paste-hint")).to_be_hidden()
    camera = phone.page.get_by_label("Take a photo")
    assert camera.get_attribute("capture") == "environment"
    assert camera.get_attribute("accept") == "image/*"


def _encoded(image: Any, kind: str, **options: Any) -> bytes:
    import io

    out = io.BytesIO()
    image.save(out, kind, **options)
    return out.getvalue()


def test_photos_over_the_limits_are_shrunk_in_the_browser_and_the_card_says_so(
    tab: Tab, web: WebServer
) -> None:
    import numpy as np
    from PIL import Image

    limits = httpx.get(f"{web.base}/model").json()["limits"]
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 256, (3200, 4200, 3), dtype=np.uint8))
    heavy = _encoded(noise, "JPEG", quality=97)  # a phone photo's worth of bytes
    assert len(heavy) > limits["max_file_bytes"]
    wide = _encoded(Image.new("RGB", (8000, 6000), (200, 40, 60)), "PNG")  # 48 MP, few bytes
    assert len(wide) < limits["max_file_bytes"] and limits["max_image_pixels"] < 8000 * 6000
    refused = httpx.post(
        f"{web.base}/predict", files={"file": ("heavy.jpg", heavy, "image/jpeg")}, timeout=60
    )
    assert refused.status_code == 413  # what the page would get without shrinking
    tab.open_classify_page()
    tab.page.get_by_label("Choose photos").set_input_files(
        [
            {"name": "heavy.jpg", "mimeType": "image/jpeg", "buffer": heavy},
            {"name": "wide.png", "mimeType": "image/png", "buffer": wide},
        ]
    )
    cards = tab.page.locator(".card[data-state='done']")
    expect(cards).to_have_count(2, timeout=120_000)
    notes = tab.page.locator(".card .shrunk")
    x = "\N{MULTIPLICATION SIGN}"
    expect(notes.nth(0)).to_contain_text(f"(4200{x}3200) to")
    expect(notes.nth(0)).to_contain_text(f"(2048{x}1560)")
    expect(notes.nth(1)).to_contain_text(f"(8000{x}6000) to")
    expect(notes.nth(1)).to_contain_text(f"(2048{x}1536)")


def test_a_slow_upload_shows_its_progress(tab: Tab, flowers_dev: Path) -> None:
    (photo,) = _photos(flowers_dev, "sunflowers")
    tab.goto("/")
    expect(tab.page.locator("#model-line")).to_contain_text("Model version")
    session = tab.page.context.new_cdp_session(tab.page)
    session.send("Network.enable")
    session.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 50, "downloadThroughput": -1, "uploadThroughput": 20_000},
    )
    tab.page.evaluate(
        """() => {
            window.uploadTexts = [];
            new MutationObserver(() => {
                for (const p of document.querySelectorAll('.card-body p.muted')) {
                    window.uploadTexts.push(p.textContent);
                }
            }).observe(document.getElementById('results'),
                       {childList: true, characterData: true, subtree: true});
        }"""
    )
    tab.page.get_by_label("Choose photos").set_input_files(photo)
    _cards(tab, 1)
    seen = tab.page.evaluate("window.uploadTexts")
    assert any(re.fullmatch(r"Uploading… \d+%", text) for text in seen), seen
