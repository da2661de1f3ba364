"""Admission by memory: request bodies in flight against a budget (FLOWERS_MAX_INFLIGHT_BYTES).

The batch queue's limit counts images already decoded and queued; it says nothing of the bodies
still uploading, and 80 clients each sending 16 five-megabyte PNGs took a server from 1.4 to
4.7 GB before any of them was refused.  Here a request that declares its size (Content-Length)
is admitted only if that size fits in what the budget has left, and is refused at once
otherwise (503 + Retry-After), before a byte of its body is read; a body of undeclared size is
counted as it arrives and refused when it no longer fits.  Everything runs on the event loop.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator

from app.inference.batching import Overloaded

_MIB = 1024 * 1024

# What a body's chunks pass through on their way in: each counted against the budget.
Meter = Callable[[AsyncIterator[bytes]], AsyncIterator[bytes]]


class UploadBudgetFull(Overloaded):
    """The bodies in flight already use the memory budget (503 + Retry-After)."""


class Admission:
    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self.in_flight = 0

    @contextlib.contextmanager
    def admit(self, declared_bytes: int | None) -> Iterator[Ticket]:
        """Reserve ``declared_bytes`` (UploadBudgetFull if they do not fit) until the block ends."""
        ticket = Ticket(self)
        ticket.grow_to(declared_bytes or 0)
        try:
            yield ticket
        finally:
            self.in_flight -= ticket.reserved

    def reserve(self, extra: int) -> None:
        if self.in_flight + extra > self.budget_bytes:
            raise UploadBudgetFull(
                f"the server is at capacity: {self.in_flight / _MIB:.0f} MiB of uploads in flight "
                f"and this request needs {extra / _MIB:.1f} MiB more (budget "
                f"{self.budget_bytes / _MIB:.0f} MiB); retry shortly"
            )
        self.in_flight += extra


class Ticket:
    """One request's share of the budget."""

    def __init__(self, admission: Admission) -> None:
        self.admission = admission
        self.reserved = 0

    def grow_to(self, received: int) -> None:
        if received > self.reserved:
            self.admission.reserve(received - self.reserved)
            self.reserved = received

    async def counted(self, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """The body's chunks, each counted against the budget before it is passed on."""
        received = 0
        async for chunk in body:
            received += len(chunk)
            self.grow_to(received)
            yield chunk
