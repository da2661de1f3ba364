"""Flags: anyone may say "this prediction is wrong, it is a <class>"; an operator decides.

A flag is a photo and a suggestion held in a review queue (``<model_store>/flags/``: the photo
as ``<id>.<ext>`` beside ``<id>.json``), never trusted as a label: only an operator's accept
moves the photo into the dataset folder (through :class:`DatasetWriter`, like any labelled
upload), and a reject deletes it. The queue is bounded (flags, and each photo's size by the
upload limit), a photo already waiting is not queued twice, and each client is rate limited.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import threading
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

from app import imaging
from app.dataset.labelling import EXTENSIONS, Added, DatasetWriter, check_class_name
from app.store import atomic

FLAG_ID_CHARS: Final = 12


class FlaggingOff(RuntimeError):
    """Flagging is turned off on this server (FLOWERS_MAX_FLAGS=0) (409)."""


class FlagNotFound(LookupError):
    """No such flag (404)."""


class QueueFull(RuntimeError):
    """The review queue holds its most flags (503 + Retry-After: an operator must review)."""


class TooManyFlags(RuntimeError):
    """This client sent too many flags lately (429 + Retry-After)."""


class UnknownClass(ValueError):
    """A suggested class the serving model does not know (422)."""


@dataclass(frozen=True)
class Flag:
    id: str
    created_at: str
    suggested: str  # the class the flagger says it is
    predicted: str | None  # what the model said
    model_version: str | None
    filename: str
    image: str  # "<id>.<ext>" in the queue's folder
    sha256: str
    size_bytes: int


class FlagQueue:
    """The review queue in one folder; safe across threads (one lock)."""

    def __init__(self, folder: Path, max_flags: int, max_pixels: int) -> None:
        self.folder = folder
        self.max_flags = max_flags
        self.max_pixels = max_pixels
        self._lock = threading.Lock()

    def add(
        self,
        data: bytes,
        filename: str,
        suggested: str,
        known: list[str],
        predicted: str | None = None,
        model_version: str | None = None,
    ) -> tuple[Flag, bool]:
        """Queue a photo (validated like any upload: imaging.ImageError) with its suggestion;
        (the flag, True) when queued, (the waiting flag, False) when the same photo waits.
        Blocking: run it off-loop."""
        check_class_name(suggested)
        if suggested not in known:
            raise UnknownClass(f"{suggested!r} is not one of the classes: {', '.join(known)}")
        imaging.preprocess(data, max_pixels=self.max_pixels)
        digest = hashlib.sha256(data).hexdigest()
        with self._lock:
            pending = self._all()
            for flag in pending:
                if flag.sha256 == digest:
                    return flag, False
            if len(pending) >= self.max_flags:
                raise QueueFull(
                    f"the review queue is full ({self.max_flags} flags wait for an operator); "
                    "try again later"
                )
            flag_id = uuid.uuid4().hex[:FLAG_ID_CHARS]
            image = f"{flag_id}.{EXTENSIONS[imaging.image_format(data)]}"
            flag = Flag(
                id=flag_id,
                created_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                suggested=suggested,
                predicted=predicted,
                model_version=model_version,
                filename=filename[:200],
                image=image,
                sha256=digest,
                size_bytes=len(data),
            )
            self.folder.mkdir(parents=True, exist_ok=True)
            atomic.write_bytes(self.folder / image, data)
            atomic.write_json(self.folder / f"{flag_id}.json", asdict(flag))
            return flag, True

    def all(self) -> list[Flag]:
        """Every waiting flag, oldest first."""
        with self._lock:
            return self._all()

    def image(self, flag_id: str) -> tuple[Flag, Path]:
        flag = self.get(flag_id)
        return flag, self.folder / flag.image

    def get(self, flag_id: str) -> Flag:
        if not (flag_id.isalnum() and len(flag_id) == FLAG_ID_CHARS):
            raise FlagNotFound(f"no flag {flag_id!r}")
        flag = _read(self.folder / f"{flag_id}.json")
        if flag is None:
            raise FlagNotFound(f"no flag {flag_id!r}")
        return flag

    def accept(
        self, flag_id: str, class_name: str | None, writer: DatasetWriter
    ) -> tuple[Flag, Added]:
        """Store the flag's photo in the dataset under ``class_name`` (the operator's choice;
        None: the suggested class), then take the flag out of the queue."""
        with self._lock:
            flag = self.get(flag_id)
            data = (self.folder / flag.image).read_bytes()
            added = writer.add(class_name or flag.suggested, data)  # checks the name first
            self._remove(flag)
            return flag, added

    def reject(self, flag_id: str) -> Flag:
        with self._lock:
            flag = self.get(flag_id)
            self._remove(flag)
            return flag

    def _remove(self, flag: Flag) -> None:
        (self.folder / f"{flag.id}.json").unlink(missing_ok=True)
        (self.folder / flag.image).unlink(missing_ok=True)

    def _all(self) -> list[Flag]:
        if not self.folder.is_dir():
            return []
        flags = [f for p in self.folder.glob("*.json") if (f := _read(p)) is not None]
        return sorted(flags, key=lambda f: (f.created_at, f.id))


def _read(path: Path) -> Flag | None:
    try:
        return Flag(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


class RateLimiter:
    """At most ``limit`` events per client in any ``window_s``: a sliding window per key, the
    keys themselves bounded (the oldest forgotten first)."""

    def __init__(self, limit: int, window_s: float, max_keys: int = 10_000) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_keys = max_keys
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, key: str, now: float | None = None) -> None:
        """Count one event for ``key``, or raise TooManyFlags saying when to come back."""
        now = time.monotonic() if now is None else now
        with self._lock:
            events = self._events.pop(key, deque())
            while events and events[0] <= now - self.window_s:
                events.popleft()
            if len(events) >= self.limit:
                self._events[key] = events
                wait = events[0] + self.window_s - now
                raise TooManyFlags(
                    f"too many flags from this client: at most {self.limit} every "
                    f"{self.window_s:g} s; try again in {wait:.0f} s"
                )
            events.append(now)
            self._events[key] = events  # most recent last: the first key is the stalest
            while len(self._events) > self.max_keys:
                del self._events[next(iter(self._events))]
