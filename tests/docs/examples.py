"""The examples of a documentation page, read from its Markdown, and the shape of an output.

A page's examples are its ``console`` blocks (``$ command`` lines, each followed by its output)
and its ``python`` blocks (a whole script, its output in the ``text`` block right after it).  A
block preceded by ``<!-- not run: reason -->`` is shown, not run, and must say why.

Outputs are compared by shape, not value: another model and another run give other
probabilities, ids, dates and sizes, but the same lines, keys and kinds of values.  ``...`` in a
documented output stands for anything (the page shortened it).
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NOT_RUN = re.compile(r"<!--\s*not run:\s*(?P<reason>.+?)\s*-->")
FENCE = re.compile(r"^```(?P<language>[\w-]*)\s*$")
CLASSES = ("daisy", "dandelion", "roses", "sunflowers", "tulips")
# Values that differ between runs and machines, each replaced by a placeholder, in this order.
_VARYING = (
    (re.compile(r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT"), "<date>"),
    (re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(\+00:00|Z)?"), "<time>"),
    # a decimal fraction, in either notation, before <hex> takes its long digit runs (or, in
    # "3.697634383570403e-06", the digits and the exponent's "e")
    (re.compile(r"-?\d+\.\d+(?:[eE][-+]?\d+)?"), "<n>"),
    (re.compile(r"\b[0-9a-f]{12,64}\b"), "<hex>"),
    # the arithmetic the CPU serves in (int8 with VNNI or AMX and a kept INT8 IR): before <n>
    (re.compile(r"\b(f32|bf16|f16|int8)\b"), "<precision>"),
    (re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?"), "<n>"),
    (re.compile(rf"\b({'|'.join(CLASSES)})\b"), "<class>"),
    (re.compile(r"\b(openvino|tensorflow|jax)\b"), "<engine>"),
)


@dataclass(frozen=True)
class Example:
    page: str
    line: int  # where its block starts in the page
    kind: str  # "shell" (one command of a console block) or "python"
    code: str
    expected: str
    not_run: str | None = None  # why the page shows it without running it

    @property
    def name(self) -> str:
        return f"{self.page}:{self.line}"


@dataclass(frozen=True)
class _Block:
    language: str
    line: int
    body: str
    not_run: str | None


def examples(path: Path) -> list[Example]:
    """Every example of a page, in page order (the order they are run in)."""
    blocks = _blocks(path.read_text())
    found: list[Example] = []
    for index, block in enumerate(blocks):
        if block.language == "console":
            found += _commands(path.name, block)
        elif block.language == "python":
            after = blocks[index + 1] if index + 1 < len(blocks) else None
            output = after.body if after is not None and after.language == "text" else ""
            found.append(
                Example(path.name, block.line, "python", block.body, output, block.not_run)
            )
    return found


def _blocks(text: str) -> list[_Block]:
    lines = text.splitlines()
    blocks, index, reason = [], 0, None
    while index < len(lines):
        note = NOT_RUN.search(lines[index])
        if note:
            reason = note.group("reason")
        fence = FENCE.match(lines[index])
        if fence is None:
            index += 1
            continue
        end = index + 1
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        body = "\n".join(lines[index + 1 : end])
        blocks.append(_Block(fence.group("language"), index + 1, body, reason))
        reason, index = None, end + 1
    return blocks


def _commands(page: str, block: _Block) -> list[Example]:
    """A console block's commands (continued over lines ending in a backslash), each with the
    output lines that follow it."""
    commands: list[tuple[list[str], list[str]]] = []
    continued = False
    for line in block.body.splitlines():
        if line.startswith("$ ") or continued:
            if not continued:
                commands.append(([], []))
            commands[-1][0].append(line[2:] if line.startswith("$ ") else line)
            continued = line.endswith("\\")
        elif commands:
            commands[-1][1].append(line)
    return [
        Example(page, block.line, "shell", "\n".join(code), "\n".join(out), block.not_run)
        for code, out in commands
    ]


def shape(text: str) -> list[str]:
    """What an output must keep from run to run: each line's JSON structure, else its words
    with every varying value replaced by a placeholder."""
    return [_line_shape(line.rstrip()) for line in text.strip().splitlines() if line.strip()]


def matches(documented: str, actual: str) -> bool:
    expected, got = _lines(documented), _lines(actual)
    if len(expected) != len(got):
        return False
    return all(_line_matches(e, g) for e, g in zip(expected, got, strict=True))


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.strip().splitlines() if line.strip()]


def _line_matches(expected: str, got: str) -> bool:
    if "..." not in expected:
        return _line_shape(expected) == _line_shape(got)
    # a shortened line: its words, with "..." standing for anything
    parts = [_words(part).strip() for part in expected.split("...")]
    return re.fullmatch(".*".join(re.escape(part) for part in parts), _words(got)) is not None


def _line_shape(line: str) -> str:
    for parse in (json.loads, ast.literal_eval):
        try:
            value = parse(line)
        except (ValueError, SyntaxError):
            continue
        if isinstance(value, dict | list):
            return "data " + _value_shape(value)
    return _words(line)


def _words(line: str) -> str:
    for pattern, placeholder in _VARYING:
        line = pattern.sub(placeholder, line)
    return line


def _value_shape(value: Any) -> str:
    if isinstance(value, dict):  # class names as keys (probabilities): which ones may differ
        entries = {
            f"{'<class>' if k in CLASSES else k}: {_value_shape(v)}" for k, v in value.items()
        }
        return "{" + ", ".join(sorted(entries)) + "}"
    if isinstance(value, list):
        return "[" + " | ".join(sorted({_value_shape(item) for item in value})) + "]"
    if value is None or isinstance(value, bool):
        return repr(value)
    return type(value).__name__.replace("int", "number").replace("float", "number")
