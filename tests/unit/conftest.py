"""Fixtures for the unit tests of more than one package."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """After a test that freezes (``app.inference.memory``), the test process's objects back
    within the collector's reach."""
    yield
    gc.unfreeze()
