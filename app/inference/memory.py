"""A long-running server's memory: the collector kept off the startup objects, and memory given
back to the system after a large request.

Importing TensorFlow, Keras and their kin leaves about 400,000 objects that live as long as the
process.  Each full collection walked all of them, stopping every Python thread for about 200 ms
(one batch of 16 answered 190 ms late, 0.5 s into the first burst of traffic on a 2-core Xeon);
``gc.freeze`` after the imports takes them out of the collector's reach for good, and the
collector stays off while they are made.

glibc keeps the pages a large body's many small buffers used (gRPC reads a message as slices),
in whichever thread's arena allocated them: without a trim, 16 messages of 150 MiB left a
server 2.8 GB larger than before, read one at a time.  ``malloc_trim`` hands the free pages of
every arena back.  Elsewhere than glibc, nothing is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import gc
import logging
from collections.abc import Callable, Iterator
from typing import Final

logger = logging.getLogger(__name__)

LARGE_BYTES: Final = 8 * 1024 * 1024  # a request body from which trimming after it is worth it


def _load_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc
        return None


_MALLOC_TRIM = _load_trim()


def trim() -> None:
    """Hand free heap pages back to the system (glibc), now."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def trim_soon() -> None:
    """Trim from a worker thread (a heap of gigabytes takes milliseconds to walk)."""
    asyncio.get_running_loop().run_in_executor(None, trim)


@contextlib.contextmanager
def startup() -> Iterator[None]:
    """Import and build with the collector off (its passes over the growing heap took 0.5 of the
    3 s that importing TensorFlow and the app takes), then freeze what is alive
    (:func:`freeze_startup_objects`) and turn it back on, also when the block fails."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        freeze_startup_objects()
    finally:
        if was_enabled:
            gc.enable()


def freeze_startup_objects() -> int:
    """Collect, then move every object alive now out of the collector's reach (``gc.freeze``);
    how many that was.  Call it once the imports are done and before a model loads: a model's
    objects must stay collectable, or a hot swap could never free the one it replaced."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    logger.info("%d startup objects kept out of the garbage collector's full passes", frozen)
    return frozen
