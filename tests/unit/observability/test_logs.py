"""Logs as text or one JSON object per line, every record tagged with its request id."""

from __future__ import annotations

import json
import logging

import pytest

from app.observability import logs


@pytest.fixture(autouse=True)
def _restore_logging() -> object:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield None
    root.handlers[:], root.level = handlers, level


def _emit(capsys: pytest.CaptureFixture[str], fmt: str) -> str:
    logs.configure("info", fmt)
    token = logs.request_id.set("req-42")
    try:
        logging.getLogger("app.test").info("hello %s", "world", extra={"fields": {"ms": 1.5}})
    finally:
        logs.request_id.reset(token)
    logging.getLogger("app.test").debug("below the level")
    return capsys.readouterr().err


def test_json_lines_carry_the_request_id_and_the_fields(capsys: pytest.CaptureFixture[str]) -> None:
    [line] = _emit(capsys, "json").splitlines()
    entry = json.loads(line)
    assert entry["message"] == "hello world" and entry["request_id"] == "req-42"
    assert entry["level"] == "info" and entry["logger"] == "app.test" and entry["ms"] == 1.5


def test_text_lines_carry_the_request_id(capsys: pytest.CaptureFixture[str]) -> None:
    [line] = _emit(capsys, "text").splitlines()
    assert line.endswith("INFO app.test [req-42] hello world")
