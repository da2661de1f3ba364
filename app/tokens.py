"""What an admin token must be: a secret nobody guesses.  Long is not enough: ``changeme``
three times over, or a word and ``0123456789``, are long and guessed at once.  A token is refused
when it is short, one pattern repeated, or little more than placeholder words, runs such as
``0123`` or ``aaaa``, and separators; the way out is ``openssl rand -hex 32``."""

from __future__ import annotations

import re
from typing import Final

MIN_LENGTH: Final = 16
# What is left once placeholder words, separators and runs are taken out: at least this many
# symbols, of at least MIN_DISTINCT different characters.
MIN_SYMBOLS: Final = 10
MIN_DISTINCT: Final = 6
PLACEHOLDER_WORDS: Final = (
    "changeme", "change", "secret", "token", "admin", "password", "passwd", "example",
    "default", "test", "demo", "letmein", "qwerty", "xxx", "your", "here", "replace", "insert",
    "value", "flowers",
)  # fmt: skip
_SEPARATORS: Final = re.compile(r"[\s\-_.:/+=,;]+")


def weakness(token: str) -> str | None:
    """Why ``token`` is too weak to guard the admin API, or None when it is not."""
    if len(token) < MIN_LENGTH:
        return f"shorter than {MIN_LENGTH} characters"
    plain = _SEPARATORS.sub("", token.lower())
    if _repeats(plain):
        return "one pattern repeated"
    left = plain
    for word in PLACEHOLDER_WORDS:
        left = left.replace(word, "")
    symbols = _runs_collapsed(left)
    if len(symbols) < MIN_SYMBOLS or len(set(symbols)) < MIN_DISTINCT:
        return "placeholder words, repeats or runs such as 0123 with little else"
    return None


def _repeats(text: str) -> bool:
    """``text`` is one shorter unit repeated (the last copy may be cut short)."""
    return any(
        text == (text[:period] * (len(text) // period + 1))[: len(text)]
        for period in range(1, len(text) // 2 + 1)
    )


def _runs_collapsed(text: str) -> str:
    """Each run of 3+ characters that repeat or step by one (``aaaa``, ``1234``, ``fedc``) as
    its first character alone."""
    kept: list[str] = []
    index = 0
    while index < len(text):
        end = index + 1
        if end < len(text):
            step = ord(text[end]) - ord(text[index])
            while (
                step in (-1, 0, 1)
                and end < len(text)
                and ord(text[end]) - ord(text[end - 1]) == step
            ):
                end += 1
        if end - index >= 3:
            kept.append(text[index])
            index = end
        else:
            kept.append(text[index])
            index += 1
    return "".join(kept)
