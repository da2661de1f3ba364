"""Each test's app over a store of tiny real versions (one per class list)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.store.versions import ModelStore
from tests.support.apps import FLOWERS, make_settings, running
from tests.support.modelfactory import store_with_versions


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return store_with_versions(tmp_path / "store", FLOWERS)


@pytest.fixture
def client(store: ModelStore) -> Iterator[TestClient]:
    with running(make_settings(store.root)) as client:
        yield client
