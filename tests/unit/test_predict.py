"""``flowers-predict`` in this process: the engine is loaded as the server loads its own, the
collector off while TensorFlow imports and what it left alive then frozen (the command's
behaviour, end to end, is tests/e2e/test_predict_cli.py's)."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
from PIL import Image

from app import predict
from app.inference import memory
from app.store.versions import ModelStore
from tests.support.modelfactory import COLOURS, publish_tiny


def test_a_local_run_builds_its_engine_with_the_collector_off_then_frozen(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    unfrozen: None,
) -> None:
    store = ModelStore(tmp_path / "store")
    publish_tiny(store, list(COLOURS))
    photo = tmp_path / "red.png"
    Image.new("RGB", (64, 48), COLOURS["red"]).save(photo)
    collector_on_while_loading = []
    real_freeze = memory.freeze_startup_objects

    def freeze() -> int:
        collector_on_while_loading.append(gc.isenabled())
        return real_freeze()

    monkeypatch.setattr(memory, "freeze_startup_objects", freeze)
    monkeypatch.setenv("FLOWERS_ENGINE", "tensorflow")
    frozen_before = gc.get_freeze_count()
    code = predict.main(["--quiet", "--model-store", str(store.root), str(photo)])
    assert code == 0, capsys.readouterr().err
    assert "red" in capsys.readouterr().out
    assert collector_on_while_loading == [False]  # the scorer was built inside memory.startup()
    assert gc.get_freeze_count() > frozen_before
    assert gc.isenabled()
