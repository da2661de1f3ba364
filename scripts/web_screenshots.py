"""Screenshots of the web console for the docs (docs/web-console.md), at desktop and phone widths.

Starts the real server over a store (ideally two versions trained on the real photos, so the
predictions, examples and comparison shown are real), classifies a few real photos and an example,
raises a flag, sends some traffic, signs in to the console and shows the newest version's
details, the live panel, the comparison of the two newest versions and the review queue; writes
small palette PNGs into docs/images/.

    python scripts/web_screenshots.py --store model_store \
        --data ../shared/datasets/flower_photos_dev
"""

from __future__ import annotations

import argparse
import io
import secrets
import sys
import threading
from pathlib import Path
from typing import Any

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.browser import CHROMIUM_ARGS, chromium_path  # noqa: E402
from tests.support.servers import running_server  # noqa: E402

TOKEN = secrets.token_hex(16)  # this run's server only
SIZES = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}
PHOTOS = {"desktop": ("roses", "sunflowers", "daisy"), "phone": ("tulips",)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, required=True, help="the model store to serve")
    parser.add_argument("--data", type=Path, required=True, help="a folder of class folders")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    args = parser.parse_args()
    executable = chromium_path()
    if executable is None:
        raise SystemExit("no Chromium found: apt-get install chromium (or set FLOWERS_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    env = {
        "FLOWERS_MODEL_STORE": str(args.store.resolve()),
        "FLOWERS_DATA_DIR": str(args.data.resolve()),
        "FLOWERS_ADMIN_TOKEN": TOKEN,
        "FLOWERS_KEEP_VERSIONS": "5",
        "FLOWERS_POLL_INTERVAL_S": "0",
    }
    with running_server(env) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        for size, viewport in SIZES.items():
            context = browser.new_context(viewport=viewport, is_mobile=size == "phone")
            page = context.new_page()
            classify(page, server.base, [first_photo(args.data, c) for c in PHOTOS[size]])
            save(page, args.out / f"web-classify-{size}.png")
            example(page, server.base)
            save(page, args.out / f"web-examples-{size}.png")
            flag = raise_flag(server.base, args.data)
            traffic = start_traffic(server.base, args.data)
            console(page, server.base)
            save(page, args.out / f"web-console-{size}.png")
            live(page)
            save(page, args.out / f"web-live-{size}.png")
            traffic.set()
            compare(page)
            save(page, args.out / f"web-compare-{size}.png")
            review(page, flag)
            save(page, args.out / f"web-review-{size}.png")
            reject_flag(server.base, flag)
            context.close()
        browser.close()
    return 0


def first_photo(data: Path, name: str) -> Path:
    return sorted((data / name).iterdir())[0]


def classify(page: Any, base: str, photos: list[Path]) -> None:
    page.goto(f"{base}/")
    page.get_by_label("Choose photos").set_input_files(photos)
    page.locator(".card[data-state='done']").nth(len(photos) - 1).wait_for()
    page.evaluate("document.activeElement.blur()")
    if page.viewport_size["width"] < 600:  # a phone shows one card: scroll to it
        page.evaluate("document.getElementById('results-title').scrollIntoView()")


def example(page: Any, base: str) -> None:
    """The examples, one of them clicked and classified."""
    page.goto(f"{base}/")
    page.locator("button.example").nth(4).click()  # a rose, with two per class
    page.locator(".card[data-state='done']").wait_for()
    page.evaluate("document.activeElement.blur()")
    page.evaluate("document.getElementById('examples').scrollIntoView()")


def raise_flag(base: str, data: Path) -> str:
    """A visitor's flag: a tulip sent for review as a tulip the model may have called a rose."""
    import httpx2 as httpx

    photo = sorted((data / "tulips").iterdir())[7]
    files = {"file": (photo.name, photo.read_bytes(), "image/jpeg")}
    query = "suggested=tulips&predicted=roses&model_version=1"
    answer = httpx.post(f"{base}/flags?{query}", files=files, timeout=30)
    answer.raise_for_status()
    return str(answer.json()["id"])


def reject_flag(base: str, flag: str) -> None:
    import httpx2 as httpx

    httpx.delete(f"{base}/admin/flags/{flag}", headers={"Authorization": f"Bearer {TOKEN}"})


def start_traffic(base: str, data: Path) -> threading.Event:
    """Predictions from two threads until the returned event is set: the live panel's numbers."""
    import httpx2 as httpx

    stop = threading.Event()
    photos = [p.read_bytes() for p in sorted((data / "daisy").iterdir())[:8]]

    def send() -> None:
        with httpx.Client(timeout=30) as client:
            index = 0
            while not stop.is_set():
                files = {"file": ("daisy.jpg", photos[index % len(photos)], "image/jpeg")}
                client.post(f"{base}/predict", files=files)
                index += 1

    for _ in range(2):
        threading.Thread(target=send, daemon=True).start()
    return stop


def live(page: Any) -> None:
    from playwright.sync_api import expect

    first = page.locator("#live-facts dd").first
    expect(first).not_to_have_text("waiting for two readings", timeout=20_000)
    page.wait_for_timeout(30_000)  # a quarter of the chart's two minutes
    page.evaluate("document.getElementById('live-title').scrollIntoView()")


def compare(page: Any) -> None:
    """The two newest versions compared, scrolled to the photos they disagree on."""
    numbers = page.locator("#compare-a option").evaluate_all("os => os.map(o => o.value)")
    page.locator("#compare-a").select_option(numbers[1])
    page.locator("#compare-b").select_option(numbers[0])
    page.get_by_role("button", name="Compare", exact=True).click()
    page.locator("#comparison .disagree img").first.wait_for()
    page.wait_for_timeout(1000)  # every thumbnail
    page.evaluate("document.activeElement.blur()")
    page.evaluate("document.querySelector('#comparison .disagreements').scrollIntoView()")


def review(page: Any, flag: str) -> None:
    page.locator(f"#flags li[data-flag='{flag}'] img").wait_for()
    page.evaluate("document.getElementById('review-title').scrollIntoView()")


def console(page: Any, base: str) -> None:
    page.goto(f"{base}/admin")
    page.get_by_label("Admin token").fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    newest = page.locator("#versions tbody tr").first
    newest.wait_for()
    newest.get_by_role("button", name="Details", exact=False).click()
    page.locator("#detail figure img").nth(1).wait_for()
    page.evaluate(
        """() => {
            document.activeElement.blur();
            for (const wrap of document.querySelectorAll('.table-wrap')) wrap.scrollLeft = 0;
            document.getElementById('versions-title').scrollIntoView();
        }"""
    )


def save(page: Any, path: Path) -> None:
    """The viewport as an adaptive-palette PNG (a UI needs few colours; the files stay small)."""
    image = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
    image.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    shown = path.relative_to(REPO) if path.is_relative_to(REPO) else path
    print(f"{shown}: {path.stat().st_size:,} bytes")


if __name__ == "__main__":
    sys.exit(main())
