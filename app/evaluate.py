"""``python -m app.evaluate``: measure a training recipe by k-fold cross-validation, publish
nothing.

The features come from the same cache as training (computed once, then read), so comparing
recipes on cached features takes seconds to minutes.  ``--seeds 1,2`` repeats the
cross-validation on other partitions of the photos: choose a recipe on one partition, report it
on others, never on the folds it was chosen with.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from app import options
from app.config import Settings, SettingsError, load_settings
from app.options import OptionError, TrainOptions
from app.train import EXIT_USAGE, add_source_arguments, load_dataset, train_config
from app.training.dataset import DatasetError, DatasetUnavailable
from app.training.progress import Reporter
from app.training.weights import WeightsUnavailable

if TYPE_CHECKING:
    from app.training.crossval import Measured

# (fold seed, what was measured, its classification report, seconds)
Result = tuple[int, "Measured", dict[str, Any], float]


def build_parser(settings: Settings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m app.evaluate",
        description=(__doc__ or "").replace("``", ""),
        formatter_class=options.HelpFormatter,
    )
    add_source_arguments(parser, settings)
    options.add_arguments(parser, TrainOptions, leave_out=options.PUBLISHING)
    parser.add_argument(
        "--seeds",
        type=lambda text: [int(seed) for seed in text.split(",")],
        default=None,
        help="comma-separated fold seeds to repeat the cross-validation with (default: --seed)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings()
        args = build_parser(settings).parse_args(argv)
        return _run(args, settings, Reporter())
    except (
        SettingsError,
        OptionError,
        DatasetError,
        DatasetUnavailable,
        WeightsUnavailable,
    ) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE


def _run(args: argparse.Namespace, settings: Settings, reporter: Reporter) -> int:
    train_options = options.from_arguments(args, TrainOptions)
    timings: dict[str, float] = {}
    data = load_dataset(args, train_options, reporter, timings)
    from app.training import pipeline  # TensorFlow, once the photos are known to be usable

    train_options = _measurable(train_options, reporter)
    config = train_config(args, settings, train_options, data)
    prepared = pipeline.prepare(config, data, reporter, timings)
    results: list[Result] = []
    for seed in args.seeds or [train_options.seed]:
        started = time.monotonic()
        measured, report = pipeline.evaluate(
            prepared, train_options.model_copy(update={"seed": seed}), data, reporter, timings
        )
        results.append((seed, measured, report, time.monotonic() - started))
    reporter.line(_summary(train_options, results, timings))
    return 0


def _measurable(train_options: TrainOptions, reporter: Reporter) -> TrainOptions:
    """The recipe the folds can measure.  A fine-tuning after the folds (the default) happens
    to a published model only, and nothing is published here: the folds measure the head
    alone, so neither conv4's activations nor the fine-tuning's time are spent on it."""
    from app.training.recipe import tunes_after_folds

    if not tunes_after_folds(train_options):
        return train_options
    reporter.line(
        f"conv5's fine-tuning ({train_options.fine_tune_epochs} epochs) happens after the folds, "
        "to a published model only: the folds measure the head alone (--fine-tune-in-folds "
        "measures the fine-tuned recipe in every fold; app.train judges it on its kept-out fold)"
    )
    return train_options.model_copy(update={"fine_tune_epochs": 0})


def _summary(train_options: TrainOptions, results: list[Result], timings: dict[str, float]) -> str:
    shown = train_options.model_dump(exclude={"activate", "openvino", "mixed_precision"})
    lines = ["", "Cross-validation", f"  recipe  {shown}"]
    for seed, measured, _, seconds in results:
        lines.append(f"  seed {seed:<4} {measured.describe()}  ({seconds:.1f}s)")
    means = [measured.accuracy for _, measured, _, _ in results]
    if len(means) > 1:
        lines.append(f"  over {len(means)} partitions: {np.mean(means):.4f} +- {np.std(means):.4f}")
    per_class = results[0][2]["per_class"]
    lines += ["", f"  {'class':<16}{'precision':>10}{'recall':>9}{'f1':>8}{'support':>9}"]
    for name, scores in per_class.items():
        lines.append(
            f"  {name:<16}{scores['precision']:>10.3f}{scores['recall']:>9.3f}"
            f"{scores['f1']:>8.3f}{scores['support']:>9}"
        )
    lines += ["", f"  {'phase':<16}{'seconds':>10}"]
    lines += [f"  {phase:<16}{seconds:>10.1f}" for phase, seconds in timings.items()]
    return "\n".join(lines)


_USER_ERRORS = (SettingsError, OptionError, DatasetError, DatasetUnavailable, WeightsUnavailable)

if __name__ == "__main__":
    sys.exit(main())
