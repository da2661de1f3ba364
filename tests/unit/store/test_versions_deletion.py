"""Deleting versions and retention: the active version is never deleted, pruning keeps the newest
N plus the active one, and a deletion killed half-way leaves every remaining version whole."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.ml import network
from app.store.versions import (
    ACTIVE_FILE,
    DELETING_PREFIX,
    METADATA_FILE,
    ModelStore,
    VersionInUse,
    VersionNotFound,
)
from tests.conftest import REPO
from tests.unit.store.test_versions import _publish


def _store_with(count: int, root: Path) -> ModelStore:
    store = ModelStore(root)
    for _ in range(count):
        _publish(store)
    return store


def _numbers(store: ModelStore) -> list[int]:
    return [version.number for version in store.versions()]


def test_deleting_a_version_removes_its_folder(tmp_path: Path) -> None:
    store = _store_with(3, tmp_path)
    store.set_active(3)
    store.delete(1)
    assert _numbers(store) == [2, 3]
    assert sorted(entry.name for entry in tmp_path.iterdir()) == [".lock", "2", "3", ACTIVE_FILE]


def test_the_active_version_cannot_be_deleted(tmp_path: Path) -> None:
    store = _store_with(2, tmp_path)
    store.set_active(1)
    with pytest.raises(VersionInUse, match="version 1 is the active version"):
        store.delete(1)
    assert _numbers(store) == [1, 2]


def test_a_version_in_use_cannot_be_deleted(tmp_path: Path) -> None:
    store = _store_with(3, tmp_path)
    store.set_active(3)
    with pytest.raises(VersionInUse, match="version 2 is in use"):
        store.delete(2, in_use={2})
    assert _numbers(store) == [1, 2, 3]


def test_without_a_pointer_the_version_that_serves_instead_is_kept(tmp_path: Path) -> None:
    store = _store_with(2, tmp_path)  # no pointer: the newest approved version serves
    with pytest.raises(VersionInUse):
        store.delete(2)
    store.delete(1)
    assert _numbers(store) == [2]


def test_deleting_a_missing_version_is_not_found(tmp_path: Path) -> None:
    store = _store_with(1, tmp_path)
    with pytest.raises(VersionNotFound, match="version 9 does not exist"):
        store.delete(9)


def test_an_incomplete_version_can_be_deleted(tmp_path: Path) -> None:
    store = _store_with(2, tmp_path)
    store.set_active(2)
    (tmp_path / "1" / METADATA_FILE).unlink()
    store.delete(1)
    assert not (tmp_path / "1").exists()


def test_pruning_keeps_the_newest_n_and_the_active_one(tmp_path: Path) -> None:
    store = _store_with(6, tmp_path)
    store.set_active(2)
    assert store.prune(3) == [1, 3]
    assert _numbers(store) == [2, 4, 5, 6]
    assert store.active_number() == 2


def test_pruning_keeps_versions_in_use(tmp_path: Path) -> None:
    store = _store_with(5, tmp_path)
    store.set_active(5)
    assert store.prune(1, in_use={3}) == [1, 2, 4]
    assert _numbers(store) == [3, 5]


def test_keep_zero_keeps_every_version(tmp_path: Path) -> None:
    store = _store_with(4, tmp_path)
    assert store.prune(0) == []
    assert _numbers(store) == [1, 2, 3, 4]


def test_pruning_leaves_incomplete_folders_for_an_operator(tmp_path: Path) -> None:
    store = _store_with(4, tmp_path)
    store.set_active(4)
    (tmp_path / "2" / METADATA_FILE).write_text("{broken")
    assert store.prune(1) == [1, 3]
    assert (tmp_path / "2").is_dir()


def test_hidden_deleting_folders_are_not_versions_and_are_removed_later(tmp_path: Path) -> None:
    store = _store_with(2, tmp_path)
    leftover = tmp_path / f"{DELETING_PREFIX}1-abcdef12"  # what a killed deletion leaves
    os.rename(tmp_path / "1", leftover)
    assert _numbers(store) == [2]
    store.prune(0)
    assert not leftover.exists()


def test_publishing_finishes_a_killed_deletion(tmp_path: Path) -> None:
    store = _store_with(1, tmp_path)
    leftover = tmp_path / f"{DELETING_PREFIX}7-abcdef12"
    leftover.mkdir()
    (leftover / "model.keras").write_bytes(b"half-deleted")
    _publish(store)
    assert not leftover.exists()


def test_size_is_counted_even_while_files_disappear(tmp_path: Path) -> None:
    store = _store_with(1, tmp_path)
    version = store.versions()[0]
    total = store.size_bytes(version)
    assert total == sum(p.stat().st_size for p in version.path.rglob("*") if p.is_file())
    (version.path / METADATA_FILE).unlink()
    assert 0 < store.size_bytes(version) < total


# Ballast files per version: enough that removing a version takes milliseconds, so kills land in
# the middle of a deletion, not only before or after it.
BALLAST_FILES = 1500
KILL_DELAYS_S = [0.0, 0.002, 0.01, 0.03]
PRUNE_CHILD = (
    "import sys; from app.store.versions import ModelStore; ModelStore(sys.argv[1]).prune(2)"
)


def _add_ballast(folder: Path) -> None:
    ballast = folder / "ballast"
    ballast.mkdir()
    for index in range(BALLAST_FILES):
        (ballast / f"{index}.bin").write_bytes(b"x" * 64)


def _kill_once_deleting(store: ModelStore, delay_s: float) -> str:
    child = subprocess.Popen([sys.executable, "-c", PRUNE_CHILD, str(store.root)], cwd=REPO)
    deadline = time.monotonic() + 60
    while not any(name.startswith(DELETING_PREFIX) for name in os.listdir(store.root)):
        if child.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"the pruning child never started deleting ({child.returncode})")
    time.sleep(delay_s)
    child.send_signal(signal.SIGKILL)
    child.wait()
    leftovers = [name for name in os.listdir(store.root) if name.startswith(DELETING_PREFIX)]
    return f"{delay_s * 1000:.0f} ms: {len(leftovers)} hidden folders left"


@pytest.mark.slow
def test_a_prune_killed_at_any_point_leaves_every_remaining_version_loadable(
    tmp_path: Path,
) -> None:
    from tests.support.modelfactory import publish_tiny

    store = ModelStore(tmp_path / "store")
    publish_tiny(store, ["a", "b"], seed=0)
    reports = []
    for round_number, delay in enumerate(KILL_DELAYS_S):
        for seed in range(3):
            version = publish_tiny(store, ["a", "b"], seed=10 * round_number + seed, activate=False)
            _add_ballast(version.path)
        reports.append(_kill_once_deleting(store, delay))
        numbered = sorted(int(p.name) for p in store.root.iterdir() if p.name.isdecimal())
        assert numbered == _numbers(store), "a numbered folder is incomplete"
        assert 1 in numbered, "the active version was deleted"
        for number in numbered:
            assert network.load(store.get(number).model_path) is not None
        store.remove_deleted()  # what the next prune does first; each round starts clean
    print("\nprune killed with kill -9:", "; ".join(reports))
    newest = _numbers(store)[-1]
    store.prune(2)  # also finishes what the killed children left
    assert _numbers(store) == [1, newest - 1, newest]
    assert not [p for p in store.root.iterdir() if p.name.startswith(DELETING_PREFIX)]
