"""Which version serves: the one the store's ``active`` pointer names, the one source of truth.

The follower reads the pointer at startup, after a retrain job publishes, and every
``FLOWERS_POLL_INTERVAL_S`` (another replica or the CLI may move it), and hot-swaps to it.
When the pointer is missing or garbled, what serves keeps serving and the problem is logged once
(a warning, until it is fixed); with nothing serving yet, the newest approved version is the
fallback (see ModelStore.fallback).  A version that fails to load is retried when its files
change, when the pointer moves away and back, or after a back-off: never in a tight loop, never
given up on.  Nothing here may stop the polling: every error is logged and the loop goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from app.inference.manager import ModelLoadError, ModelManager, ServingModel
from app.store.versions import StoreError, VersionNotFound

logger = logging.getLogger(__name__)

RETRY_FIRST_S: Final = 30.0
RETRY_MAX_S: Final = 600.0

Signature = tuple[tuple[str, int, int], ...]


@dataclass
class _Failure:
    signature: Signature
    retry_at: float
    delay: float


class StoreFollower:
    def __init__(self, models: ModelManager) -> None:
        self.models = models
        self.store = models.store
        self._failures: dict[int, _Failure] = {}
        self._problem: str | None = None  # the pointer problem last logged
        self._last_wanted: int | None = None

    async def sync(self) -> ServingModel | None:
        """Serve what the pointer names now (ModelLoadError/VersionNotFound if it cannot)."""
        wanted = await asyncio.to_thread(self._wanted)
        current = self.models.current
        if wanted is None or (current is not None and current.number == wanted):
            return current
        if not await asyncio.to_thread(self._may_try, wanted):
            return current
        try:
            loaded = await self.models.switch_to(wanted)
        except (ModelLoadError, VersionNotFound) as error:
            await asyncio.to_thread(self._failed, wanted, error)
            raise
        self._failures.pop(wanted, None)
        return loaded

    async def start(self) -> ServingModel | None:
        """Startup: the pointer's version, else (it cannot load) the fallback; None if nothing."""
        try:
            return await self.sync()
        except (ModelLoadError, VersionNotFound):
            fallback = await asyncio.to_thread(self.store.fallback)
            if fallback is None:
                return None
            logger.warning("serving version %d until the active one can load", fallback.number)
            return await self.models.switch_to(fallback.number)

    async def follow(self, interval_s: float) -> None:
        """Poll the pointer forever (0: never)."""
        if interval_s <= 0:
            return
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.sync()
            except (ModelLoadError, VersionNotFound):
                pass  # logged by _failed; retried later
            except Exception:  # the poller must outlive any surprise
                logger.exception("following the model store failed; polling goes on")

    def _wanted(self) -> int | None:
        """The version that should serve; None: keep what serves (or nothing to serve)."""
        serving = self.models.current
        try:
            number = self.store.active_number()
        except StoreError as error:
            return self._without_pointer(str(error), serving)
        if number is None:
            return self._without_pointer("the store has no active pointer", serving)
        if self._problem is not None:
            logger.warning("the active pointer names version %d again", number)
            self._problem = None
        if number != self._last_wanted:
            self._failures.pop(number, None)  # moved away and back: try again now
            self._last_wanted = number
        return number

    def _without_pointer(self, problem: str, serving: ServingModel | None) -> int | None:
        if serving is not None:
            self._report(problem, f"keeping version {serving.number}")
            return None
        fallback = self.store.fallback()
        if fallback is None:
            return None  # an empty store: the startup says "not ready" once
        self._report(problem, f"serving the newest approved version, {fallback.number}")
        return fallback.number

    def _report(self, problem: str, consequence: str) -> None:
        if problem != self._problem:
            self._problem = problem
            logger.warning("%s: %s until it names a version", problem, consequence)

    def _may_try(self, number: int) -> bool:
        failure = self._failures.get(number)
        if failure is None:
            return True
        return time.monotonic() >= failure.retry_at or self._signature(number) != failure.signature

    def _failed(self, number: int, error: Exception) -> None:
        previous = self._failures.get(number)
        delay = min(previous.delay * 2, RETRY_MAX_S) if previous else RETRY_FIRST_S
        self._failures[number] = _Failure(self._signature(number), time.monotonic() + delay, delay)
        logger.error(
            "the store points at version %d, which cannot serve (retried in %.0fs, or as soon as "
            "its files change): %s",
            number,
            delay,
            error,
        )

    def _signature(self, number: int) -> Signature:
        """What changes when a version's files are repaired: names, sizes, modification times."""
        folder = self.store.root / str(number)
        try:
            files = sorted(p for p in folder.rglob("*") if p.is_file())
            return tuple((str(p.relative_to(folder)), *_stat(p)) for p in files)
        except OSError:
            return ()


def _stat(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns
