"""Per-photo predictions: what two versions agree and disagree on, photos known by digest."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from app.store import predictions
from app.store.predictions import PhotoPrediction
from app.store.versions import ArtifactNotFound, ModelStore
from tests.support.modelfactory import publish_tiny


def _p(digest: str, label: str, predicted: str, source: str = "") -> PhotoPrediction:
    return PhotoPrediction(digest * 64, source or f"{label}/{digest}.jpg", label, predicted, 0.9)


def test_two_versions_are_compared_on_the_photos_both_measured() -> None:
    a = [
        _p("1", "rose", "rose"),  # both right
        _p("2", "rose", "tulip"),  # only b right
        _p("3", "tulip", "tulip"),  # only a right
        _p("4", "tulip", "daisy"),  # both wrong, differently
        _p("5", "daisy", "rose"),  # both wrong, alike: no disagreement
        _p("6", "daisy", "daisy"),  # relabelled in b's run
        _p("7", "daisy", "daisy"),  # not in b's run
    ]
    b = [
        _p("1", "rose", "rose", source="moved/1.jpg"),
        _p("2", "rose", "rose"),
        _p("3", "tulip", "rose"),
        _p("4", "tulip", "rose"),
        _p("5", "daisy", "rose"),
        _p("6", "rose", "rose"),
        _p("8", "rose", "rose"),  # not in a's run
    ]
    compared = predictions.compare(a, b)
    assert (compared.common, compared.both_right, compared.only_a_right) == (5, 1, 1)
    assert (compared.only_b_right, compared.both_wrong, compared.relabelled) == (1, 2, 1)
    # those only one gets right first, then the one both get wrong differently
    assert [d.digest[0] for d in compared.disagreements] == ["2", "3", "4"]
    first = compared.disagreements[0]
    assert (first.label, first.a.predicted, first.b.predicted) == ("rose", "tulip", "rose")


def test_the_same_photo_in_two_classes_is_two_photos_not_a_relabelling() -> None:
    a = [_p("1", "rose", "rose"), _p("1", "tulip", "rose")]
    b = [_p("1", "tulip", "tulip"), _p("1", "rose", "rose")]
    compared = predictions.compare(a, b)
    assert (compared.common, compared.relabelled, compared.only_b_right) == (2, 0, 1)
    assert [(d.label, d.a.predicted, d.b.predicted) for d in compared.disagreements] == [
        ("tulip", "rose", "tulip")
    ]


def test_the_file_round_trips_and_a_version_without_one_says_so(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    version = publish_tiny(store, ["rose", "tulip"])
    with pytest.raises(ArtifactNotFound, match="recorded no per-photo predictions"):
        predictions.load(version)
    photos = [_p("a", "rose", "tulip"), _p("b", "tulip", "tulip")]
    (version.path / predictions.PREDICTIONS_FILE).write_text(
        json.dumps(predictions.to_json(photos, "5-fold"))
    )
    assert predictions.load(version) == photos
    assert predictions.find(version, "b" * 64) == photos[1]
    with pytest.raises(ArtifactNotFound, match="was not measured on photo"):
        predictions.find(version, "c" * 64)


@pytest.mark.parametrize(
    "content", ["{", '{"format": 2, "photos": []}', '{"format": 1, "photos": [[1, 2]]}']
)
def test_an_unreadable_file_is_not_found_not_a_crash(tmp_path: Path, content: str) -> None:
    store = ModelStore(tmp_path / "store")
    version = publish_tiny(store, ["rose", "tulip"])
    (version.path / predictions.PREDICTIONS_FILE).write_text(content)
    with pytest.raises(ArtifactNotFound, match=r"predictions\.json"):
        predictions.load(version)


def test_find_parses_a_versions_file_once_and_again_only_when_it_changed(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    version = publish_tiny(store, ["rose", "tulip"])
    path = version.path / predictions.PREDICTIONS_FILE
    path.write_text(json.dumps(predictions.to_json([_p("a", "rose", "rose")], "5-fold")))
    assert predictions.find(version, "a" * 64).predicted == "rose"
    stamp = path.stat().st_mtime_ns
    path.write_text("{")  # not read again: a published version's file does not change...
    os.utime(path, ns=(stamp, stamp))
    assert predictions.find(version, "a" * 64).predicted == "rose"
    os.utime(path, ns=(stamp + 10**9, stamp + 10**9))  # ...unless its time says it did
    with pytest.raises(ArtifactNotFound, match=r"predictions\.json"):
        predictions.find(version, "a" * 64)
