"""bench.passes and bench.contention: the engine measured in turns, its IRs as written and as
rewritten, alone and beside decoding threads (no timing assertions)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.ml import engines
from app.store.versions import ModelStore
from bench import passes
from tests.conftest import write_class_folders
from tests.support.modelfactory import publish_tiny


def test_every_ir_of_the_version_is_measured_both_ways(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("nncf")
    store = ModelStore(tmp_path / "store")
    version = publish_tiny(store, ["blue", "green", "red"], int8=True)
    passes.main(["--store", str(store.root), "--rounds", "2", "--seconds", "0.05", "--layers", "3"])
    table = capsys.readouterr().out
    rows = [line for line in table.splitlines() if line.startswith("| model")]
    assert [row.split(" | ")[0] for row in rows] == [
        *(
            f"| model.xml at {p}"
            for p in sorted({passes.choose_precision("auto", passes.cpu_capabilities()), "f32"})
        ),
        # its float layers as they serve: bf16 where publishing checked them in bf16 here
        f"| model-int8.xml at {engines.int8_float_precision(version, engines.cpu_capabilities())}",
    ]
    for row in rows:
        before, after, ratio = (float(cell) for cell in row.strip(" |").split(" | ")[1:])
        assert before > 0 and after > 0 and ratio == pytest.approx(after / before, abs=0.01)
    # --layers: each model both ways, its costliest kernels by OpenVINO's counters
    titles = [line for line in table.splitlines() if "ms per batch in the counters" in line]
    assert len(titles) == 2 * len(rows)
    assert table.count("| layer | kernel | ms per batch | share |") == len(titles)
    assert "| Convolution |" in table  # the tiny model's one convolution is among the costliest


def test_a_store_without_a_version_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no model in"):
        passes.main(["--store", str(tmp_path / "empty")])


def test_the_contention_bench_times_the_engine_beside_each_neighbour(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench import contention

    store = ModelStore(tmp_path / "store")
    publish_tiny(store, ["a", "b"], openvino=True)
    photos = write_class_folders(tmp_path / "photos", {"a": 3, "b": 3})
    arguments = ["--store", str(store.root), "--photos", str(photos), "--engine", "openvino:f32"]
    contention.main([*arguments, "--rounds", "1", "--seconds", "0.05", "--batch-size", "4"])
    table = capsys.readouterr().out
    rows = [
        line.split(" | ") for line in table.splitlines() if line.startswith("| ") and "x |" in line
    ]
    assert [row[0] for row in rows] == [
        "| alone",
        "| 1 thread decoding flat out",
        "| 2 threads decoding flat out",
        "| 1 thread decoding a photo every 4 ms",
        "| 1 thread of pure Python, 1 ms in every 7",
    ]
    assert rows[0][2] == "1.00x |" and all(float(row[1]) > 0 for row in rows)


def test_the_contention_bench_needs_photos(tmp_path: Path) -> None:
    from bench import contention

    store = ModelStore(tmp_path / "store")
    publish_tiny(store, ["a", "b"], openvino=True)
    with pytest.raises(SystemExit, match="no photos in"):
        contention.main(
            ["--store", str(store.root), "--photos", str(tmp_path), "--engine", "openvino"]
        )
