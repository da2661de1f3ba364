"""Admission by memory on its own: a declared size that does not fit is refused before the body
is read, what arrives is counted as it passes, and every byte is given back when the request
ends, however it ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from app.inference.admission import PROBE_BYTES, Admission, UploadBudgetFull

MIB = 1024 * 1024


async def _chunks(*sizes: int) -> AsyncIterator[bytes]:
    for size in sizes:
        yield b"x" * size


async def _drain(body: AsyncIterator[bytes]) -> int:
    return sum([len(chunk) async for chunk in body])


def test_a_declared_size_is_held_only_once_its_body_has_sent_the_probe() -> None:
    """Declaring costs nothing: a body that sends nothing holds at most the probe, one that sends
    more than the probe earns its whole declared size (or is refused then)."""
    admission = Admission(10 * MIB)

    async def scenario() -> None:
        with admission.admit(8 * MIB) as slow, admission.admit(8 * MIB) as fast:
            assert admission.in_flight == 2 * PROBE_BYTES  # two declared 16 MiB between them
            await _drain(fast.counted(_chunks(MIB, MIB)))
            assert admission.in_flight == PROBE_BYTES + 8 * MIB  # fast earned its 8 MiB
            with pytest.raises(UploadBudgetFull):  # slow sends more: 8 more MiB do not fit
                await _drain(slow.counted(_chunks(2 * MIB)))
            assert admission.in_flight == PROBE_BYTES + 8 * MIB

    asyncio.run(scenario())
    assert admission.in_flight == 0


def test_a_declared_size_that_does_not_fit_is_refused_before_reading() -> None:
    admission = Admission(10 * MIB)
    with admission.admit(None, held_bytes=4 * MIB):
        with pytest.raises(UploadBudgetFull, match="4 MiB of uploads in flight"):
            admission.admit(7 * MIB).__enter__()
        with admission.admit(6 * MIB):
            assert admission.in_flight == 4 * MIB + PROBE_BYTES


def test_a_body_already_in_memory_is_held_from_the_start() -> None:
    admission = Admission(10 * MIB)
    with admission.admit(None, held_bytes=6 * MIB):
        assert admission.in_flight == 6 * MIB
        with pytest.raises(UploadBudgetFull):
            admission.admit(None, held_bytes=5 * MIB).__enter__()
    assert admission.in_flight == 0


def test_an_undeclared_body_is_counted_as_its_chunks_pass() -> None:
    admission = Admission(10 * MIB)

    async def scenario() -> None:
        with admission.admit(None) as ticket:
            assert await _drain(ticket.counted(_chunks(MIB, 2 * MIB))) == 3 * MIB
            assert admission.in_flight == 3 * MIB

    asyncio.run(scenario())
    assert admission.in_flight == 0


def test_a_body_that_outgrows_its_declared_size_reserves_the_difference() -> None:
    admission = Admission(4 * MIB)

    async def scenario() -> None:
        with admission.admit(MIB) as ticket:
            await _drain(ticket.counted(_chunks(MIB, MIB)))
            assert admission.in_flight == 2 * MIB

    asyncio.run(scenario())


def test_a_body_is_refused_at_the_chunk_that_no_longer_fits_and_its_bytes_are_returned() -> None:
    admission = Admission(4 * MIB)

    async def scenario() -> None:
        with admission.admit(None) as ticket, pytest.raises(UploadBudgetFull):
            await _drain(ticket.counted(_chunks(2 * MIB, 2 * MIB, 1)))

    with admission.admit(None, held_bytes=MIB):  # another request holds a share meanwhile
        asyncio.run(scenario())
        assert admission.in_flight == MIB
    assert admission.in_flight == 0


def test_a_message_of_unknown_size_waits_for_room_then_keeps_what_it_takes() -> None:
    """gRPC's way in: wait until the largest message fits, hold it while the message is read,
    then keep only the message's size; the next waiter is woken by what is given back."""
    admission = Admission(10 * MIB)
    order: list[str] = []

    async def reader(name: str, size: int) -> None:
        await admission.wait_for_room(8 * MIB, timeout_s=5)
        with admission.admit(None, held_bytes=8 * MIB) as ticket:
            order.append(f"{name} reads")
            await asyncio.sleep(0.05)  # the message arriving
            ticket.shrink_to(size)
            assert admission.in_flight <= 10 * MIB
            order.append(f"{name} keeps {size // MIB}")
            await asyncio.sleep(0.05)  # the images decoded and classified

    async def scenario() -> None:
        await asyncio.gather(reader("first", 1 * MIB), reader("second", 1 * MIB))
        assert admission.in_flight == 0

    asyncio.run(scenario())
    # the second is let in once the first holds 1 MiB, not 8: before the first has ended
    assert order == ["first reads", "first keeps 1", "second reads", "second keeps 1"]


def test_waiting_for_room_gives_up_at_its_timeout_with_the_budgets_state() -> None:
    admission = Admission(10 * MIB)

    async def scenario() -> None:
        full = pytest.raises(UploadBudgetFull, match="6 MiB of uploads in flight")
        with admission.admit(None, held_bytes=6 * MIB), full:
            await admission.wait_for_room(8 * MIB, timeout_s=0.05)
        await admission.wait_for_room(8 * MIB, timeout_s=0.05)  # room once given back

    asyncio.run(scenario())
