"""The trainer's progress events: the protocol between ``python -m app.train --progress-file F``
(which appends them) and the server's retrain jobs (which read them back while it runs).

One JSON object per line: ``{"event": <kind>, "time": <unix seconds>, ...fields}``.  A line is
appended whole, so a reader sees complete lines or waits for the rest of the last one.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError


class EventKind(StrEnum):
    PHASE = "phase"  # phase, detail: a new phase started
    PROGRESS = "progress"  # phase, done, total, fraction
    EPOCH = "epoch"  # phase, epoch, epochs, metrics
    SUCCEEDED = "succeeded"  # the fields of Published
    FAILED = "failed"  # error


class Published(BaseModel):
    """What a successful run published (the fields of the ``succeeded`` event)."""

    version: int
    activated: bool
    reason: str
    val_accuracy: float | None = None


@dataclass(frozen=True)
class Event:
    kind: EventKind
    fields: dict[str, Any]
    time: float | None = None  # when the trainer wrote it (unix seconds)

    def published(self) -> Published | None:
        """The outcome carried by a ``succeeded`` event (None if it is malformed)."""
        try:
            return Published.model_validate(self.fields)
        except ValidationError:
            return None


def append(path: Path, kind: EventKind, **fields: Any) -> None:
    """Append one event line to ``path``."""
    record = {"event": kind.value, "time": time.time(), **fields}
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")


class EventReader:
    """Reads an event file incrementally: each call returns the events completed since the last."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def read_new(self) -> list[Event]:
        """Blocking file I/O: call it off the event loop."""
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        complete = data[: data.rfind(b"\n") + 1]  # a half-written last line waits for later
        self.offset += len(complete)
        return [event for line in complete.splitlines() if (event := _parse(line)) is not None]


def _parse(line: bytes) -> Event | None:
    with contextlib.suppress(ValueError):
        record = json.loads(line)
        if isinstance(record, dict):
            kind = EventKind(record.pop("event", None))
            at = record.pop("time", None)
            return Event(kind, record, at if isinstance(at, int | float) else None)
    return None
