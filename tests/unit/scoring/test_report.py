"""The table, CSV and JSON the CLI writes."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from app.scoring import report
from app.scoring.results import Result, Scored, Unreadable

CLASSES = ["daisy", "roses", "tulips"]
ROSE = Scored(Path("a/rose.jpg"), "3", (0.1, 0.7, 0.2))
RESULTS: list[Result] = [
    ROSE,
    Unreadable(Path("notes.jpg"), "the bytes are not a decodable image"),
    Scored(Path("daisy.jpg"), "4", (0.9, 0.04, 0.06)),
]


def _written(writer: report.Writer, k: int) -> str:
    stream = io.StringIO()
    writer(stream, RESULTS, CLASSES, k)
    return stream.getvalue()


def test_ranked_is_most_probable_first() -> None:
    assert report.ranked(ROSE, CLASSES, 2) == [("roses", 0.7), ("tulips", 0.2)]


def test_the_table_aligns_the_scored_files() -> None:
    assert _written(report.write_table, 2).splitlines() == [
        "file        class        p  next 1",
        "a/rose.jpg  roses    0.700  tulips 0.200",
        "daisy.jpg   daisy    0.900  tulips 0.060",
    ]


def test_csv_has_the_top_k_at_full_precision() -> None:
    rows = list(csv.reader(io.StringIO(_written(report.write_csv, 2))))
    assert rows == [
        ["file", "version", "class_1", "p_1", "class_2", "p_2"],
        ["a/rose.jpg", "3", "roses", "0.7", "tulips", "0.2"],
        ["daisy.jpg", "4", "daisy", "0.9", "tulips", "0.06"],
    ]


def test_json_holds_predictions_and_unreadable_files() -> None:
    document = json.loads(_written(report.write_json, 1))
    assert document["classes"] == CLASSES
    assert document["predictions"][1] == {
        "file": "daisy.jpg",
        "version": "4",
        "class": "daisy",
        "top_k": [{"class": "daisy", "p": 0.9}],
    }
    assert document["unreadable"] == [
        {"file": "notes.jpg", "reason": "the bytes are not a decodable image"}
    ]
