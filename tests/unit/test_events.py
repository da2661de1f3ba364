"""The trainer's event protocol: appended whole lines, read back incrementally and typed."""

from __future__ import annotations

from pathlib import Path

from app.events import EventKind, EventReader, Published, append


def test_events_are_read_once_each_and_typed(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    reader = EventReader(path)
    assert reader.read_new() == []  # no file yet
    append(path, EventKind.PHASE, phase="features", detail="computing")
    append(path, EventKind.EPOCH, phase="head", epoch=1, epochs=2, metrics={"accuracy": 0.5})
    first = reader.read_new()
    assert [event.kind for event in first] == [EventKind.PHASE, EventKind.EPOCH]
    assert first[1].fields == {
        "phase": "head",
        "epoch": 1,
        "epochs": 2,
        "metrics": {"accuracy": 0.5},
    }
    assert reader.read_new() == []


def test_a_half_written_line_waits_and_garbage_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'not json\n{"event": "no-such-kind"}\n[1, 2]\n{"event": "succ')
    reader = EventReader(path)
    assert reader.read_new() == []
    with path.open("ab") as out:
        out.write(b'eeded", "version": 3, "activated": false, "reason": "activate=never"}\n')
    (event,) = reader.read_new()
    assert event.kind is EventKind.SUCCEEDED
    assert event.published() == Published(version=3, activated=False, reason="activate=never")


def test_a_malformed_success_event_has_no_outcome(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    append(path, EventKind.SUCCEEDED, version="three")
    (event,) = EventReader(path).read_new()
    assert event.published() is None
