"""What native code prints while TensorFlow is imported reaches the log at its own level."""

from __future__ import annotations

import logging

import pytest

from app.ml import devices


@pytest.mark.parametrize(
    ("line", "level"),
    [
        (
            "I0000 00:00:1795878951.733824    3097 port.cc:153] oneDNN custom operations are on.",
            logging.DEBUG,
        ),
        ("W0000 00:00:1.2  12 gpu.cc:1] something worth knowing", logging.WARNING),
        ("E1128 10:00:00.1  12 x.cc:9] a real error", logging.ERROR),
        ("Could not find cuda drivers on your machine, GPU will not be used.", logging.DEBUG),
        ("a line in no known format", logging.WARNING),
    ],
)
def test_native_lines_keep_their_severity(
    line: str, level: int, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger=devices.logger.name):
        devices._replay(line + "\n")
    assert [(record.levelno, record.getMessage()) for record in caplog.records] == [
        (level, f"native: {line}")
    ]
