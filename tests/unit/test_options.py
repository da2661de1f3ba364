"""One definition per training option: the CLI, the admin API's body, a job's command line and
the published metadata all come from TrainOptions."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import Field

from app import options
from app.config import Settings
from app.jobs.trainers import retrain_command
from app.options import OptionError, TrainOptions


class WithWarmup(TrainOptions):
    """A harmless new option, declared once as a developer would add it to TrainOptions."""

    warmup_epochs: int = Field(2, ge=0, le=9, description="epochs of learning-rate warm-up")


def _parser(kind: type[TrainOptions]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    options.add_arguments(parser, kind)
    return parser


def test_a_new_option_reaches_the_cli_the_api_the_job_and_the_metadata() -> None:
    parsed = options.from_arguments(
        _parser(WithWarmup).parse_args(["--warmup-epochs", "4"]), WithWarmup
    )
    assert isinstance(parsed, WithWarmup) and parsed.warmup_epochs == 4  # CLI
    schema = options.request_model(WithWarmup).model_json_schema()["properties"]
    assert schema["warmup_epochs"] == {  # the admin API's body, with the same bounds and help
        "default": 2,
        "description": "epochs of learning-rate warm-up",
        "maximum": 9,
        "minimum": 0,
        "title": "Warmup Epochs",
        "type": "integer",
    }
    argv = options.to_argv(parsed)  # the job's command line
    assert argv[argv.index("--warmup-epochs") + 1] == "4"
    assert options.from_arguments(_parser(WithWarmup).parse_args(argv), WithWarmup) == parsed
    assert parsed.model_dump(mode="json")["warmup_epochs"] == 4  # what metadata records


@pytest.mark.parametrize(
    ("name", "value"), [("epochs", 0), ("epochs", 201), ("validation_split", 0.9), ("dropout", 1.0)]
)
def test_the_api_and_the_cli_refuse_the_same_values(name: str, value: float) -> None:
    with pytest.raises(ValueError, match=name):
        options.request_model()(**{name: value})
    flag = f"--{name.replace('_', '-')}"
    with pytest.raises(OptionError, match=flag):
        options.from_arguments(_parser(TrainOptions).parse_args([flag, str(value)]), TrainOptions)


def test_the_api_takes_json_types_only() -> None:
    for bad in ({"seed": False}, {"epochs": "10"}):
        with pytest.raises(ValueError, match="must be a JSON number"):
            options.request_model()(**bad)
    for bad in ({"openvino": 0}, {"mixed_precision": "yes"}):
        with pytest.raises(ValueError, match="must be true or false"):
            options.request_model()(**bad)
    assert options.request_model()(epochs=10.0).epochs == 10


def test_the_api_takes_json_booleans_only() -> None:
    # schemathesis found `"openvino": 0` accepted as false (pydantic's lax mode)
    for bad in ({"openvino": 0}, {"mixed_precision": "yes"}):
        with pytest.raises(ValueError, match="must be true or false"):
            options.request_model()(**bad)
    assert options.request_model()(openvino=False).openvino is False


def test_only_the_documented_defaults_differ_between_cli_and_api() -> None:
    cli, api = TrainOptions(), options.request_model()()
    assert cli.activate == "always" and api.activate == "if_better"
    assert cli.model_dump(exclude={"activate"}) == api.model_dump(exclude={"activate"})


def test_a_job_command_line_reproduces_the_request(tmp_path: Path) -> None:
    settings = Settings(model_store=tmp_path / "store", data_dir=tmp_path / "data")
    recipe = options.request_model()(epochs=3, learning_rate=2.5e-4, openvino=False)
    argv = retrain_command(settings, recipe)
    assert argv[:7] == [
        sys.executable,
        *("-m", "app.train", "--model-store", str(tmp_path / "store"), "--weights", "imagenet"),
    ]
    assert ["--data-dir", str(tmp_path / "data")] == argv[-2:]
    parsed = _parser(TrainOptions).parse_known_args(argv[3:])[0]
    assert options.from_arguments(parsed, TrainOptions) == TrainOptions(**recipe.model_dump())


def test_a_job_applies_the_servers_retention(tmp_path: Path) -> None:
    from app.train import build_parser

    settings = Settings(model_store=tmp_path / "store", keep_versions=2)
    argv = retrain_command(settings, options.request_model()())
    assert build_parser(Settings()).parse_args(argv[3:]).keep_versions == 2


def test_a_job_scores_on_the_servers_evaluation_folder(tmp_path: Path) -> None:
    from app.train import build_parser

    held = tmp_path / "held"
    with_folder = Settings(model_store=tmp_path / "store", eval_dir=held)
    argv = retrain_command(with_folder, options.request_model()())
    assert build_parser(Settings()).parse_args(argv[3:]).eval_dir == held
    argv = retrain_command(Settings(model_store=tmp_path / "store"), options.request_model()())
    assert "--eval-dir" not in argv


def test_train_help_lists_every_option_once() -> None:
    help_text = subprocess.run(
        [sys.executable, "-m", "app.train", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    for name in TrainOptions.model_fields:
        assert (
            help_text.count(f"--{name.replace('_', '-')} ")
            + help_text.count(f"--{name.replace('_', '-')},")
            >= 1
        ), name
    assert "--openvino, --no-openvino" in help_text


def test_the_training_page_lists_every_option_as_the_code_defines_it() -> None:
    page = (Path(__file__).parents[2] / "docs" / "training.md").read_text()
    assert options.markdown_table() in page, "regenerate the table with: python -m app.options"


def test_the_options_table_names_a_new_option_with_its_bounds() -> None:
    class Extended(TrainOptions):
        mixup: float = Field(0.0, ge=0, le=1, description="mixup strength")

    row = options.markdown_table(Extended).splitlines()[-1]
    assert row == "| `--mixup` | `mixup` | `0.0` | 0 .. 1 | mixup strength |"
