"""Giving memory back: the free pages of a large, freed body go back to the system."""

from __future__ import annotations

import asyncio
import ctypes.util
import platform
import threading
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
