"""bench.profile: finding py-spy, and its report's tables from collapsed stacks."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench import profile


def _executable(path: Path) -> Path:
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_py_spy_beside_the_interpreter_is_found_without_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = _executable(tmp_path / "py-spy")
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", "")
    assert profile.py_spy() == str(spy)


def test_py_spy_on_path_is_the_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "venv").mkdir()
    (tmp_path / "tools").mkdir()
    spy = _executable(tmp_path / "tools" / "py-spy")
    monkeypatch.setattr(sys, "executable", str(tmp_path / "venv" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path / "tools"))
    assert profile.py_spy() == str(spy)


def test_no_py_spy_anywhere_exits_with_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SystemExit, match=r"py-spy is not installed .*pip install -e '\.\[dev\]'"):
        profile.py_spy()


def test_the_report_shares_samples_by_thread_by_leaf_and_by_the_apps_own_frames() -> None:
    collapsed = "\n".join(
        [
            "inference_0 (0x7f01);run (threading.py);infer (/srv/app/ml/engines.py) 6",
            "decode_0 (0x7f02);run (threading.py);load (/x/site-packages/PIL/ImageFile.py) 3",
            "MainThread (0x7f03);run (/usr/lib/python3.11/asyncio/runners.py) 1",
            "a line py-spy did not write",
        ]
    )
    text = profile.report(collapsed, top=2)
    assert text.splitlines()[0] == "10 samples of busy threads"
    assert "| `inference_0` | 60.0% |" in text
    assert "| `load (PIL/ImageFile.py)` | 30.0% |" in text
    assert "| `infer (ml/engines.py)` | 60.0% |" in text  # inclusive: the app's frames only
    assert "MainThread" not in text  # top=2 keeps the two largest of each table
    assert profile.report("", top=2).startswith("no samples")
