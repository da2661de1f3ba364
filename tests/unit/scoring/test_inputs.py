"""Which files a command line names: files as named, folders' images, glob patterns."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.scoring.inputs import NoInputs, collect


def _touch(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")


def test_a_folder_gives_its_images_recursively_in_order(tmp_path: Path) -> None:
    _touch(tmp_path, "b/2.PNG", "b/1.jpg", "a.jpeg", "notes.txt", "c/d/e.webp")
    found = collect([str(tmp_path)])
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "a.jpeg",
        "b/1.jpg",
        "b/2.PNG",
        "c/d/e.webp",
    ]


def test_hidden_entries_are_skipped(tmp_path: Path) -> None:
    _touch(tmp_path, ".cache/a.jpg", "._b.jpg", "c.jpg")
    assert [p.name for p in collect([str(tmp_path)])] == ["c.jpg"]


def test_a_file_named_is_taken_whatever_its_suffix(tmp_path: Path) -> None:
    _touch(tmp_path, "photo.dat")
    assert collect([str(tmp_path / "photo.dat")]) == [tmp_path / "photo.dat"]


def test_glob_patterns_match_images_and_expand_folders(tmp_path: Path) -> None:
    _touch(tmp_path, "x/1.jpg", "x/2.txt", "y/3.png", "y/z/4.gif")
    found = collect([f"{tmp_path}/x/*", f"{tmp_path}/y/**"])
    assert [p.name for p in found] == ["1.jpg", "3.png", "4.gif"]


def test_each_file_is_given_once(tmp_path: Path) -> None:
    _touch(tmp_path, "a.jpg")
    assert collect([str(tmp_path), str(tmp_path / "a.jpg"), f"{tmp_path}/*.jpg"]) == [
        tmp_path / "a.jpg"
    ]


def test_a_linked_folder_loop_ends(tmp_path: Path) -> None:
    _touch(tmp_path, "a/1.jpg")
    os.symlink(tmp_path, tmp_path / "a" / "loop")
    assert [p.name for p in collect([str(tmp_path)])] == ["1.jpg"]


def test_a_missing_name_is_an_error_that_names_it(tmp_path: Path) -> None:
    with pytest.raises(NoInputs, match=r"nope\.jpg: no such file or folder"):
        collect([str(tmp_path / "nope.jpg")])


def test_no_image_at_all_is_an_error(tmp_path: Path) -> None:
    _touch(tmp_path, "readme.txt")
    with pytest.raises(NoInputs, match="no image files"):
        collect([str(tmp_path), f"{tmp_path}/*.png"])
