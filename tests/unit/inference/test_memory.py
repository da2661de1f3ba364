"""A server's memory: the startup objects kept out of full collections, and the free pages of a
large, freed body given back to the system."""

from __future__ import annotations

import asyncio
import ctypes.util
import gc
import platform
import threading
import weakref
from pathlib import Path

import pytest

from app.inference import memory


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)
def test_trim_gives_back_the_pages_of_many_small_freed_buffers() -> None:
    """Like gRPC's slices of a large message: 64 MiB in 16 KiB blocks, freed apart from one
    block at the top of the heap that keeps glibc from shrinking it by itself."""
    assert ctypes.util.find_library("c")
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = [libc.malloc(16 * 1024) for _ in range(4096)]
    for block in blocks:
        ctypes.memset(block, 1, 16 * 1024)  # touched: resident
    pinned = libc.malloc(64)
    for block in blocks:
        libc.free(block)
    before = _rss_mib()
    memory.trim()
    after = _rss_mib()
    libc.free(pinned)
    assert before - after > 32  # most of the 64 MiB went back


def test_trim_soon_trims_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    trimmed_in: list[int] = []
    monkeypatch.setattr(memory, "trim", lambda: trimmed_in.append(threading.get_ident()))

    async def scenario() -> None:
        memory.trim_soon()
        for _ in range(100):
            if trimmed_in:
                break
            await asyncio.sleep(0.01)

    asyncio.run(scenario())
    assert trimmed_in and trimmed_in[0] != threading.get_ident()


class _Node:
    def __init__(self) -> None:
        self.itself = self  # a cycle: only the collector frees it


def _walked_by_full_collections(thing: object) -> bool:
    return any(candidate is thing for candidate in gc.get_objects())  # generations 0 to 2


def test_the_objects_alive_at_startup_leave_the_collectors_full_passes(unfrozen: None) -> None:
    modules_like = [[index] for index in range(1000)]
    assert _walked_by_full_collections(modules_like)
    frozen = memory.freeze_startup_objects()
    assert frozen == gc.get_freeze_count() >= 1000
    assert not _walked_by_full_collections(modules_like)
    assert not any(_walked_by_full_collections(item) for item in modules_like[:10])


def test_garbage_left_by_startup_is_collected_not_frozen(unfrozen: None) -> None:
    garbage = weakref.ref(_Node())
    assert garbage() is not None  # a cycle, not freed by reference counting
    memory.freeze_startup_objects()
    assert garbage() is None


def test_what_loads_after_it_stays_collectable(unfrozen: None) -> None:
    """A model's objects: a hot swap must be able to free the version it replaced."""
    memory.freeze_startup_objects()
    model = _Node()
    assert _walked_by_full_collections(model)
    replaced = weakref.ref(model)
    del model
    gc.collect()
    assert replaced() is None


def test_startup_builds_with_the_collector_off_then_freezes_what_it_built(unfrozen: None) -> None:
    with memory.startup():
        assert not gc.isenabled()
        built = [[index] for index in range(100)]
    assert gc.isenabled()
    assert not _walked_by_full_collections(built)


def test_a_startup_that_fails_turns_the_collector_back_on_and_freezes_nothing(
    unfrozen: None,
) -> None:
    frozen_before = gc.get_freeze_count()
    with pytest.raises(ImportError), memory.startup():
        raise ImportError("no module named tensorflow")
    assert gc.isenabled()
    assert gc.get_freeze_count() == frozen_before
