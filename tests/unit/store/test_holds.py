"""Holds: a version that any process sharing the store loads or serves cannot be deleted, by an
operator or by retention; holds of dead processes, and stale ones of other hosts, do not count."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.store import processes
from app.store.holds import LEASE_S
from app.store.versions import ModelStore, VersionInUse, VersionNotFound
from tests.support.fakes import fake_version


def _store(tmp_path: Path, versions: int = 3) -> ModelStore:
    store = ModelStore(tmp_path / "store")
    for _ in range(versions):
        fake_version(store, ["a", "b"], activate=False)
    store.set_active(versions)
    return store


def test_a_held_version_cannot_be_deleted_until_it_is_released(tmp_path: Path) -> None:
    store = _store(tmp_path)
    hold = store.hold(1)
    with pytest.raises(VersionInUse, match="being loaded or activated"):
        store.delete(1)
    store.holds.release(hold)
    store.delete(1)
    assert [v.number for v in store.versions()] == [2, 3]


def test_retention_keeps_held_versions(tmp_path: Path) -> None:
    store = _store(tmp_path, versions=4)
    store.hold(1)
    assert store.prune(keep=1) == [2, 3]  # 4 is the newest (and active), 1 is held
    assert [v.number for v in store.versions()] == [1, 4]


def test_holding_a_version_that_is_not_there_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(VersionNotFound):
        _store(tmp_path).hold(9)


def test_a_hold_of_a_process_that_died_does_not_count_and_is_removed(tmp_path: Path) -> None:
    store = _store(tmp_path)
    command = [sys.executable, "-c", "import os; print(os.getpid())"]
    dead = int(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    stale = store.holds.folder / f"1.{processes.HOST}-{dead}-abcd1234"
    store.holds.folder.mkdir(exist_ok=True)
    stale.touch()
    assert store.holds.held() == set()
    assert not stale.exists()
    store.delete(1)


def test_a_hold_of_another_host_counts_for_its_lease(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.holds.folder.mkdir(exist_ok=True)
    remote = store.holds.folder / "2.otherhost-42-abcd1234"
    remote.touch()
    with pytest.raises(VersionInUse):
        store.delete(2)
    old = time.time() - LEASE_S - 1
    os.utime(remote, (old, old))  # its holder stopped renewing it
    store.delete(2)


def test_renewing_keeps_a_hold_fresh(tmp_path: Path) -> None:
    store = _store(tmp_path)
    hold = store.hold(1)
    old = time.time() - LEASE_S / 2
    os.utime(hold, (old, old))
    store.holds.renew(hold)
    assert hold.stat().st_mtime > time.time() - 5
