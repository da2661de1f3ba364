"""``flowers-predict`` (``python -m app.predict``): classify image files, folders or glob
patterns with the store's active version in this process, or through a running server with
``--url``; print a table, or write CSV or JSON with each file's top-k classes.

The images are decoded by the server's own preprocessing and run in the engine the server would
choose (FLOWERS_ENGINE, FLOWERS_ENGINE_PRECISION), with its limits on a file's bytes and pixels
(FLOWERS_MAX_UPLOAD_BYTES, FLOWERS_MAX_IMAGE_PIXELS).  Exit status: 0 when every file was
classified, 1 when some could not be read (0 with --skip-bad), 2 for a usage error, a store
without a version or a server that cannot be reached, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final, TextIO

from app.config import Settings, SettingsError, load_settings
from app.inference import memory
from app.options import positive
from app.scoring import report
from app.scoring.inputs import NoInputs, collect
from app.scoring.results import Result, Scored, Scorer, ScoringError, Unreadable
from app.training.progress import Reporter

EXIT_UNREADABLE: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130
EXIT_BROKEN_PIPE: Final = 141  # 128 + SIGPIPE, what a reader's exit gives any other tool
WRITERS: Final[dict[str, report.Writer]] = {"csv": report.write_csv, "json": report.write_json}


def build_parser(settings: Settings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flowers-predict",
        description=(__doc__ or "").replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="image files, folders "
        "(their images, recursively) or quoted glob patterns ('photos/**/*.jpg')",
    )
    source = parser.add_argument_group("where the model runs")
    source.add_argument(
        "--url",
        help="classify through the server at URL (e.g. "
        "http://localhost:8000) instead of in this process",
    )
    source.add_argument(
        "--protocol",
        choices=("rest", "v2"),
        default="rest",
        help="with --url: POST /predict (rest, the default) or the Open "
        "Inference Protocol's /v2/models/MODEL/infer (v2)",
    )
    source.add_argument(
        "--model", default="flowers", help="with --protocol v2: the model's name (default: flowers)"
    )
    source.add_argument(
        "--timeout",
        type=positive(float),
        default=60.0,
        metavar="SECONDS",
        help="with --url: each call must be answered within this time (default: 60)",
    )
    source.add_argument(
        "--model-store",
        type=Path,
        default=settings.model_store,
        help=f"without --url: the store to read (default: {settings.model_store}"
        ", env FLOWERS_MODEL_STORE)",
    )
    source.add_argument(
        "--version",
        type=positive(int),
        dest="number",
        metavar="N",
        help="without --url: this version instead of the active one",
    )
    output = parser.add_argument_group("output")
    output.add_argument(
        "--top-k",
        type=positive(int),
        default=3,
        metavar="K",
        help="classes shown per file, most probable first (default: 3)",
    )
    formats = output.add_mutually_exclusive_group()
    for kind in WRITERS:
        formats.add_argument(
            f"--{kind}",
            nargs="?",
            const="-",
            metavar="PATH",
            help=f"write {kind.upper()} to PATH (default: standard output) instead of the table",
        )
    output.add_argument(
        "--skip-bad",
        action="store_true",
        help="leave out files that cannot "
        "be read or decoded, and exit 0 (default: list them and exit 1)",
    )
    output.add_argument(
        "--batch-size",
        type=positive(int),
        default=settings.max_batch_size,
        help="files per model call, or per request with --url (default: "
        f"{settings.max_batch_size}, env FLOWERS_MAX_BATCH_SIZE)",
    )
    output.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings()
        parser = build_parser(settings)
        args = parser.parse_args(argv)
        _check(parser, args)
        return _run(args, settings.model_copy(update={"model_store": args.model_store}))
    except (SettingsError, NoInputs, ScoringError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted: nothing written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as cat would
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _run(args: argparse.Namespace, settings: Settings) -> int:
    paths = collect(args.paths)
    started = time.monotonic()
    scorer = _scorer(args, settings)
    ready = time.monotonic()
    progress = None if args.quiet else Reporter(sys.stderr)
    results = list(_score(scorer, paths, progress))
    seconds = (ready - started, time.monotonic() - ready)
    _write(args, results, scorer.classes)
    bad = [result for result in results if isinstance(result, Unreadable)]
    for result in bad:
        print(
            f"{'skipped' if args.skip_bad else 'error'}: {result.path}: {result.reason}",
            file=sys.stderr,
        )
    if not args.quiet:
        print(_summary(results, seconds, scorer), file=sys.stderr)
    return EXIT_UNREADABLE if bad and not args.skip_bad else 0


def _scorer(args: argparse.Namespace, settings: Settings) -> Scorer:
    if args.url is None:
        from app.scoring.local import LocalScorer  # TensorFlow or OpenVINO: only to run here

        with memory.startup():  # its imports; the one model of the run is frozen too: harmless
            return LocalScorer(
                settings.model_copy(update={"max_batch_size": args.batch_size}), args.number
            )
    from app.scoring.remote import RestScorer, V2Scorer

    limits = (args.batch_size, args.timeout, settings.max_upload_bytes)
    if args.protocol == "v2":
        return V2Scorer(args.url, args.model, *limits)
    return RestScorer(args.url, *limits)


def _score(scorer: Scorer, paths: list[Path], progress: Reporter | None) -> Iterator[Result]:
    size = scorer.batch_size
    for start in range(0, len(paths), size):
        yield from scorer.score(paths[start : start + size])
        if progress is not None:
            progress.progress(min(start + size, len(paths)), len(paths), unit="images")


def _write(args: argparse.Namespace, results: list[Result], classes: list[str]) -> None:
    kind = "csv" if args.csv else "json" if args.json else None
    top_k = min(args.top_k, len(classes)) if classes else 1
    if kind is None:
        report.write_table(sys.stdout, results, classes, top_k)
        return
    with _opened(getattr(args, kind)) as stream:
        WRITERS[kind](stream, results, classes, top_k)


@contextlib.contextmanager
def _opened(name: str) -> Iterator[TextIO]:
    if name == "-":
        yield sys.stdout
        return
    with open(name, "w", encoding="utf-8", newline="") as stream:
        yield stream


def _summary(results: list[Result], seconds: tuple[float, float], scorer: Scorer) -> str:
    scored = [result for result in results if isinstance(result, Scored)]
    versions = sorted({result.version for result in scored}, key=lambda v: (len(v), v))
    starting, scoring = seconds
    rate = len(results) / scoring if scoring > 0 else 0.0
    return (
        f"{len(scored)} classified, {len(results) - len(scored)} unreadable, in {scoring:.1f} s "
        f"({rate:.1f} images/s, after {starting:.1f} s to start) by {scorer.describe()}: "
        f"model version {', '.join(versions) or 'none'}"
    )


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.url is None and (args.protocol != "rest" or args.model != "flowers"):
        parser.error("--protocol and --model need --url")
    if args.url is not None and args.number is not None:
        parser.error("--version reads the local store: it cannot be used with --url")


if __name__ == "__main__":
    sys.exit(main())
