"""Decoding work in flight against a budget: what the decode pool may owe, in pixels.

An image's size says little about what it costs to decode: a 2 KB WebP of 16383 x 2420 pixels
took 2.2 s, a one-colour PNG of 6300 x 6300 pixels and 128 KB 2.45 s, and sixteen such files in
one 25 KB request 34.5 s of the pool's time, while honest requests waited behind them (109 s for
one).  Each image's cost is read from its header before it is queued (``imaging.decode_cost``);
a request whose images cost more than ``max_request_pixels`` is refused (413), and one whose
images do not fit in what the budget has left waits for nothing: 503 + Retry-After at once.
So the work queued ahead of any image is bounded, and so is an honest request's wait.
"""

from __future__ import annotations

from app.inference.batching import Overloaded

_MEGA = 1_000_000


class DecodeBusy(Overloaded):
    """The decode pool already owes as many pixels as the budget allows (503 + Retry-After)."""


class RequestTooCostly(ValueError):
    """A request's images cost more to decode than one request may (413)."""


class DecodeBudget:
    def __init__(self, budget_pixels: int, max_request_pixels: int) -> None:
        self.budget_pixels = budget_pixels
        self.max_request_pixels = max_request_pixels
        self.owed = 0  # pixels queued or being decoded, every request together

    def take(self, cost: int, request_total: int) -> None:
        """Count one image of ``cost`` pixels, its request's images costing ``request_total`` so
        far; RequestTooCostly or DecodeBusy when it cannot be decoded now."""
        if request_total > self.max_request_pixels:
            raise RequestTooCostly(
                f"the request's images hold {request_total / _MEGA:,.0f} million pixels to "
                f"decode; at most {self.max_request_pixels / _MEGA:,.0f} million per request"
            )
        if self.owed + cost > self.budget_pixels:
            raise DecodeBusy(
                f"the server is at capacity: {self.owed / _MEGA:,.0f} million pixels are being "
                "decoded; retry shortly"
            )
        self.owed += cost

    def give_back(self, cost: int) -> None:
        self.owed -= cost
