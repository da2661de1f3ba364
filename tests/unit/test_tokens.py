"""Admin tokens: long is not enough; guessable ones are refused with the reason."""

from __future__ import annotations

import secrets
import uuid

import pytest

from app.tokens import weakness


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("short-token", "shorter than 16 characters"),
        ("changeme-changeme-changeme", "one pattern repeated"),
        ("aaaaaaaaaaaaaaaaaaaaaaaa", "one pattern repeated"),
        ("abcabcabcabcabcabcab", "one pattern repeated"),  # the last copy cut short
        ("passwordpassword1", "placeholder words"),
        ("test-admin-token-0123456789", "placeholder words"),
        ("my-flowers-admin-2026-token", "placeholder words"),
        ("abcdefghijklmnopqrstuvwxyz", "runs such as 0123"),
        ("Secret_Token_9876543210", "placeholder words"),
    ],
)
def test_guessable_tokens_are_refused_with_the_reason(token: str, reason: str) -> None:
    found = weakness(token)
    assert found is not None and reason in found


@pytest.mark.parametrize(
    "token",
    [
        secrets.token_hex(32),  # what the docs tell: openssl rand -hex 32
        secrets.token_urlsafe(24),
        str(uuid.uuid4()),
        "correct horse battery staple",
        "Tr0ub4dor&3-horse-Zebra",
    ],
)
def test_random_secrets_and_passphrases_pass(token: str) -> None:
    assert weakness(token) is None


def test_random_hex_of_32_bytes_is_never_refused() -> None:
    assert [t for t in (secrets.token_hex(32) for _ in range(5000)) if weakness(t)] == []
