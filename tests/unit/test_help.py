"""Every command's --help: each option says what it does, defaults only where they tell
something, the settings named, and no option a command does not use; every number a command
takes is checked when it is parsed."""

from __future__ import annotations

import argparse
import re
import sys

import pytest

from app import evaluate, predict, serve, train
from app.cluster import local
from app.config import Settings
from app.options import TrainOptions
from bench import __main__ as bench
from bench import contention, passes, profile

SETTINGS = Settings()
PARSERS = {
    "train": lambda: train.build_parser(SETTINGS),
    "evaluate": lambda: evaluate.build_parser(SETTINGS),
    "serve": serve.build_parser,
    "predict": lambda: predict.build_parser(SETTINGS),
    "bench": bench.build_parser,
    "bench.passes": passes.build_parser,
    "bench.contention": contention.build_parser,
    "bench.profile": profile.build_parser,
    "cluster.local": local.build_parser,
}


def _parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += _parsers(sub)
    return found


@pytest.mark.parametrize("name", PARSERS)
def test_every_option_has_help_and_no_empty_default(name: str) -> None:
    for parser in _parsers(PARSERS[name]()):
        text = " ".join(parser.format_help().split())
        assert "(default: None)" not in text and "(default: False)" not in text, parser.prog
        assert not re.search(r"\(default: [^)]*\) \(default:", text), parser.prog  # twice
        for action in parser._actions:
            if not isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                assert action.help, f"{parser.prog} {action.option_strings or action.dest}"


def test_evaluate_lists_no_publishing_option() -> None:
    text = PARSERS["evaluate"]().format_help()
    assert "--activate" not in text and "--openvino" not in text
    assert "--fine-tune-epochs" in text  # the recipe stays


def test_train_says_what_it_does_by_default() -> None:
    text = " ".join(PARSERS["train"]().format_help().split())
    assert "fine-tune an ImageNet" not in text
    assert "By default a linear classifier is cross-validated on the frozen backbone's" in text
    assert "(conv5) is fine-tuned with it (--fine-tune-epochs)" in text
    assert "--fine-tune-epochs 0 skips the fine-tuning (the fast path)" in text


def test_the_script_name_is_the_one_called(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["/venv/bin/flowers-train", "--help"])
    assert PARSERS["train"]().format_usage().startswith("usage: flowers-train ")
    monkeypatch.setattr(sys, "argv", ["/repo/app/train.py", "--help"])
    assert PARSERS["train"]().format_usage().startswith("usage: python -m app.train ")


def test_serve_shows_its_defaults_and_every_setting() -> None:
    text = PARSERS["serve"]().format_help()
    assert "HTTP port to listen on (default: 8000)" in text
    for name in Settings.model_fields:
        assert f"  FLOWERS_{name.upper()}=" in text


def test_cluster_examples_keep_their_lines() -> None:
    lines = PARSERS["cluster.local"]().format_help().splitlines()
    assert any(line.strip().startswith("python -m app.cluster.local up deploy/") for line in lines)
    assert any(
        line.strip().startswith("python -m app.cluster.local deploy CONFIG") for line in lines
    )


@pytest.mark.parametrize("name", PARSERS)
def test_no_number_is_taken_unchecked(name: str) -> None:
    # a bare int or float lets 0, -1 or nan through to a traceback deep in the command; the
    # recipe's own options are checked by TrainOptions' bounds instead
    for parser in _parsers(PARSERS[name]()):
        for action in parser._actions:
            if action.dest not in TrainOptions.model_fields:
                assert action.type not in (int, float), f"{parser.prog} {action.option_strings}"


@pytest.mark.parametrize(
    ("name", "argv", "message"),
    [
        ("bench", ["--rounds", "0"], "argument --rounds: 0: give a number above 0"),
        ("bench", ["--concurrency", "1,0"], "argument --concurrency: 0: give a number above 0"),
        ("bench", ["--duration", "nan"], "argument --duration: nan: give a number above 0"),
        ("bench", ["--max-batch-delay-ms", "-1"], "-1: give 0 or more"),
        ("bench.passes", ["--store", "s", "--batch-size", "0"], "0: give a number above 0"),
        ("bench.passes", ["--store", "s", "--layers", "-1"], "-1: give 0 or more"),
        ("bench.contention", ["--store", "s", "--seconds", "-2"], "-2: give a number above 0"),
        ("bench.profile", ["--store", "s", "--concurrency", "x"], "'x': not a whole number"),
        ("serve", ["--port", "70000"], "70000: give a number from 1 to 65535"),
        ("train", ["--keep-versions", "-1"], "-1: give 0 or more"),
        ("train", ["--nice", "20"], "20: give a number from 0 to 19"),
        ("predict", ["--timeout", "inf", "x.jpg"], "inf: give a number above 0"),
        ("cluster.local", ["up", "c.yaml", "--nodes", "0"], "0: give a number above 0"),
    ],
)
def test_a_number_out_of_range_is_a_usage_error(
    name: str, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        PARSERS[name]().parse_args(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
