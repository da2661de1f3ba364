"""The operator's console (/admin) in a real browser: sign in, versions with their plots and
scores, activation with a confirmation, deletion, retraining watched to the end, and labelled
photos uploaded, each checked against the server's real state."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import httpx2 as httpx
import pytest

from app.options import TrainOptions
from app.store.predictions import PhotoPrediction
from app.training.finetune import HeldOut, fine_tuning_record
from tests.support.modelfactory import publish_tiny
from tests.web.conftest import (
    FLOWERS,
    KEEP_VERSIONS,
    TOKEN,
    Tab,
    WebServer,
    axe_in_every_layout,
    forgive_cut_offs,
    sign_in,
    with_axe,
)

if TYPE_CHECKING:
    from playwright.sync_api import Locator

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = [pytest.mark.slow, pytest.mark.browser]

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _row(tab: Tab, version: int) -> object:
    return tab.page.locator(f"#versions tbody tr[data-version='{version}']")


def test_a_wrong_token_shows_the_apis_401_message_and_stores_nothing(
    tab: Tab, web: WebServer
) -> None:
    wrong = "not-the-token-0000000000"
    api = httpx.get(f"{web.base}/admin/models", headers={"Authorization": f"Bearer {wrong}"})
    assert api.status_code == 401
    sign_in(tab, wrong)
    expect(tab.page.locator("#sign-in-error")).to_have_text(api.json()["detail"])
    expect(tab.page.locator("#console")).to_be_hidden()
    assert tab.page.evaluate("sessionStorage.length + localStorage.length") == 0


def test_the_right_token_lists_every_version_and_keeps_the_token_in_the_tab_only(
    tab: Tab, web: WebServer
) -> None:
    sign_in(tab)
    expect(tab.page.locator("#versions-title")).to_be_focused()  # not <body>: the form is gone
    listed = httpx.get(f"{web.base}/admin/models", headers=AUTH).json()
    rows = tab.page.locator("#versions tbody tr")
    expect(rows).to_have_count(len(listed["versions"]))
    for version in listed["versions"]:
        row = _row(tab, int(version["version"]))
        expect(row.locator("td").nth(1)).to_contain_text(f"{version['val_accuracy'] * 100:.1f}%")
        expect(row.locator("td").nth(2)).to_have_text(
            f"{len(version['classes'])}: {', '.join(version['classes'])}"
        )
        badges = " ".join(name for name in ("active", "serving") if version[name])
        if badges:
            expect(row.locator("td").nth(4)).to_have_text(badges.replace(" ", ""))
    expect(tab.page.locator("#retention")).to_contain_text(
        f"newest {KEEP_VERSIONS} and the active version are kept"
    )
    assert tab.page.evaluate("Object.values(sessionStorage)") == [TOKEN]
    assert tab.page.evaluate("localStorage.length") == 0
    assert not [url for url in tab.requests if TOKEN in url]
    assert TOKEN not in web.log.read_text()


def test_a_versions_plots_and_per_class_scores_are_shown(tab: Tab) -> None:
    sign_in(tab)
    tab.page.get_by_role("button", name="Details of version 1", exact=True).click()
    figures = tab.page.locator("#detail figure")
    expect(figures).to_have_count(2)
    titles = (
        ("history.png", "Accuracy per fold and training curves"),
        ("confusion.png", "Confusion"),
    )
    for name, title in titles:
        image = tab.page.locator(f"#detail figure[data-plot='{name}'] img")
        expect(image).to_have_attribute("src", re.compile(r"^blob:"))
        expect(image).to_have_attribute("alt", re.compile(f"^{title}"))
        image.evaluate("img => img.decode()")
        assert image.evaluate("img => img.naturalWidth") > 300
    scores = tab.page.locator("#detail table.scores tbody tr")
    expect(scores).to_have_count(len(FLOWERS))
    expect(scores.first).to_have_text(re.compile(r"daisy\s*0\.800\s*0\.600\s*0\.686\s*5"))


def test_activating_the_older_version_after_a_confirmation_makes_predict_answer_with_it(
    tab: Tab, web: WebServer
) -> None:
    photo = {"file": ("x.jpg", _jpeg(), "image/jpeg")}
    before = httpx.post(f"{web.base}/predict", files=photo, timeout=30).json()["model_version"]
    assert (before, _versions(web)[:2]) == ("2", [1, 2])  # the fixture: 2 serves, 1 is older
    try:
        sign_in(tab)
        _row(tab, 1).get_by_role("button", name="Activate version 1").click()
        dialog = tab.page.get_by_role("dialog")
        expect(dialog).to_contain_text("instead of version 2")
        dialog.get_by_role("button", name="Cancel").click()  # the first answer: no
        expect(_row(tab, 2).locator(".badge")).to_have_count(2)
        _row(tab, 1).get_by_role("button", name="Activate version 1").click()
        tab.page.evaluate(
            """() => {
                window.busyStates = [];
                const table = document.getElementById('versions');
                new MutationObserver(() => window.busyStates.push([
                    table.getAttribute('aria-busy'),
                    [...table.querySelectorAll('button')].every(button => button.disabled),
                ])).observe(table, {attributes: true, attributeFilter: ['aria-busy']});
            }"""
        )
        dialog.get_by_role("button", name="Activate version 1").click()
        expect(tab.page.locator("#announce")).to_have_text("Version 1 is active and serving.")
        expect(_row(tab, 1).locator(".badge")).to_have_text(["active", "serving"])
        # While it loaded, the table was busy and no button could be pressed; then focus went
        # to the row it acted on, not to <body>.
        assert tab.page.evaluate("window.busyStates")[0] == ["true", True]
        expect(
            _row(tab, 1).get_by_role("button", name="Details of version 1", exact=True)
        ).to_be_focused()
        after = httpx.post(f"{web.base}/predict", files=photo, timeout=30).json()
        assert after["model_version"] == "1"
    finally:
        httpx.post(f"{web.base}/admin/models/2/activate", headers=AUTH, timeout=60)


def test_an_old_version_is_deleted_after_a_confirmation_and_the_active_one_cannot_be(
    tab: Tab, web: WebServer
) -> None:
    doomed = publish_tiny(web.store, FLOWERS, seed=7, activate=False).number
    sign_in(tab)
    active = _versions_active(web)
    expect(
        _row(tab, active).get_by_role("button", name=f"Delete version {active}")
    ).to_be_disabled()
    _row(tab, doomed).get_by_role("button", name=f"Delete version {doomed}").click()
    tab.page.get_by_role("dialog").get_by_role("button", name=f"Delete version {doomed}").click()
    expect(tab.page.locator("#announce")).to_have_text(f"Version {doomed} was deleted.")
    expect(_row(tab, doomed)).to_have_count(0)
    assert not (web.store.root / str(doomed)).exists()
    expect(tab.page.get_by_role("region", name="Table of versions")).to_be_focused()


def test_labelled_photos_are_uploaded_with_duplicates_and_rejects_reported_per_file(
    tab: Tab, web: WebServer, flowers_dev: Path
) -> None:
    first, second = sorted((flowers_dev / "sunflowers").iterdir())[1:3]
    notes = _payload("notes.jpg", b"not a photo at all")
    copy = _payload("again.jpg", first.read_bytes())
    sign_in(tab)
    tab.page.get_by_label("Class (an existing one, or a new name)").fill("sunflowers")
    photos = [_payload(path.name, path.read_bytes()) for path in (first, second)]
    tab.page.get_by_label("Photos", exact=True).set_input_files([*photos, copy, notes])
    tab.page.get_by_role("button", name="Upload").click()
    outcomes = tab.page.locator("#upload-results li")
    expect(outcomes).to_have_count(4)
    digest = hashlib.sha256(first.read_bytes()).hexdigest()
    expect(tab.page.locator("li[data-outcome='stored']")).to_have_count(2)
    expect(tab.page.locator("li[data-outcome='stored']").first).to_have_text(
        f"{first.name} stored as sunflowers/{digest}.jpg"
    )
    expect(tab.page.locator("li[data-outcome='duplicate']")).to_have_text(
        f"again.jpg duplicate of sunflowers/{digest}.jpg, not stored again"
    )
    expect(tab.page.locator("li[data-outcome='rejected']")).to_contain_text(
        "notes.jpg rejected (HTTP 400): the bytes are not a decodable image"
    )
    expect(tab.page.locator("#dataset tbody tr[data-class='sunflowers'] td").first).to_have_text(
        "2"
    )
    assert len(list((web.data / "sunflowers").iterdir())) == 2
    # The dataset folder is shared by this session's server: a two-photo class would (rightly)
    # make the retrain below refuse to start training, so take the class out again.
    shutil.rmtree(web.data / "sunflowers")


def test_a_retrain_started_from_the_form_is_watched_until_it_succeeds(
    tab: Tab, web: WebServer
) -> None:
    before = set(_versions(web))
    classes = sorted(path.name for path in web.data.iterdir() if path.is_dir())
    sign_in(tab)
    page = tab.page
    page.get_by_label("Openvino", exact=True).uncheck()
    page.get_by_label("Activate", exact=True).select_option("never")
    page.evaluate(
        """() => {
            window.seenStates = [];
            const state = document.getElementById('job-state');
            new MutationObserver(() => window.seenStates.push(state.textContent))
              .observe(state, {childList: true, characterData: true, subtree: true});
        }"""
    )
    blips: list[str] = []

    def blip_three_times(route: object) -> None:
        # The first looks at the job after it starts: a 503, no answer, a 503; then the server.
        if route.request.method == "GET" and len(blips) < 3:  # type: ignore[attr-defined]
            blips.append(route.request.url)  # type: ignore[attr-defined]
            if len(blips) == 2:
                route.abort()  # type: ignore[attr-defined]
            else:
                route.fulfill(status=503, headers={"Retry-After": "1"}, body="")  # type: ignore[attr-defined]
        else:
            route.continue_()  # type: ignore[attr-defined]

    page.route(re.compile(r"/admin/jobs/\w+$"), blip_three_times)
    start = page.get_by_role("button", name="Start retraining")
    start.click()
    expect(start).to_be_disabled()  # one job at a time: no second Start while it runs
    # Another tab's Start (the form submitted anyway) gets the API's 409, shown until it is stale.
    page.evaluate("document.getElementById('retrain-form').requestSubmit()")
    expect(page.locator("#retrain-error")).to_contain_text("is running")
    state = page.locator("#job-state")
    _wait_for_new_job(page)
    expect(state).to_have_text(re.compile(r"^succeeded: published version \d+"), timeout=300_000)
    seen = page.evaluate("window.seenStates")
    assert any(text.startswith("running: ") for text in seen), seen
    assert len(blips) == 3  # the watch lived through them
    expect(page.locator("#retrain-error")).to_be_hidden()  # the 409 is stale now: cleared
    expect(page.get_by_role("button", name="Cancel job")).to_be_hidden()
    expect(start).to_be_enabled()
    forgive_cut_offs(tab)
    expect(page.locator("#job-log")).to_contain_text("version published")
    # The whole job: its bar full, its time said, and its whole log a page at a time.
    assert page.locator("#job-progress").evaluate("bar => bar.value") == 1
    expect(page.locator("#job-timing")).to_have_text(re.compile(r"^elapsed \d+:\d\d$"))
    page.get_by_text("The whole log, a page at a time").click()
    whole = page.locator("#job-log-all")
    expect(whole).to_contain_text("[scan]")
    expect(whole).to_contain_text("version published")
    expect(page.locator("#job-log-count")).to_have_text(re.compile(r"^Lines 1 to (\d+) of \1\.$"))
    new = set(_versions(web)) - before
    assert len(new) == 1
    (number,) = new
    expect(state).to_have_text(
        f"succeeded: published version {number}, not activated "
        "(activate=never: published without activating)"
    )
    expect(_row(tab, number)).to_be_visible()
    page.get_by_role("button", name=f"Details of version {number}", exact=True).click()
    expect(page.locator("#detail figure img")).to_have_count(2)
    expect(page.locator("#detail table.scores tbody th")).to_have_text(classes)


def _wait_for_new_job(page: object) -> None:
    """Until the panel shows the job just started (it showed the last one, maybe finished)."""
    announce = page.locator("#announce")  # type: ignore[attr-defined]
    expect(announce).to_have_text(re.compile(r"^Retrain job \w+ started\.$"))
    job_id = re.search(r"job (\w+) started", announce.inner_text()).group(1)  # type: ignore[union-attr]
    title = page.locator("#job-title")  # type: ignore[attr-defined]
    expect(title).to_have_text(f"Job {job_id}", timeout=60_000)  # after any blips' back-off


def _payload(name: str, data: bytes) -> dict[str, object]:
    return {"name": name, "mimeType": "image/jpeg", "buffer": data}


def _versions(web: WebServer) -> list[int]:
    return [v.number for v in web.store.versions()]


def _versions_active(web: WebServer) -> int:
    number = web.store.active_number()
    assert number is not None
    return number


def _jpeg() -> bytes:
    from tests.support import imagefactory

    return imagefactory.jpeg()


def test_the_console_fits_a_phone_screen(phone: Tab) -> None:
    sign_in(phone)
    phone.page.get_by_role("button", name="Details of version 1", exact=True).click()
    expect(phone.page.locator("#detail figure img")).to_have_count(2)
    overflow = phone.page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0  # wide tables scroll inside their own region
    region = phone.page.get_by_role("region", name="Table of versions")
    assert region.get_attribute("tabindex") == "0"  # reachable to scroll by keyboard
    # One block per version: its actions on screen, not past the table's right edge.
    for button in phone.page.locator("#versions tbody button").all():
        box = button.bounding_box()
        assert box is not None and box["x"] + box["width"] <= 390, box
    expect(phone.page.locator("#versions tbody td[data-label='Accuracy']").first).to_be_visible()


def _details_facts(tab: Tab, number: int) -> Locator:
    """Signed in, version ``number``'s details opened: their list of facts."""
    sign_in(tab)
    tab.page.get_by_role("button", name=f"Details of version {number}", exact=True).click()
    return tab.page.locator("#detail dl.facts")


def test_a_linear_heads_details_name_its_own_recipe_and_plot(tab: Tab, web: WebServer) -> None:
    training = {
        "head": "linear",
        "features": "conv4-conv5-gem",
        "input_size": 224,
        "flips": True,
        "l2": 0.03,
        "folds": 5,
        "seed": 123,
        "epochs": 10,
        "learning_rate": 0.001,
        "batch_size": 32,
        "fine_tune_epochs": 0,
    }
    number = publish_tiny(
        web.store, FLOWERS, seed=8, activate=False, plots=True, training=training
    ).number
    facts = _details_facts(tab, number)
    expect(facts).to_contain_text(
        "head linear, features conv4-conv5-gem, input size 224, flips true, folds 5, seed 123, "
        "l2 0.03"
    )
    expect(facts).not_to_contain_text("epochs")  # the mlp head's options: not this recipe's
    image = tab.page.locator("#detail figure[data-plot='history.png'] img")
    expect(image).to_have_attribute(
        "alt", f"Accuracy per cross-validation fold of version {number}"
    )
    image.evaluate("img => img.decode()")
    assert image.evaluate("img => img.naturalWidth") == 500  # the folds alone, no empty axes


def test_a_version_fine_tuned_after_its_folds_says_its_accuracy_is_the_heads(
    tab: Tab, web: WebServer
) -> None:
    training = {"head": "linear", "fine_tune_epochs": 4, "fine_tune_in_folds": False}
    record = fine_tuning_record(
        TrainOptions(fine_tune_epochs=4, fine_tune_in_folds=False), HeldOut(614, 0.9104, 0.9251)
    )
    number = publish_tiny(
        web.store,
        FLOWERS,
        seed=9,
        val_accuracy=0.9248,
        activate=False,
        training=training,
        metrics={"fine_tuning": record},
    ).number
    facts = _details_facts(tab, number)
    expect(facts).to_contain_text(
        "the head alone: conv5 was then fine-tuned, which added 1.0 points when measured once; "
        "fine-tuned, 92.5% on the 614 photos kept out of it (the head alone 91.0%)"
    )
    expect(facts).to_contain_text("fine tune epochs 4, fine tune in folds false")


def test_a_server_that_cannot_be_reached_is_one_banner_not_an_error_per_section(
    tab: Tab, web: WebServer, flowers_dev: Path
) -> None:
    sign_in(tab)
    page = tab.page
    banner = page.get_by_role("alert").filter(has_text="cannot be reached")
    for pattern in ("**/admin/**", "**/openapi.json", "**/health/live", "**/metrics"):
        page.route(pattern, lambda route: route.abort())
    page.reload()  # the console opens again (the token is in the tab) with the server gone
    expect(banner).to_be_visible()
    expect(page.locator(".error:visible")).to_have_count(0)
    assert axe_in_every_layout(tab) == []
    # An upload that cannot reach the server says it stopped, not "0 stored" as if it ran.
    page.get_by_label("Class (an existing one, or a new name)").fill("red")
    photo = sorted((flowers_dev / "roses").iterdir())[0]
    page.get_by_label("Photos", exact=True).set_input_files(photo)
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#announce")).to_have_text(
        re.compile(
            r"^Upload to red stopped \(The server cannot be reached .*\); before that: 0 stored"
        ),
        timeout=30_000,
    )
    page.unroute("**/admin/**")
    page.unroute("**/openapi.json")
    page.unroute("**/health/live")
    page.unroute("**/metrics")
    expect(banner).to_be_hidden(timeout=10_000)
    forgive_cut_offs(tab)


def test_number_columns_are_right_aligned_under_right_aligned_headers(tab: Tab) -> None:
    sign_in(tab)
    for table in ("#versions", "#dataset"):
        headers = tab.page.locator(f"{table} thead th.number")
        expect(headers.first).to_be_visible()
        for header in headers.all():
            assert header.evaluate("th => getComputedStyle(th).textAlign") == "right"
    assert tab.page.evaluate(
        "import('/web/api.js').then(api => [api.plural(1, 'version'), api.plural(2, 'version')])"
    ) == ["1 version", "2 versions"]


def test_the_retrain_form_is_grouped_and_shows_only_the_options_that_apply(tab: Tab) -> None:
    sign_in(tab)
    page = tab.page
    legends = page.locator("#retrain-form legend:visible").all_inner_texts()
    assert legends[:2] == ["Recipe", "The head's own options"] and "Publishing" in legends
    head = page.get_by_label("Head", exact=True)
    expect(head).to_have_value("linear")
    expect(page.get_by_label("L2", exact=True)).to_be_visible()
    for mlp_only in ("Epochs", "Learning Rate", "Dropout"):
        expect(page.get_by_label(mlp_only, exact=True)).to_be_hidden()
    expect(page.get_by_label("Validation Split", exact=True)).to_be_hidden()  # folds is 5
    expect(page.get_by_label("Mixed Precision", exact=True)).to_be_hidden()  # this server: CPU
    head.select_option("mlp")
    expect(page.get_by_label("Epochs", exact=True)).to_be_visible()
    expect(page.get_by_label("L2", exact=True)).to_be_hidden()
    page.get_by_label("Folds", exact=True).fill("0")
    page.get_by_label("Folds", exact=True).dispatch_event("change")
    expect(page.get_by_label("Validation Split", exact=True)).to_be_visible()


def test_a_note_on_a_version_is_saved_shown_in_the_table_and_refused_when_too_long(
    tab: Tab, web: WebServer
) -> None:
    number = publish_tiny(web.store, FLOWERS, seed=9, activate=False).number
    sign_in(tab)
    page = tab.page
    page.get_by_role("button", name=f"Details of version {number}", exact=True).click()
    note = page.get_by_label(f"Note on version {number}")
    note.fill("trained after the May uploads")
    page.get_by_role("button", name="Save note").click()
    expect(page.locator("#detail output")).to_have_text("Saved.")
    expect(_row(tab, number).locator(".note")).to_have_text("trained after the May uploads")
    stored = httpx.get(f"{web.base}/admin/models/{number}", headers=AUTH).json()
    assert stored["note"] == "trained after the May uploads"
    # maxlength stops typing at 500; a longer value set anyway gets the API's own 422 message.
    note.evaluate("area => { area.removeAttribute('maxlength'); area.value = 'x'.repeat(501); }")
    page.get_by_role("button", name="Save note").click()
    expect(page.locator("#detail output")).to_have_text(
        "Not saved (HTTP 422): note: String should have at most 500 characters"
    )
    assert httpx.get(f"{web.base}/admin/models/{number}", headers=AUTH).json()["note"] == (
        "trained after the May uploads"
    )


def test_the_live_panel_reads_the_servers_own_metrics_and_draws_them(
    tab: Tab, web: WebServer
) -> None:
    sign_in(tab)
    page = tab.page
    photo = {"file": ("x.jpg", _jpeg(), "image/jpeg")}
    for _ in range(4):  # two readings apart, at least: traffic between them
        for _ in range(3):
            assert httpx.post(f"{web.base}/predict", files=photo, timeout=30).status_code == 200
        page.wait_for_timeout(1000)
    fact = page.locator("#live-facts dd")
    expect(fact.first).not_to_have_text("waiting for two readings")
    rates = page.locator("#live-facts").inner_text()
    assert re.search(r"Requests/s\s+\d+\.\d", rates), rates
    assert re.search(r"p95 latency\s+(\d+ ms|—)", rates), rates
    assert re.search(r"Queue depth\s+\d+", rates), rates
    # each number on one line (they were once squeezed to a character a line by the names)
    heights = fact.evaluate_all("dds => dds.map(dd => dd.getBoundingClientRect().height)")
    line = float(fact.first.evaluate("dd => parseFloat(getComputedStyle(dd).lineHeight)"))
    assert max(heights) < 1.5 * line, (heights, line)
    expect(page.locator("#live-chart")).to_have_attribute("aria-label", re.compile("images/s"))
    painted = page.locator("#live-chart").evaluate(
        """canvas => {
            const {width, height} = canvas;
            const data = canvas.getContext('2d').getImageData(0, 0, width, height).data;
            let painted = 0;
            for (let i = 3; i < data.length; i += 4) if (data[i]) painted += 1;
            return painted;
        }"""
    )
    assert painted > 0
    # The quantile is Prometheus's histogram_quantile: linear inside the bucket.
    quantiles = page.evaluate(
        """() => import('/web/live.js').then(live => [
            live.quantile(0.5, [[0.1, 10], [0.2, 30], [Infinity, 30]]),
            live.quantile(0.95, [[0.1, 0], [Infinity, 4]]),
            live.quantile(0.5, [[0.1, 0], [Infinity, 0]]),
        ])"""
    )
    assert quantiles == [pytest.approx(0.125), 0.1, None]


def test_two_versions_are_compared_class_by_class_with_both_confusion_matrices(
    tab: Tab, web: WebServer
) -> None:
    def scores(f1: float) -> dict[str, dict[str, float]]:
        return {n: {"precision": 0.9, "recall": 0.8, "f1": f1, "support": 5} for n in FLOWERS}

    eye = [[5 if row == column else 0 for column in range(5)] for row in range(5)]
    mixed = [row[:] for row in eye]
    mixed[2][2], mixed[2][4] = 3, 2  # two roses taken for tulips
    # what each answered on three photos of the dataset folder: they differ on the first two
    sources = [f"blue/{path.name}" for path in sorted((web.data / "blue").iterdir())[:3]]
    answers = (("blue", "red", "blue"), ("green", "blue", "blue"))
    older, newer = (
        publish_tiny(
            web.store,
            FLOWERS,
            seed=seed,
            activate=False,
            metrics={"per_class": scores(f1), "confusion_matrix": matrix},
            predictions=[
                _measured(web.data, s, said) for s, said in zip(sources, said_all, strict=True)
            ],
            evaluation_set={"accuracy": 0.9317, "photos": 600} if seed == 11 else None,
        ).number
        for seed, f1, matrix, said_all in (
            (10, 0.8, mixed, answers[0]),
            (11, 0.85, eye, answers[1]),
        )
    )
    sign_in(tab)
    page = tab.page
    # the newer one was scored on an evaluation folder at publishing: the table says so
    held = "93.2% on the evaluation folder's 600 photos"
    expect(_row(tab, newer).locator(".held-out")).to_have_text(held)
    expect(_row(tab, older).locator(".held-out")).to_have_count(0)
    page.get_by_label("Compare", exact=True).select_option(str(older))
    page.get_by_label("with", exact=True).select_option(str(newer))
    page.get_by_role("button", name="Compare", exact=True).click()
    table = page.get_by_role(
        "region", name=f"Per-class scores, version {older} and version {newer}"
    )
    daisy = table.locator("tr[data-class='daisy'] td")
    expect(daisy).to_have_text(
        ["0.900", "0.900", "+0.000", "0.800", "0.800", "+0.000", "0.800", "0.850", "+0.050"]
    )
    first = page.get_by_role("region", name=re.compile(f"^Confusion matrix of version {older}"))
    expect(first.locator("tbody tr").nth(2).locator("td")).to_have_text(["0", "0", "3", "0", "2"])
    second = page.get_by_role("region", name=re.compile(f"^Confusion matrix of version {newer}"))
    expect(second.locator("tbody tr").nth(2).locator("td")).to_have_text(["0", "0", "5", "0", "0"])
    expect(page.locator("#comparison")).to_be_focused()
    expect(page.locator(".disagree-counts")).to_have_text(
        f"On the 3 photos both were measured on, each out of sample: both right on 1, only "
        f"version {older} on 1, only version {newer} on 1, both wrong on 0. Their answers differ "
        "on 2 photos."
    )
    shown = page.locator(".disagree")
    expect(shown).to_have_count(2)
    # each with its photo from the dataset folder and both answers
    expect(shown.first.locator("figcaption")).to_have_text(
        f"blue {sources[0]}v{older}: blue 90% (right)v{newer}: green 90% (wrong)"
    )
    expect(shown.locator("img")).to_have_count(2)
    for index in (0, 1):
        assert shown.nth(index).locator("img").evaluate("img => img.naturalWidth") > 0
    page.get_by_label("with", exact=True).select_option("1")  # recorded no predictions
    page.get_by_role("button", name="Compare", exact=True).click()
    expect(page.locator(".disagreements")).to_contain_text(
        "Not shown: version 1 recorded no per-photo predictions"
    )


def _measured(data: Path, source: str, predicted: str) -> PhotoPrediction:
    digest = hashlib.sha256((data / source).read_bytes()).hexdigest()
    return PhotoPrediction(digest, source, source.split("/")[0], predicted, 0.9)


def test_a_flag_from_anyone_is_reviewed_accepted_and_trained_on(
    browser: object, tab: Tab, web: WebServer, flowers_dev: Path
) -> None:
    from tests.web.conftest import open_tab

    photo = sorted((flowers_dev / "daisy").iterdir())[3]
    green_before = len(list((web.data / "green").iterdir()))
    visitor = open_tab(browser, web, viewport={"width": 1280, "height": 900})
    with_axe(visitor)
    try:  # anyone, with no token: the photo goes to the review queue, not the dataset
        visitor.open_classify_page()
        visitor.page.get_by_label("Choose photos").set_input_files(photo)
        card = visitor.page.locator(".card[data-state='done']")
        expect(card).to_have_count(1, timeout=60_000)
        predicted = card.locator(".class-name").inner_text()
        visitor.page.get_by_role("button", name="Wrong?").click()
        suggestion = "roses" if predicted != "roses" else "tulips"
        visitor.page.get_by_label(f"Not {predicted}? It is a").select_option(suggestion)
        visitor.page.get_by_role("button", name="Send for review").click()
        expect(card.locator("output")).to_have_text(f"Sent for review as {suggestion}. Thank you.")
        assert axe_in_every_layout(visitor) == []
        assert visitor.problems == []
    finally:
        visitor.page.context.close()
    assert len(list((web.data / "green").iterdir())) == green_before  # not a label yet
    sign_in(tab)
    page = tab.page
    flagged = page.locator("#flags li", has_text=photo.name)
    expect(flagged).to_contain_text(f"Flagged as {suggestion}; version 2 said {predicted}.")
    flagged.locator("img").evaluate("img => img.decode()")
    flagged.get_by_label("File it under").select_option("green")  # the operator decides
    flagged.get_by_role("button", name=f"Accept {photo.name} as the chosen class").click()
    digest = hashlib.sha256(photo.read_bytes()).hexdigest()
    expect(page.locator("#announce")).to_have_text(f"{photo.name} was filed as green/{digest}.jpg.")
    expect(page.locator("#flags li")).to_have_count(0)
    assert axe_in_every_layout(tab) == []  # the queue emptied, the announcement
    assert (web.data / "green" / f"{digest}.jpg").read_bytes() == photo.read_bytes()
    # The loop's end: a retrain trains on it.
    page.get_by_label("Activate", exact=True).select_option("never")
    page.get_by_label("Openvino", exact=True).uncheck()
    page.get_by_role("button", name="Start retraining").click()
    state = page.locator("#job-state")
    _wait_for_new_job(page)
    expect(state).to_have_text(re.compile(r"^succeeded: published version (\d+)"), timeout=300_000)
    number = int(re.search(r"version (\d+)", state.inner_text()).group(1))  # type: ignore[union-attr]
    counts = httpx.get(f"{web.base}/admin/models/{number}", headers=AUTH).json()["metadata"]
    assert counts["dataset"]["counts"]["green"] == green_before + 1
    (web.data / "green" / f"{digest}.jpg").unlink()  # the session's dataset, as it was
