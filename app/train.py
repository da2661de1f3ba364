"""``flowers-train`` (``python -m app.train``): adapt an ImageNet ResNet-50 to flower photos (or
any folder of class sub-folders) by transfer learning, and publish the result as a new version in
the model store.  By default a linear classifier is cross-validated on the frozen backbone's
features, then the published model's last stage (conv5) is fine-tuned with it
(``--fine-tune-epochs``) and judged on the fold that fine-tuning kept out;
``--fine-tune-epochs 0`` skips the fine-tuning (the fast path), ``--fine-tune-in-folds``
fine-tunes in every fold too.
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from app import options
from app.config import Settings, SettingsError, load_settings
from app.events import EventKind, Published
from app.options import OptionError, TrainOptions
from app.store.versions import StoreError
from app.training import dataset as datasets
from app.training import evalset
from app.training.dataset import DatasetError, DatasetUnavailable
from app.training.progress import Reporter
from app.training.weights import WeightsUnavailable

if TYPE_CHECKING:
    from app.training.pipeline import TrainConfig

EXIT_USAGE = 2
PR_SET_PDEATHSIG = 1
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


def build_parser(settings: Settings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=options.program_name("app.train"),
        description=(__doc__ or "").replace("``", ""),
        formatter_class=options.HelpFormatter,
    )
    add_source_arguments(parser, settings)
    options.add_arguments(parser, TrainOptions)
    output = parser.add_argument_group("output")
    output.add_argument(
        "--no-activate",
        dest="activate",
        action="store_const",
        const="never",
        default=argparse.SUPPRESS,
        help="publish without activating (same as --activate never)",
    )
    output.add_argument(
        "--eval-dir",
        type=Path,
        default=settings.eval_dir,
        help="a folder of labelled photos never trained on (class sub-folders; env "
        "FLOWERS_EVAL_DIR): the new version is scored on it, and --activate if_better compares "
        "it with the active version on those photos",
    )
    output.add_argument(
        "--keep-versions",
        type=options.in_range(int, 0),
        default=settings.keep_versions,
        help="after publishing, keep the newest N versions plus the active one and delete the "
        "rest (env FLOWERS_KEEP_VERSIONS); 0: keep every version",
    )
    output.add_argument(
        "--progress-file",
        type=Path,
        default=None,
        help="append machine-readable progress events (JSON lines) to this file",
    )
    process = parser.add_argument_group("process (used by the server's retrain jobs)")
    process.add_argument(
        "--nice",
        type=options.in_range(int, 0, 19),
        default=0,
        help="lower this process's CPU priority by N (serving keeps precedence)",
    )
    process.add_argument(
        "--job-id", default=None, help="the server's job id, recorded in the version's metadata"
    )
    process.add_argument(
        "--die-with-parent",
        action="store_true",
        help="exit (SIGTERM) when the parent process dies (Linux)",
    )
    return parser


def add_source_arguments(parser: argparse.ArgumentParser, settings: Settings) -> None:
    """The photos, the backbone's weights and where models and caches live (not the recipe)."""
    data = parser.add_argument_group("data")
    data.add_argument(
        "--data-dir",
        type=Path,
        default=settings.data_dir,
        help="folder of class sub-folders of images (env FLOWERS_DATA_DIR); "
        "unset: download the TensorFlow flower_photos dataset",
    )
    data.add_argument(
        "--seed-dataset",
        action="store_true",
        help="when --data-dir is missing or has no class folders, fill it with the "
        "flower_photos dataset first (Docker's first run)",
    )
    data.add_argument(
        "--weights",
        default="imagenet",
        help="backbone weights: imagenet (env RESNET50_WEIGHTS points at a local "
        "file), none (random, for tests), or a path to a Keras .h5 file",
    )
    output = parser.add_argument_group("where")
    output.add_argument(
        "--model-store",
        type=Path,
        default=settings.model_store,
        help="the model store folder (env FLOWERS_MODEL_STORE)",
    )
    output.add_argument(
        "--feature-cache",
        type=Path,
        default=None,
        help="backbone feature cache (env FLOWERS_FEATURE_CACHE); "
        "default: <model-store>/.cache/features",
    )


def load_dataset(
    args: argparse.Namespace,
    train_options: TrainOptions,
    reporter: Reporter,
    timings: dict[str, float],
) -> datasets.Dataset:
    """List and hash the photos (downloading or seeding them first when asked); refuse at once
    classes too small for the recipe."""
    reporter.phase("scan", "listing and hashing the dataset images")
    scan_started = time.monotonic()
    root = args.data_dir or datasets.default_data_dir()
    if getattr(args, "seed_dataset", False) and not datasets.has_classes(root):
        reporter.line(f"  {root} is empty: copying the flower_photos dataset into it")
        datasets.seed_with_flower_photos(root)
    data = datasets.scan(root)
    minimum = max(datasets.MIN_IMAGES_PER_CLASS, train_options.folds)
    datasets.require_class_sizes(data.counts(), minimum)  # fail fast: before any decoding
    timings["scan"] = round(time.monotonic() - scan_started, 2)
    reporter.line(
        f"  {len(data.samples)} images in {len(data.class_names)} classes: {data.counts()}"
    )
    return data


def train_config(
    args: argparse.Namespace,
    settings: Settings,
    train_options: TrainOptions,
    data: datasets.Dataset,
) -> TrainConfig:
    """The pipeline's configuration from the parsed source arguments and the settings."""
    from app.training.pipeline import TrainConfig  # TensorFlow: only once the data is usable

    return TrainConfig(
        options=train_options,
        model_store=args.model_store,
        feature_cache=args.feature_cache or settings.feature_cache_dir(args.model_store),
        data_dir=data.root,
        weights=args.weights,
        precision=settings.engine_precision,
        job_id=getattr(args, "job_id", None),
        eval_dir=getattr(args, "eval_dir", None),  # the train CLI's: not app.evaluate's
    )


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings()
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    args = build_parser(settings).parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    reporter = Reporter(events_path=args.progress_file)
    run = _RunState()
    try:
        _set_process_options(args)
        return _run(args, settings, reporter, run)
    except (KeyboardInterrupt, Terminated) as stop:
        code = EXIT_TERMINATED if isinstance(stop, Terminated) else EXIT_INTERRUPTED
        message = _stopped(run, _cached_features(args, settings))
        reporter.event(EventKind.FAILED, error=message)
        print(message, file=sys.stderr)
        return code
    except _USER_ERRORS as error:
        reporter.event(EventKind.FAILED, error=str(error))
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as error:  # unexpected: report it, then let the traceback reach the log
        reporter.event(EventKind.FAILED, error=f"{type(error).__name__}: {error}")
        raise


class Terminated(BaseException):
    """SIGTERM: unwind like Ctrl-C (the staging folder is removed; nothing is published)."""


@dataclass
class _RunState:
    published: int | None = None  # the version, once it is in the store


def _set_process_options(args: argparse.Namespace) -> None:
    if args.nice:
        os.nice(args.nice)
    if args.die_with_parent and sys.platform == "linux":
        parent = os.getppid()
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl took effect
            raise Terminated


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def _stopped(run: _RunState, cached: int) -> str:
    """The one line an interrupted run prints: what was kept."""
    if run.published is not None:
        return f"training interrupted after publishing version {run.published}"
    return f"training interrupted; nothing published; {cached} features cached for the next run"


def _cached_features(args: argparse.Namespace, settings: Settings) -> int:
    """Photo features (and activations) the cache holds for today's preprocessing."""
    from app import imaging

    root = args.feature_cache or settings.feature_cache_dir(args.model_store)
    return sum(1 for _ in (root / imaging.PREPROCESSING_VERSION).rglob("*.npy"))


def _run(args: argparse.Namespace, settings: Settings, reporter: Reporter, run: _RunState) -> int:
    train_options = options.from_arguments(args, TrainOptions)
    started = time.monotonic()
    timings: dict[str, float] = {}
    data = load_dataset(args, train_options, reporter, timings)
    if args.eval_dir is not None:  # a wrong folder fails now, not after the training
        evalset.check(args.eval_dir, data.class_names)
    # Heavy imports (TensorFlow) only once the data is known to be usable: bad input fails fast.
    from app.store.versions import ModelStore
    from app.training import pipeline as training
    from app.training import publishing, summary

    config = train_config(args, settings, train_options, data)
    trained = training.train(config, data, reporter, timings)
    store = ModelStore(config.model_store)
    try:
        with training.timed(timings, "publish"):
            version, activation = publishing.publish(trained, store, reporter, _hold_cancel)
            run.published = version.number
            publishing.apply_retention(store, args.keep_versions, reporter)
        timings["total"] = round(time.monotonic() - started, 2)
        published = Published(
            version=version.number,
            activated=activation.activate,
            reason=activation.reason,
            val_accuracy=version.metadata.val_accuracy,
        )
        reporter.event(EventKind.SUCCEEDED, **published.model_dump())
    finally:
        _release_cancel()  # a cancel that came while publishing takes effect now
    reporter.line(summary.render(trained, version, activation))
    return 0


_CANCEL_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})


def _hold_cancel() -> None:
    """From the moment a version is renamed into the store until its success is reported, a
    cancel waits: the job's record then tells what happened (published, or nothing)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, _CANCEL_SIGNALS)


def _release_cancel() -> None:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _CANCEL_SIGNALS)


_USER_ERRORS = (OptionError, DatasetError, DatasetUnavailable, WeightsUnavailable, StoreError)

if __name__ == "__main__":
    sys.exit(main())
