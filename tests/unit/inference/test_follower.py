"""The store follower on its own: it serves what the active pointer names, survives a garbled
pointer, falls back when nothing serves, and retries a broken version only when that may help."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app.inference.follower import StoreFollower
from app.inference.manager import ModelLoadError, ModelManager
from app.store.versions import ACTIVE_FILE, ModelStore
from tests.support.fakes import FakeLoader, fake_version

CLASSES = ["a", "b"]


def _follower(tmp_path: Path, versions: int = 2, broken: tuple[int, ...] = ()) -> StoreFollower:
    store = ModelStore(tmp_path / "store")
    for _ in range(versions):
        fake_version(store, CLASSES)
    return StoreFollower(ModelManager(store, FakeLoader(broken)))


def _loaded(follower: StoreFollower) -> list[int]:
    loader = follower.models.loader
    assert isinstance(loader, FakeLoader)
    return loader.loaded


def test_it_serves_what_the_pointer_names_and_follows_it(tmp_path: Path) -> None:
    follower = _follower(tmp_path)

    async def scenario() -> None:
        assert (await follower.start()).number == 2  # type: ignore[union-attr]
        follower.store.set_active(1)
        assert (await follower.sync()).number == 1  # type: ignore[union-attr]
        await follower.sync()  # nothing moved: nothing loads

    asyncio.run(scenario())
    assert _loaded(follower) == [2, 1]


def test_an_empty_store_serves_nothing(tmp_path: Path) -> None:
    follower = _follower(tmp_path, versions=0)
    assert asyncio.run(follower.start()) is None


def test_a_broken_active_version_at_startup_falls_back_to_the_newest_approved_one(
    tmp_path: Path,
) -> None:
    follower = _follower(tmp_path, versions=2, broken=(1,))
    follower.store.set_active(1)  # an operator rolled back to a version that no longer loads
    served = asyncio.run(follower.start())
    assert served is not None and served.number == 2
    assert follower.store.active_number() == 1  # the pointer is the operator's: left alone


def test_a_garbled_pointer_keeps_what_serves_and_is_reported_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    follower = _follower(tmp_path)

    async def scenario() -> None:
        await follower.start()
        (follower.store.root / ACTIVE_FILE).write_bytes(b"\xff garbage")
        for _ in range(5):
            assert (await follower.sync()).number == 2  # type: ignore[union-attr]
        follower.store.set_active(1)
        assert (await follower.sync()).number == 1  # type: ignore[union-attr]

    asyncio.run(scenario())
    reports = [r for r in caplog.records if "not a version number" in r.getMessage()]
    assert len(reports) == 1


def test_with_no_pointer_and_nothing_serving_the_newest_approved_version_serves(
    tmp_path: Path,
) -> None:
    follower = _follower(tmp_path)
    (follower.store.root / ACTIVE_FILE).unlink()
    assert asyncio.run(follower.sync()).number == 2  # type: ignore[union-attr]


def test_a_version_that_cannot_load_is_not_retried_until_its_files_change(
    tmp_path: Path,
) -> None:
    follower = _follower(tmp_path, broken=(2,))
    follower.store.set_active(1)

    async def scenario() -> None:
        await follower.start()
        follower.store.set_active(2)
        with pytest.raises(ModelLoadError):
            await follower.sync()
        await follower.sync()  # backing off: no new attempt
        assert follower.models.ready_model().number == 1
        loader = follower.models.loader
        assert isinstance(loader, FakeLoader)
        loader.broken.clear()
        (follower.store.root / "2" / "repaired.txt").write_text("a file changed")
        assert (await follower.sync()).number == 2  # type: ignore[union-attr]

    asyncio.run(scenario())
    assert _loaded(follower) == [1, 2]


def test_a_pointer_moved_away_and_back_retries_at_once(tmp_path: Path) -> None:
    follower = _follower(tmp_path, broken=(2,))

    async def scenario() -> None:
        with pytest.raises(ModelLoadError):
            await follower.sync()
        follower.store.set_active(1)
        await follower.sync()
        follower.store.set_active(2)
        with pytest.raises(ModelLoadError):  # tried again, not skipped for the back-off
            await follower.sync()

    asyncio.run(scenario())
