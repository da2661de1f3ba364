"""The decode budget on its own: what a request may cost, what the pool may owe, given back."""

from __future__ import annotations

import pytest

from app.inference.decoding import DecodeBudget, DecodeBusy, RequestTooCostly


def test_images_are_counted_until_given_back() -> None:
    budget = DecodeBudget(budget_pixels=100, max_request_pixels=60)
    budget.take(40, request_total=40)
    budget.take(50, request_total=50)
    assert budget.owed == 90
    with pytest.raises(DecodeBusy, match="retry shortly"):
        budget.take(20, request_total=20)
    budget.give_back(40)
    budget.take(20, request_total=20)
    assert budget.owed == 70


def test_a_request_over_its_share_is_refused_whatever_the_pool_owes() -> None:
    budget = DecodeBudget(budget_pixels=10**9, max_request_pixels=60_000_000)
    budget.take(40_000_000, request_total=40_000_000)
    with pytest.raises(RequestTooCostly, match=r"hold 80 million pixels.*at most 60 million"):
        budget.take(40_000_000, request_total=80_000_000)
    assert budget.owed == 40_000_000
