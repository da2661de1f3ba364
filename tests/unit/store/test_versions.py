from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from app.store import processes
from app.store.versions import (
    ACTIVE_FILE,
    METADATA_FILE,
    MODEL_FILE,
    ActivateIf,
    ModelStore,
    StoreError,
)


def _archive(path: Path) -> None:
    """A stand-in for a .keras file: a real zip archive (what the store checks), not a model."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "{}")


def _stage(store: ModelStore, folder: Path, classes: list[str] | None = None) -> dict[str, object]:
    _archive(folder / MODEL_FILE)
    return {"classes": classes or ["a", "b"], "metrics": {"val_accuracy": 0.5}}


def _publish(store: ModelStore, classes: list[str] | None = None) -> int:
    with store.staging() as folder:
        return store.publish(folder, _stage(store, folder, classes)).number


def test_versions_are_numbered_from_one(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    assert [_publish(store), _publish(store), _publish(store)] == [1, 2, 3]
    assert [v.number for v in store.versions()] == [1, 2, 3]


def test_published_metadata_names_its_version(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    number = _publish(store, ["x", "y", "z"])
    metadata = json.loads((tmp_path / str(number) / METADATA_FILE).read_text())
    assert metadata["version"] == number
    assert metadata["classes"] == ["x", "y", "z"]


def test_empty_store_has_no_active_version(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "missing")
    assert store.versions() == []
    assert store.active() is None


def test_without_a_pointer_the_latest_version_is_active(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    _publish(store)
    _publish(store)
    active = store.active()
    assert active is not None and active.number == 2
    assert store.active_number() is None


def test_set_active_moves_the_pointer(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    _publish(store)
    _publish(store)
    store.set_active(1)
    assert (tmp_path / ACTIVE_FILE).read_text() == "1\n"
    active = store.active()
    assert active is not None and active.number == 1


def test_set_active_refuses_a_missing_version(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    _publish(store)
    with pytest.raises(StoreError, match="does not exist"):
        store.set_active(7)
    assert store.active_number() is None


def test_a_crash_before_publish_leaves_no_visible_version(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)

    def crash_while_writing() -> None:
        with store.staging() as folder:
            _stage(store, folder)
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated crash"):
        crash_while_writing()
    assert store.versions() == []
    assert [p.name for p in tmp_path.iterdir()] == []


def test_a_killed_publisher_leaves_only_a_hidden_staging_folder(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    staging = tmp_path / ".staging-999-deadbeef"  # what kill -9 mid-write leaves behind
    staging.mkdir()
    (staging / MODEL_FILE).write_bytes(b"half")
    assert store.versions() == []
    assert _publish(store) == 1


def test_stale_staging_folders_are_removed(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    stale = tmp_path / ".staging-1-old"
    stale.mkdir()
    old = time.time() - 7 * 3600
    os.utime(stale, (old, old))
    fresh = tmp_path / ".staging-2-new"
    fresh.mkdir()
    store.remove_stale_staging()
    assert not stale.exists()
    assert fresh.exists()


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda p: (p / MODEL_FILE).unlink(), "model.keras is missing"),
        (lambda p: (p / METADATA_FILE).unlink(), "metadata.json is missing"),
        (lambda p: (p / METADATA_FILE).write_text("{not json"), "unreadable"),
        (lambda p: (p / METADATA_FILE).write_text('{"version": 1}'), "lists no classes"),
        (lambda p: (p / METADATA_FILE).write_text('{"version": 9, "classes": ["a"]}'), "names"),
    ],
)
def test_incomplete_versions_are_skipped_and_explained(
    tmp_path: Path, damage: object, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = ModelStore(tmp_path)
    _publish(store)
    _publish(store)
    damage(tmp_path / "1")  # type: ignore[operator]
    assert [v.number for v in store.versions()] == [2]
    assert reason in caplog.text
    with pytest.raises(StoreError, match=reason.split()[0]):
        store.get(1)


def test_publish_skips_numbers_taken_by_another_publisher(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ModelStore(tmp_path)
    with store.staging() as folder:
        metadata = _stage(store, folder)
        taken = tmp_path / "1"  # another publisher renamed its version in after we listed
        taken.mkdir()
        (taken / "x").write_text("theirs")
        listings = iter([[], [1]])
        monkeypatch.setattr(store, "_version_numbers", lambda: next(listings))
        assert store.publish(folder, metadata).number == 2
    assert (taken / "x").read_text() == "theirs"


def test_a_garbled_active_pointer_is_an_error(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    _publish(store)
    (tmp_path / ACTIVE_FILE).write_text("banana")
    with pytest.raises(StoreError, match="banana"):
        store.active()


def test_non_version_folders_are_ignored(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    _publish(store)
    for name in (".cache", "jobs", "007", "tmp"):
        (tmp_path / name).mkdir()
    assert [v.number for v in store.versions()] == [1]


def test_staging_of_a_dead_local_publisher_is_removed_at_once(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    mine = tmp_path / f".staging-{processes.HOST}-{dead.pid}-abcdef12"
    alive = tmp_path / f".staging-{processes.HOST}-{os.getpid()}-abcdef12"
    elsewhere = tmp_path / f".staging-otherhost-{dead.pid}-abcdef12"
    for folder in (mine, alive, elsewhere):
        folder.mkdir()
    store.remove_stale_staging()
    assert not mine.exists()
    assert alive.exists() and elsewhere.exists()


@pytest.mark.parametrize(
    "garbled", [b"\xff\xfe", b"9" * 5000, "٣".encode(), b"0", b"-1", b"", b"2 3", b"1.0"]
)
def test_a_garbled_pointer_is_a_store_error_and_nothing_else(
    tmp_path: Path, garbled: bytes
) -> None:
    store = ModelStore(tmp_path)
    _publish(store)
    (tmp_path / ACTIVE_FILE).write_bytes(garbled)
    with pytest.raises(StoreError, match="not a version number"):
        store.active_number()


def test_without_a_pointer_an_unapproved_version_is_never_the_fallback(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    _publish(store)
    with store.staging() as folder:
        metadata = {**_stage(store, folder), "activation": {"policy": "never", "activated": False}}
        store.publish(folder, metadata)
    assert store.active_number() is None
    assert store.fallback() is not None and store.fallback().number == 1  # type: ignore[union-attr]
    assert store.active().number == 1  # type: ignore[union-attr]


def test_an_empty_model_file_makes_the_version_incomplete(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    _publish(store)
    _publish(store)
    (tmp_path / "2" / MODEL_FILE).write_bytes(b"")
    with pytest.raises(StoreError, match="empty or not a Keras archive"):
        store.get(2)
    assert [v.number for v in store.versions()] == [1]
    with pytest.raises(StoreError, match="empty or not a Keras archive"):
        store.set_active(2)


def test_a_publisher_activates_only_if_nobody_moved_the_pointer(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    store.set_active(_publish(store))
    _publish(store)
    seen = store.active_number()
    with store.staging() as folder:
        third = store.publish(folder, _stage(store, folder), ActivateIf(seen))
    assert store.active_number() == third.number == 3
    assert third.metadata.activation.activated is not False
    seen = store.active_number()
    store.set_active(1)  # an operator rolls back while the next version trains
    with store.staging() as folder:
        metadata = {**_stage(store, folder), "activation": {"policy": "always", "activated": True}}
        fourth = store.publish(folder, metadata, ActivateIf(seen))
    assert store.active_number() == 1
    assert fourth.metadata.activation.activated is False
    assert "changed from 3 to 1" in (fourth.metadata.activation.reason or "")


def test_the_pointer_is_written_under_the_store_lock(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    store.set_active(_publish(store))
    _publish(store)
    script = (
        "import sys, time; from pathlib import Path; from app.store.filelock import exclusive\n"
        "with exclusive(Path(sys.argv[1])):\n"
        "    print('held', flush=True); time.sleep(1.5)"
    )
    command = [sys.executable, "-c", script, str(tmp_path / ".lock")]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as holder:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        store.set_active(2)
        waited = time.monotonic() - started
    assert waited > 0.5 and store.active_number() == 2
