"""The dataset folder's layout: class folders sorted by name, hidden entries and other files
left out."""

from __future__ import annotations

from pathlib import Path

from app.dataset import layout


def test_classes_are_the_visible_sub_folders_in_name_order(tmp_path: Path) -> None:
    for name in ("tulips", "daisy", ".incoming-x", "roses"):
        (tmp_path / name).mkdir()
    (tmp_path / "README.txt").write_text("not a class")
    assert [p.name for p in layout.class_folders(tmp_path)] == ["daisy", "roses", "tulips"]


def test_a_missing_folder_has_no_classes(tmp_path: Path) -> None:
    assert layout.class_folders(tmp_path / "none") == []


def test_a_class_holds_its_image_files_and_counts_the_others(tmp_path: Path) -> None:
    for name in ("b.JPG", "a.png", "c.webp", "notes.txt", ".hidden.jpg", "d.tiff"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.jpg").mkdir()
    images, others = layout.class_files(tmp_path)
    assert [p.name for p in images] == ["a.png", "b.JPG", "c.webp", "d.tiff"]
    assert others == 1
