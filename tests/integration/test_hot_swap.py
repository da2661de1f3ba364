"""Switching versions back and forth under continuous load: not one request may fail."""

from __future__ import annotations

import threading
import time
from collections import Counter

from fastapi.testclient import TestClient

from app.store.versions import ModelStore
from tests.support import imagefactory as make
from tests.support.apps import FLOWERS, make_settings, running
from tests.support.modelfactory import publish_tiny

TOKEN = "test-admin-58a08e126ae498b216740430"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CLIENTS = 8
SWITCHES = 6


def test_hot_swaps_under_load_fail_no_request(store: ModelStore) -> None:
    publish_tiny(store, FLOWERS, seed=11, activate=False)
    payloads = [make.jpeg(seed=i) for i in range(CLIENTS)]
    outcomes: Counter[tuple[int, str]] = Counter()
    lock = threading.Lock()
    stop = threading.Event()

    def hammer(client: TestClient, index: int) -> None:
        while not stop.is_set():
            files = [
                ("files", ("a.jpg", payloads[index], "image/jpeg")),
                ("files", ("b.jpg", payloads[0], "image/jpeg")),
            ]
            response = client.post("/predict", files=files)
            version = (
                response.json().get("model_version", "?")
                if response.status_code == 200
                else response.text
            )
            with lock:
                outcomes[(response.status_code, version)] += 1

    settings = make_settings(store.root, admin_token=TOKEN, max_batch_delay_ms=3)
    with running(settings) as client:
        threads = [threading.Thread(target=hammer, args=(client, i)) for i in range(CLIENTS)]
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        for switch in range(SWITCHES):
            target = 2 if switch % 2 == 0 else 1
            assert client.post(f"/admin/models/{target}/activate", headers=AUTH).status_code == 200
            time.sleep(0.4)
        stop.set()
        for thread in threads:
            thread.join()
    total = sum(outcomes.values())
    failures = {k: v for k, v in outcomes.items() if k[0] != 200}
    print(
        f"\nhot swap under load: {total} requests, {SWITCHES} switches, "
        f"failures: {failures}, by version: {dict(outcomes)}"
    )
    assert failures == {}
    assert {version for _, version in outcomes} == {"1", "2"}
    assert total > 50
