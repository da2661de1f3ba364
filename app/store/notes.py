"""Operators' notes on versions ("trained after the May uploads"): ``<store>/<n>/note.json``,
written atomically. A note is the one file of a published version that changes after publishing;
it is deleted with its version.
"""

from __future__ import annotations

import datetime
import json
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from app.store import atomic
from app.store.versions import ModelStore

NOTE_FILE: Final = "note.json"
MAX_NOTE_CHARS: Final = 500


class InvalidNote(ValueError):
    """A note over MAX_NOTE_CHARS, or with control characters other than newlines (422)."""


@dataclass(frozen=True)
class Note:
    text: str
    updated_at: str


def read_note(version_path: Path) -> Note | None:
    """The version's note; None when it has none (or its file is unreadable)."""
    try:
        record = json.loads((version_path / NOTE_FILE).read_text(encoding="utf-8"))
        return Note(str(record["text"]), str(record["updated_at"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_note(store: ModelStore, number: int, text: str) -> Note | None:
    """Set version ``number``'s note (VersionNotFound when there is no such version); an empty
    text removes it.  Blocking: run it off-loop."""
    cleaned = _checked(text)
    path = store.get(number).path
    if not cleaned:
        (path / NOTE_FILE).unlink(missing_ok=True)
        return None
    note = Note(cleaned, datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"))
    atomic.write_json(path / NOTE_FILE, {"text": note.text, "updated_at": note.updated_at})
    return note


def _checked(text: str) -> str:
    cleaned = text.strip()
    if len(cleaned) > MAX_NOTE_CHARS:
        raise InvalidNote(f"a note is at most {MAX_NOTE_CHARS} characters, not {len(cleaned)}")
    if any(unicodedata.category(c) == "Cc" and c not in "\n\t" for c in cleaned):
        raise InvalidNote("a note holds text and newlines only, no control characters")
    return cleaned
