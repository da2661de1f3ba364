"""The training CLI end to end on tiny generated data (random backbone weights), and its errors."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app import imaging
from app.ml import network
from app.options import TrainOptions
from app.store import predictions
from app.store.versions import ModelStore
from tests.conftest import REPO, write_class_folders
from tests.support.modelfactory import COLOURS

FAST = ["--weights", "none", "--folds", "3", "--batch-size", "8"]
# For the activation decisions, which compare fold and folder accuracies: no conv5 fine-tuning and
# no OpenVINO export, 12 of a run's 28 s here, which those decisions never read.
DECIDE = [*FAST, "--fine-tune-epochs", "0", "--no-openvino"]
MLP = ["--weights", "none", "--head", "mlp", "--epochs", "2", "--folds", "0", "--batch-size", "8"]


def _train_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.train", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


# flower_photos' LICENSE.txt layout: the licence first, then one credit line per photo. Owls are
# credited nowhere, and the one credited dog that cannot be read cannot be an example.
CREDITS = """All images are licensed under CC-BY, available at:
https://creativecommons.org/licenses/by/2.0/

cats/cats_004.jpg CC-BY by Ann - https://example.org/ann/4
cats/cats_001.jpg CC-BY by Bob - https://example.org/bob/1
cats/cats_002.jpg CC-BY by Cy - https://example.org/cy/2
dogs/broken.jpg CC-BY by Dee - https://example.org/dee/0
dogs/dogs_003.jpg CC-BY by Eve - https://example.org/eve/3
"""


@pytest.fixture(scope="module")
def trained_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    root = tmp_path_factory.mktemp("train")
    data = write_class_folders(root / "data", {"cats": 6, "dogs": 5, "owls": 5})
    (data / "dogs" / "broken.jpg").write_text("not an image")
    (data / "LICENSE.txt").write_text(CREDITS)
    events = root / "events.jsonl"
    result = _train_cli(
        "--data-dir",
        str(data),
        "--model-store",
        str(root / "store"),
        *FAST,
        "--progress-file",
        str(events),
    )
    assert result.returncode == 0, result.stderr
    return root / "store", events, result.stdout + result.stderr


def test_training_publishes_an_active_loadable_version(
    trained_store: tuple[Path, Path, str],
) -> None:
    store_root, _, _ = trained_store
    store = ModelStore(store_root)
    active = store.active()
    assert active is not None and active.number == 1
    model = network.load(store.get(1).model_path)  # keras.saving.load_model(..., safe_mode=True)
    image = imaging.preprocess((next((store_root.parent / "data" / "cats").iterdir())).read_bytes())
    probabilities = np.asarray(model(image[None].astype(np.float32)))
    assert probabilities.shape == (1, 3)
    assert probabilities.dtype == np.float32
    assert abs(float(probabilities.sum()) - 1.0) < 1e-5


def test_the_version_folder_holds_model_metadata_and_plots(
    trained_store: tuple[Path, Path, str],
) -> None:
    folder = trained_store[0] / "1"
    for name in ("model.keras", "metadata.json", "history.png", "confusion.png"):
        assert (folder / name).stat().st_size > 0, name
    assert (folder / "history.png").read_bytes().startswith(b"\x89PNG")


def test_metadata_describes_the_run(trained_store: tuple[Path, Path, str]) -> None:
    metadata = json.loads((trained_store[0] / "1" / "metadata.json").read_text())
    assert metadata["version"] == 1
    assert metadata["classes"] == ["cats", "dogs", "owls"]
    metrics = metadata["metrics"]
    assert 0.0 <= metrics["val_accuracy"] <= 1.0 and len(metrics["fold_accuracies"]) == 3
    assert metrics["val_accuracy"] == round(float(np.mean(metrics["fold_accuracies"])), 4)
    assert metrics["evaluation"].startswith("3-fold cross-validation (seed 123): ")
    # the default fine-tunes the published model's conv5, keeping the last fold out to judge it
    fine_tuning = metrics["fine_tuning"]
    assert fine_tuning["published"] is True
    assert fine_tuning["epochs"] == TrainOptions().fine_tune_epochs > 0
    assert metrics["trained_on"] == 16 - fine_tuning["held_out"]["photos"] < 16
    assert set(metrics["per_class"]["owls"]) == {"precision", "recall", "f1", "support"}
    assert np.asarray(metrics["confusion_matrix"]).sum() == 16  # every photo judged once
    assert metadata["dataset"]["evaluated_counts"] == {"cats": 6, "dogs": 5, "owls": 5}
    # what test-time flips would have scored on the same folds (served with FLOWERS_TTA=flip)
    flips = metrics["tta_flip"]
    assert len(flips["fold_accuracies"]) == 3
    assert flips["accuracy"] == round(float(np.mean(flips["fold_accuracies"])), 4)
    assert flips["gain"] == pytest.approx(flips["accuracy"] - metrics["val_accuracy"], abs=2e-4)
    assert metadata["input"] == {"shape": [180, 180, 3], "dtype": "float32", "values": "RGB 0..255"}
    assert metadata["preprocessing_version"] == imaging.PREPROCESSING_VERSION
    training = metadata["training"]
    assert training["folds"] == 3 and training["seed"] == 123 and training["head"] == "linear"
    assert training["features"] == "conv4-conv5-gem" and training["flips"] is True
    assert np.allclose(training["history"]["fold_accuracy"], metrics["fold_accuracies"], atol=1e-4)
    assert metadata["dataset"]["counts"] == {"cats": 6, "dogs": 6, "owls": 5}
    assert len(metadata["dataset"]["skipped"]) == 1
    assert len(metadata["dataset"]["content_hash"]) == 16
    assert metadata["backbone"]["weights"] == "none"
    assert {"weights", "features", "train_head", "evaluate"} <= set(metadata["timings_s"])
    assert {"python", "keras", "tensorflow", "numpy", "pillow"} <= set(metadata["libraries"])
    assert metadata["created_at"].endswith("+00:00")


def test_the_version_ships_credited_example_photos(trained_store: tuple[Path, Path, str]) -> None:
    store_root, _, output = trained_store
    examples = json.loads((store_root / "1" / "metadata.json").read_text())["examples"]
    assert examples["license"] == "https://creativecommons.org/licenses/by/2.0/"
    photos = examples["photos"]
    # two per class (the default) of the credited, readable ones; owls have none
    assert [p["class_name"] for p in photos] == ["cats", "cats", "dogs"]
    assert photos[2] == {
        "file": "examples/2.jpg",
        "class_name": "dogs",
        "source": "dogs/dogs_003.jpg",
        "credit": "CC-BY by Eve - https://example.org/eve/3",
    }
    cats = {p["source"] for p in photos[:2]}
    assert cats < {"cats/cats_004.jpg", "cats/cats_001.jpg", "cats/cats_002.jpg"}
    for photo in photos:
        credited = CREDITS.split(photo["source"] + " ")[1].splitlines()[0]
        assert photo["credit"] == credited
        with Image.open(store_root / "1" / photo["file"]) as image:
            assert image.format == "JPEG" and max(image.size) <= 320
    assert "examples for the public page: 3 credited photos" in output


def test_every_measured_photo_has_its_out_of_fold_prediction(
    trained_store: tuple[Path, Path, str],
) -> None:
    store_root = trained_store[0]
    metadata = json.loads((store_root / "1" / "metadata.json").read_text())
    judged = predictions.load(ModelStore(store_root).get(1))
    assert len(judged) == 16  # every readable photo, once (the broken one was never measured)
    for photo in judged:
        data = (store_root.parent / "data" / photo.source).read_bytes()
        assert hashlib.sha256(data).hexdigest() == photo.digest
        assert photo.label == photo.source.split("/")[0]
        assert photo.predicted in metadata["classes"] and 0 < photo.confidence <= 1
    # the very predictions the confusion matrix counts
    classes = metadata["classes"]
    matrix = np.zeros((3, 3), int)
    for photo in judged:
        matrix[classes.index(photo.label), classes.index(photo.predicted)] += 1
    assert matrix.tolist() == metadata["metrics"]["confusion_matrix"]


def test_if_better_measures_both_recipes_on_the_same_folds(tmp_path: Path) -> None:
    """The feedback loop's decision: a retrain is compared with the active version's recipe on
    this run's own folds (issue 25), not with a figure measured on other photos."""
    data = write_class_folders(tmp_path / "data", {"cats": 6, "dogs": 5, "owls": 5})
    store = tmp_path / "store"
    common = ["--data-dir", str(data), "--model-store", str(store), *DECIDE]

    def metadata(number: int) -> dict:
        return json.loads((store / str(number) / "metadata.json").read_text())

    assert _train_cli(*common).returncode == 0
    # Another recipe on the same photos: version 1's recipe, re-measured on the same folds,
    # gives exactly the fold accuracies version 1 recorded.
    second = _train_cli(*common, "--l2", "3", "--activate", "if_better")
    assert second.returncode == 0, second.stderr
    activation = metadata(2)["activation"]
    paired = activation["paired"]
    assert (paired["compared_with"], paired["same_recipe"]) == (1, False)
    assert paired["active_recipe_accuracy"] == metadata(1)["metrics"]["val_accuracy"]
    assert paired["accuracy"] == metadata(2)["metrics"]["val_accuracy"]
    assert activation["activated"] is (paired["difference"] >= 0)
    assert "active version 1's recipe, on the same folds:" in second.stdout
    # One more photo (a mirrored cat), the active version's own recipe: activated, by a paired
    # difference of zero, whatever the folds of the new partition score.
    active = ModelStore(store).active()
    assert active is not None
    with Image.open(data / "cats" / "cats_000.jpg") as cat:
        cat.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(data / "cats" / "mirrored.jpg")
    l2 = str(metadata(active.number)["training"]["l2"])
    third = _train_cli(*common, "--l2", l2, "--activate", "if_better")
    assert third.returncode == 0, third.stderr
    activation = metadata(3)["activation"]
    assert activation["activated"] is True
    assert activation["paired"]["same_recipe"] is True
    assert activation["paired"]["difference"] == 0 and activation["paired"]["photos"] == 17
    assert f"the same recipe as active version {active.number}'s" in activation["reason"]


def _colours(root: Path, per_class: int, seed: int) -> Path:
    """Noisy solid-colour photos in blue/green/red folders (a seed per set: no shared bytes)."""
    rng = np.random.default_rng(seed)
    for name, colour in COLOURS.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = np.clip(np.array(colour) + rng.normal(0, 25, (40, 48, 3)), 0, 255)
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{name}_{i}.jpg")
    return root


def test_an_evaluation_folder_keeps_a_dataset_made_worse_from_being_activated(
    tmp_path: Path,
) -> None:
    """Mislabelled photos lower both recipes alike on the dataset's own folds; only photos never
    trained on show that the new version is worse (issue 25)."""
    data = _colours(tmp_path / "data", per_class=9, seed=1)
    held = _colours(tmp_path / "held", per_class=6, seed=2)
    (held / "green" / "copy.jpg").write_bytes((data / "green" / "green_0.jpg").read_bytes())
    store = tmp_path / "store"
    common = ["--data-dir", str(data), "--model-store", str(store), "--eval-dir", str(held)]
    first = _train_cli(*common, *DECIDE)
    assert first.returncode == 0, first.stderr

    def metadata(number: int) -> dict:
        return json.loads((store / str(number) / "metadata.json").read_text())

    scored = metadata(1)["evaluation_set"]
    assert (scored["photos"], scored["duplicates"]) == (18, ["green/copy.jpg"])
    assert scored["active"]["source"] == "no version was active"
    # The red photos' labels shuffled among the three classes (each keeps 3 photos)
    reds = sorted((data / "red").iterdir())
    for index, photo in enumerate(reds[3:]):
        photo.rename(data / ("blue", "green")[index % 2] / f"was_red_{index}.jpg")
    for index, photo in enumerate(sorted((data / "blue").glob("blue_*.jpg"))[:3]):
        photo.rename(data / "red" / f"was_blue_{index}.jpg")
    worse = _train_cli(*common, *DECIDE, "--activate", "if_better")
    assert worse.returncode == 0, worse.stderr
    activation, on_folder = metadata(2)["activation"], metadata(2)["evaluation_set"]
    assert on_folder["active"] == {
        "version": 1,
        "accuracy": scored["accuracy"],
        "source": "recorded",
    }
    assert on_folder["accuracy"] < scored["accuracy"]
    assert activation["activated"] is False
    assert activation["reason"].startswith(
        "on the evaluation folder's 18 photos (never trained on)"
    )
    assert ModelStore(store).active_number() == 1
    # Other photos, and a policy that compares nothing: the active model is not run on them
    (held / "blue" / "blue_0.jpg").unlink()
    kept = _train_cli(*common, *DECIDE, "--activate", "never")
    assert kept.returncode == 0, kept.stderr
    assert metadata(3)["evaluation_set"]["active"] == {
        "version": 1,
        "accuracy": None,
        "source": "not compared (activate=never; scored for if_better)",
    }


def test_a_wrong_evaluation_folder_fails_before_training(tmp_path: Path) -> None:
    data = write_class_folders(tmp_path / "data", {"cats": 3, "dogs": 3})
    odd = write_class_folders(tmp_path / "held", {"cats": 1, "bats": 1})
    result = _train_cli(
        "--data-dir", str(data), "--model-store", str(tmp_path / "s"), "--eval-dir", str(odd), *FAST
    )
    assert result.returncode == 2
    assert "has classes the dataset does not: bats" in result.stderr
    assert "[features]" not in result.stdout  # nothing was computed


def test_output_has_fold_lines_skip_warning_and_summary(
    trained_store: tuple[Path, Path, str],
) -> None:
    output = trained_store[2]
    assert "fold 1/3  accuracy" in output and "fold 3/3  accuracy" in output
    assert "with test-time flips (FLOWERS_TTA=flip): " in output
    assert "accuracy             3-fold cross-validation" in output
    assert "broken.jpg" in output
    assert "version published    1 (active)" in output
    for heading in ("precision", "recall", "phase", "total"):
        assert heading in output


def test_progress_events_are_machine_readable(trained_store: tuple[Path, Path, str]) -> None:
    events = [json.loads(line) for line in trained_store[1].read_text().splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "phase" and kinds[-1] == "succeeded"
    assert {"phase", "progress"} <= set(kinds)
    assert events[-1]["version"] == 1
    phases = [e["phase"] for e in events if e["event"] == "phase"]
    assert phases == [
        "scan", "weights", "features", "evaluate", "train_head", "fine_tune", "publish"
    ]  # fmt: skip


def test_second_run_reuses_the_feature_cache(trained_store: tuple[Path, Path, str]) -> None:
    store_root, _, _ = trained_store
    result = _train_cli(
        "--data-dir",
        str(store_root.parent / "data"),
        "--model-store",
        str(store_root),
        *FAST,
        "--no-activate",
        "--no-openvino",
    )
    assert result.returncode == 0, result.stderr
    assert "0 computed, 16 from the cache" in result.stderr + result.stdout  # both views
    assert ModelStore(store_root).active_number() == 1  # --no-activate
    assert [v.number for v in ModelStore(store_root).versions()] == [1, 2]


@pytest.mark.slow
def test_publishing_prunes_old_versions_by_the_retention_setting(
    trained_store: tuple[Path, Path, str], tmp_path: Path
) -> None:
    from tests.support.modelfactory import publish_tiny

    store = ModelStore(tmp_path / "store")
    for seed in range(3):
        publish_tiny(store, ["cats", "dogs", "owls"], seed=seed, activate=seed == 1)
    source = trained_store[0]
    result = _train_cli(
        *("--data-dir", str(source.parent / "data"), "--model-store", str(store.root)),
        *("--feature-cache", str(source / ".cache" / "features"), *FAST),
        *("--no-activate", "--no-openvino"),
        env={**os.environ, "FLOWERS_KEEP_VERSIONS": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert "retention: deleted versions [1, 3] (kept the newest 1 + active)" in result.stdout
    assert [v.number for v in store.versions()] == [2, 4]
    assert store.active_number() == 2


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ({}, "does not exist"),
        ({"only": 3}, "at least 2"),
        ({"a": 3, "empty": 0}, "holds no images"),
        ({"roses": 3, "Roses": 1}, "too few images to train and validate: 'Roses' has 1"),
    ],
)
def test_bad_dataset_folders_exit_2_with_one_line(
    tmp_path: Path, layout: dict[str, int], message: str
) -> None:
    data = tmp_path / "data"
    if layout:
        write_class_folders(data, {k: v for k, v in layout.items() if v})
        for name in layout:
            (data / name).mkdir(exist_ok=True)
    result = _train_cli("--data-dir", str(data), "--model-store", str(tmp_path / "store"), *FAST)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error:") and message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "store").exists()


def test_a_class_with_only_unreadable_images_exits_2(tmp_path: Path) -> None:
    data = write_class_folders(tmp_path / "data", {"a": 3, "b": 3})
    for path in (data / "b").iterdir():
        path.write_text("garbage")
    result = _train_cli("--data-dir", str(data), "--model-store", str(tmp_path / "s"), *FAST)
    assert result.returncode == 2
    assert "no readable images in class folder(s): b" in result.stderr
    assert "Traceback" not in result.stderr


def test_out_of_range_options_exit_2(tmp_path: Path) -> None:
    result = _train_cli("--validation-split", "1.5", "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert "validation-split" in result.stderr and "Traceback" not in result.stderr


def test_help_documents_every_option() -> None:
    result = _train_cli("--help")
    assert result.returncode == 0
    for option in (
        "--data-dir",
        "--epochs",
        "--fine-tune-epochs",
        "--seed",
        "--validation-split",
        "--model-store",
        "--weights",
        "--activate",
        "--no-activate",
        "--learning-rate",
        "--batch-size",
        "--dropout",
        "--feature-cache",
        "--progress-file",
        "--keep-versions",
        "FLOWERS_KEEP_VERSIONS",
        "--mixed-precision",
        "--no-openvino",
        "FLOWERS_MODEL_STORE",
        "FLOWERS_DATA_DIR",
        "RESNET50_WEIGHTS",
    ):
        assert option in result.stdout, option


def test_the_tutorials_head_trains_by_epochs_on_a_holdout(tmp_path: Path) -> None:
    data = write_class_folders(tmp_path / "data", {"cats": 5, "dogs": 5})
    events = tmp_path / "events.jsonl"
    result = _train_cli(
        "--data-dir", str(data), "--model-store", str(tmp_path / "store"), *MLP,
        "--progress-file", str(events), "--no-openvino", "--fine-tune-epochs", "0",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "head epoch 1/2" in result.stdout and "head epoch 2/2" in result.stdout
    epochs = [json.loads(line) for line in events.read_text().splitlines()]
    assert [e["epoch"] for e in epochs if e["event"] == "epoch"] == [1, 2]
    metadata = json.loads((tmp_path / "store" / "1" / "metadata.json").read_text())
    assert metadata["metrics"]["evaluation"].startswith("holdout: ")
    assert metadata["metrics"]["trained_on"] == 8  # the holdout's 2 photos were kept out


def test_the_fast_path_fits_the_published_head_on_every_photo_and_fine_tunes_nothing(
    tmp_path: Path,
) -> None:
    data = write_class_folders(tmp_path / "data", {"cats": 5, "dogs": 5})
    events = tmp_path / "events.jsonl"
    result = _train_cli(
        "--data-dir", str(data), "--model-store", str(tmp_path / "store"), *FAST,
        "--fine-tune-epochs", "0", "--no-openvino", "--progress-file", str(events),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    events_seen = [json.loads(line) for line in events.read_text().splitlines()]
    phases = [e["phase"] for e in events_seen if e["event"] == "phase"]
    assert "fine_tune" not in phases and "conv4 activations" not in result.stdout
    metrics = json.loads((tmp_path / "store" / "1" / "metadata.json").read_text())["metrics"]
    assert metrics["trained_on"] == 10 and "fine_tuning" not in metrics


@pytest.mark.slow
def test_a_model_fine_tuned_alone_says_what_its_accuracy_measured(tmp_path: Path) -> None:
    data = write_class_folders(tmp_path / "data", {"cats": 5, "dogs": 5})
    result = _train_cli(
        "--data-dir", str(data), "--model-store", str(tmp_path / "store"), *FAST,
        "--fine-tune-epochs", "1", "--no-fine-tune-in-folds", "--no-openvino",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "3-fold cross-validation over 10 photos, the head alone" in result.stdout
    assert "fine_tune epoch 1/1" in result.stdout
    assert "fine-tuned           conv5, 1 epoch, the published model only" in result.stdout
    assert "(the accuracy is the head's; fine-tuning added 0.0099" in result.stdout
    metadata = json.loads((tmp_path / "store" / "1" / "metadata.json").read_text())
    fine_tuning = metadata["metrics"]["fine_tuning"]
    assert fine_tuning["published"] is True and fine_tuning["epochs"] == 1
    assert "the head's alone" in fine_tuning["measured"]
    assert fine_tuning["measured_once"]["gain"] == 0.0099
    # the last of the 3 folds was kept out of the published model's fine-tuning, to judge it
    held_out = fine_tuning["held_out"]
    assert held_out["photos"] + metadata["metrics"]["trained_on"] == 10
    assert held_out["head_alone"] == metadata["metrics"]["fold_accuracies"][-1]
    kept_out = f"on the {held_out['photos']} photos it kept out: {held_out['fine_tuned']:.4f}"
    assert kept_out in result.stdout
    assert metadata["training"]["fine_tune_in_folds"] is False
