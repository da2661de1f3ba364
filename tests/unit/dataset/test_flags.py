"""The review queue on its own: a flag is a photo and a suggestion, deduplicated, bounded,
validated like any upload, and only an operator's accept puts it in the dataset."""

from __future__ import annotations

from pathlib import Path

import pytest

from app import imaging
from app.dataset.flags import (
    FlagNotFound,
    FlagQueue,
    QueueFull,
    RateLimiter,
    TooManyFlags,
    UnknownClass,
)
from app.dataset.labelling import DatasetWriter, InvalidClassName
from tests.support import imagefactory as make

KNOWN = ["daisy", "roses", "tulips"]


def _queue(tmp_path: Path, max_flags: int = 3) -> FlagQueue:
    return FlagQueue(tmp_path / "flags", max_flags=max_flags, max_pixels=10_000_000)


def test_a_flag_waits_with_its_photo_and_the_same_photo_is_not_queued_twice(
    tmp_path: Path,
) -> None:
    queue = _queue(tmp_path)
    photo = make.jpeg(seed=1)
    flag, queued = queue.add(photo, "mine.jpg", "roses", KNOWN, "tulips", "2")
    assert queued and (flag.suggested, flag.predicted, flag.model_version) == (
        "roses",
        "tulips",
        "2",
    )
    again, queued_again = queue.add(photo, "again.jpg", "daisy", KNOWN)
    assert not queued_again and again == flag
    assert queue.all() == [flag]
    _, path = queue.image(flag.id)
    assert path.read_bytes() == photo


def test_the_queue_is_bounded(tmp_path: Path) -> None:
    queue = _queue(tmp_path, max_flags=2)
    for seed in (1, 2):
        queue.add(make.jpeg(seed=seed), "a.jpg", "roses", KNOWN)
    with pytest.raises(QueueFull, match="2 flags wait"):
        queue.add(make.jpeg(seed=3), "c.jpg", "roses", KNOWN)
    assert len(queue.all()) == 2


@pytest.mark.parametrize(
    ("data", "suggested", "error"),
    [
        (b"not a photo", "roses", imaging.ImageError),
        (b"", "roses", imaging.ImageError),
        (None, "sunflowers", UnknownClass),  # a class the model does not know
        (None, "../etc", InvalidClassName),
    ],
)
def test_a_bad_flag_is_refused_and_nothing_is_written(
    tmp_path: Path, data: bytes | None, suggested: str, error: type[Exception]
) -> None:
    queue = _queue(tmp_path)
    with pytest.raises(error):
        queue.add(make.jpeg() if data is None else data, "x.jpg", suggested, KNOWN)
    assert not (tmp_path / "flags").exists() or list((tmp_path / "flags").iterdir()) == []


def test_accept_files_the_photo_under_the_operators_class_and_reject_deletes_it(
    tmp_path: Path,
) -> None:
    queue = _queue(tmp_path)
    writer = DatasetWriter(tmp_path / "data", max_pixels=10_000_000)
    kept, _ = queue.add(make.jpeg(seed=1), "a.jpg", "roses", KNOWN)
    dropped, _ = queue.add(make.jpeg(seed=2), "b.jpg", "tulips", KNOWN)
    flag, added = queue.accept(kept.id, "daisy", writer)  # the operator knows better
    assert flag == kept and added.stored_as is not None and added.stored_as.startswith("daisy/")
    assert (tmp_path / "data" / added.stored_as).read_bytes() == make.jpeg(seed=1)
    assert queue.reject(dropped.id) == dropped
    assert queue.all() == [] and list((tmp_path / "flags").iterdir()) == []
    assert not (tmp_path / "data" / "tulips").exists()


@pytest.mark.parametrize("flag_id", ["nope", "../../etc/pw", "0" * 12, "a" * 13, ""])
def test_an_unknown_or_unsafe_flag_id_is_not_found(tmp_path: Path, flag_id: str) -> None:
    queue = _queue(tmp_path)
    queue.add(make.jpeg(), "a.jpg", "roses", KNOWN)
    with pytest.raises(FlagNotFound):
        queue.get(flag_id)
    with pytest.raises(FlagNotFound):
        queue.reject(flag_id)
    assert len(queue.all()) == 1


def test_the_rate_limit_is_per_client_over_a_sliding_window() -> None:
    limiter = RateLimiter(limit=2, window_s=60)
    limiter.check("a", now=0)
    limiter.check("a", now=10)
    limiter.check("b", now=10)  # another client has its own budget
    with pytest.raises(TooManyFlags, match="try again in 50 s"):
        limiter.check("a", now=10)
    limiter.check("a", now=61)  # the first one left the window


def test_the_limiter_forgets_the_stalest_clients_first() -> None:
    limiter = RateLimiter(limit=1, window_s=60, max_keys=2)
    limiter.check("a", now=0)
    limiter.check("b", now=1)
    limiter.check("c", now=2)  # "a" forgotten: at most two clients remembered
    limiter.check("a", now=3)
    with pytest.raises(TooManyFlags):
        limiter.check("c", now=4)
