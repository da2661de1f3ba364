"""Admission by memory on its own: declared sizes reserved up front, undeclared bodies counted as
they arrive, and every byte given back when the request ends, however it ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from app.inference.admission import Admission, UploadBudgetFull

MIB = 1024 * 1024


async def _chunks(*sizes: int) -> AsyncIterator[bytes]:
    for size in sizes:
        yield b"x" * size


async def _drain(body: AsyncIterator[bytes]) -> int:
    return sum([len(chunk) async for chunk in body])


def test_a_declared_size_is_reserved_for_as_long_as_the_request_runs() -> None:
    admission = Admission(10 * MIB)
    with admission.admit(4 * MIB), admission.admit(6 * MIB):
        assert admission.in_flight == 10 * MIB
        with pytest.raises(UploadBudgetFull, match="10 MiB of uploads in flight"):
            admission.admit(1).__enter__()
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

    with admission.admit(MIB):  # another request holds a share meanwhile
        asyncio.run(scenario())
        assert admission.in_flight == MIB
    assert admission.in_flight == 0
