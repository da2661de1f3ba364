"""Admission by memory: request bodies in flight against a budget (FLOWERS_MAX_INFLIGHT_BYTES).

The batch queue's limit counts images already decoded and queued; it says nothing of the bodies
still uploading, and 80 clients each sending 16 five-megabyte PNGs took a server from 1.4 to
4.7 GB before any of them was refused.  Here a request that declares its size (Content-Length)
is admitted only if that size fits in what the budget has left, and is refused at once
otherwise (503 + Retry-After), before a byte of its body is read.

A declared size is not granted for the asking: declaring costs a client nothing, and 8
connections that declared 256 MiB between them and then sent a byte every 5 s held the whole
budget against every honest client.  A request first holds at most PROBE_BYTES; the body that
sends them earns the rest of its declared size at once (refused then, 503, if it does not fit:
among many large uploads at once, some are served whole and the others refused early, never all
cut midway); a body of undeclared size is counted chunk by chunk.  A body too slow to earn its
share is cut by its pace (``app.http.pacing``).  A gRPC message shows neither its size nor
its progress before gRPC has read it whole, so its call waits for room for the largest message
a client may send (``wait_for_room``), holds it while the message is read, then keeps what the
message takes.  Everything runs on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator

from app.inference.batching import Overloaded

_MIB = 1024 * 1024
PROBE_BYTES = _MIB  # what a request holds until its body has sent that much

# What a body's chunks pass through on their way in: each counted against the budget.
Meter = Callable[[AsyncIterator[bytes]], AsyncIterator[bytes]]


class UploadBudgetFull(Overloaded):
    """The bodies in flight already use the memory budget (503 + Retry-After)."""


class Admission:
    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self.in_flight = 0
        self._freed: asyncio.Event | None = None  # set when memory is given back, if awaited

    @contextlib.contextmanager
    def admit(self, declared_bytes: int | None, held_bytes: int = 0) -> Iterator[Ticket]:
        """Admit a request until the block ends: UploadBudgetFull at once if ``declared_bytes``
        do not fit in what the budget has left; ``held_bytes`` (a body already in memory, as a
        gRPC message is) count from the start."""
        if declared_bytes:
            self.check_room(declared_bytes)
        ticket = Ticket(self, declared_bytes or 0)
        ticket.grow_to(max(held_bytes, min(declared_bytes or 0, PROBE_BYTES)))
        try:
            yield ticket
        finally:
            self.give_back(ticket.reserved)

    async def wait_for_room(self, needed: int, timeout_s: float) -> None:
        """Return once ``needed`` bytes fit in what the budget has left (they are not reserved:
        admit them before the next await), or raise UploadBudgetFull after ``timeout_s``."""
        try:
            async with asyncio.timeout(timeout_s):
                while self.in_flight + needed > self.budget_bytes:
                    if self._freed is None:
                        self._freed = asyncio.Event()
                    await self._freed.wait()
        except TimeoutError:
            self.check_room(needed)  # raises, with the budget's state

    def give_back(self, reserved: int) -> None:
        self.in_flight -= reserved
        if self._freed is not None:
            self._freed.set()
            self._freed = None

    def check_room(self, needed: int) -> None:
        if self.in_flight + needed > self.budget_bytes:
            raise UploadBudgetFull(
                f"the server is at capacity: {self.in_flight / _MIB:.0f} MiB of uploads in flight "
                f"and this request needs {needed / _MIB:.1f} MiB more (budget "
                f"{self.budget_bytes / _MIB:.0f} MiB); retry shortly"
            )

    def reserve(self, extra: int) -> None:
        self.check_room(extra)
        self.in_flight += extra


class Ticket:
    """One request's share of the budget."""

    def __init__(self, admission: Admission, declared: int = 0) -> None:
        self.admission = admission
        self.declared = declared
        self.reserved = 0

    def grow_to(self, received: int) -> None:
        if received > self.reserved:
            self.admission.reserve(received - self.reserved)
            self.reserved = received

    def shrink_to(self, held: int) -> None:
        """Give back what this request reserved beyond the ``held`` bytes it keeps."""
        if held < self.reserved:
            self.admission.give_back(self.reserved - held)
            self.reserved = held

    async def counted(self, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """The body's chunks, each counted against the budget before it is passed on; past the
        probe, the declared size is held whole."""
        received = 0
        async for chunk in body:
            received += len(chunk)
            if received > self.reserved:
                self.grow_to(max(received, self.declared))
            yield chunk
