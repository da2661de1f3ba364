"""What scoring one file gives: its probabilities, or why it could not be read."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class Scored:
    path: Path
    version: str  # the model version that computed it
    probabilities: tuple[float, ...]  # in the order of the scorer's classes


@dataclass(frozen=True)
class Unreadable:
    path: Path
    reason: str


Result = Scored | Unreadable


class ScoringError(RuntimeError):
    """Scoring cannot go on: no model to load, or the server is unreachable or answers wrongly."""


class Scorer(Protocol):
    classes: list[str]
    batch_size: int  # files per model call or per request

    def describe(self) -> str:
        """What computes the probabilities, as a person reads it."""
        ...

    def score(self, paths: list[Path]) -> list[Result]:
        """One result per path, in order (one batch: at most ``batch_size`` paths)."""
        ...
