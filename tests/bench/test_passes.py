"""bench.passes: the active version's IRs as written and as the engine rewrites them, in turns
(no timing assertions)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.store.versions import ModelStore
from bench import passes
from tests.support.modelfactory import publish_tiny


def test_every_ir_of_the_version_is_measured_both_ways(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("nncf")
    store = ModelStore(tmp_path / "store")
    publish_tiny(store, ["blue", "green", "red"], int8=True)
    passes.main(["--store", str(store.root), "--rounds", "2", "--seconds", "0.05"])
    table = capsys.readouterr().out
    rows = [line for line in table.splitlines() if line.startswith("| model")]
    assert [row.split(" | ")[0] for row in rows] == [
        *(
            f"| model.xml at {p}"
            for p in sorted({passes.choose_precision("auto", passes.cpu_capabilities()), "f32"})
        ),
        f"| model-int8.xml at {passes.choose_precision('auto', passes.cpu_capabilities())}",
    ]
    for row in rows:
        before, after, ratio = (float(cell) for cell in row.strip(" |").split(" | ")[1:])
        assert before > 0 and after > 0 and ratio == pytest.approx(after / before, abs=0.01)


def test_a_store_without_a_version_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no model in"):
        passes.main(["--store", str(tmp_path / "empty")])
