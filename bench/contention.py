"""``python -m bench.contention``: how much the raw engine slows down beside other work on the same
cores, the service's decode threads in particular.

Loads the store's active version through the service's own engine classes (as ``python -m
bench`` does) and times one batch size alone, then beside one and two threads decoding photos
flat out (the service's ``preprocess``, as its decode pool runs it), beside one thread decoding
one photo every few milliseconds, and beside a thread that holds the GIL in pure Python for 1 ms
out of every 7 (about what the event loop does per photo at 16 clients); round after round, so
each ratio compares numbers taken seconds apart.  The engine runs one batch at a time on every
core (latency mode, ``FLOWERS_ENGINE_STREAMS=1``): each layer is split across the cores and waits
for the slower share, so a core taken away costs more than its share.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from app.options import HelpFormatter, positive
from app.store.versions import ModelStore
from bench import raw, server


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.contention",
        description=(__doc__ or "").replace("``", ""),
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--store", type=Path, required=True, help="model store to measure")
    parser.add_argument(
        "--photos",
        type=Path,
        default=server.REPO.parent / "shared/datasets/flower_photos_dev",
        help="folder of class folders of photos",
    )
    parser.add_argument(
        "--engine", default="openvino", help="engine[:precision], as bench --engines"
    )
    parser.add_argument("--batch-size", type=positive(int), default=8, help="images per call")
    parser.add_argument(
        "--rounds", type=positive(int), default=2, help="rounds, every neighbour in each"
    )
    parser.add_argument(
        "--seconds", type=positive(float), default=4.0, help="seconds per neighbour"
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    from app.imaging import preprocess

    kind, _, precision = args.engine.partition(":")
    engine = raw.load(ModelStore(args.store), kind, args.batch_size, precision or "auto")
    photos = [path.read_bytes() for path in sorted(args.photos.glob("*/*.jpg"))[:64]]
    if not photos:
        raise SystemExit(f"no photos in {args.photos}/*/*.jpg")
    batch = np.stack(
        [preprocess(photo) for photo in itertools.islice(itertools.cycle(photos), args.batch_size)]
    )
    stop = threading.Event()

    def decoding(pause_s: float) -> Callable[[], None]:
        def run() -> None:
            for photo in itertools.cycle(photos):
                if stop.is_set():
                    return
                preprocess(photo)
                if pause_s:
                    time.sleep(pause_s)

        return run

    def python_1_in_7_ms() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            while time.perf_counter() - started < 0.001:
                sum(range(100))
            time.sleep(0.006)

    neighbours: dict[str, list[Callable[[], None]]] = {
        "alone": [],
        "1 thread decoding flat out": [decoding(0)],
        "2 threads decoding flat out": [decoding(0), decoding(0)],
        "1 thread decoding a photo every 4 ms": [decoding(0.004)],
        "1 thread of pure Python, 1 ms in every 7": [python_1_in_7_ms],
    }
    timings: dict[str, list[float]] = {name: [] for name in neighbours}
    for _ in range(args.rounds):
        for name, work in neighbours.items():
            stop.clear()
            threads = [threading.Thread(target=target, daemon=True) for target in work]
            for thread in threads:
                thread.start()
            engine.predict(batch)  # let the neighbours start
            seconds = raw.seconds_per_call(lambda: engine.predict(batch), args.seconds)
            timings[name].append(seconds * 1000)
            stop.set()
            for thread in threads:
                thread.join()
    print(
        f"{engine.name} ({engine.precision}), batch {args.batch_size}, {args.rounds} rounds of "
        f"{args.seconds:g} s per neighbour, taking turns (median ms per batch)\n"
    )
    alone = statistics.median(timings["alone"])
    print("| beside the engine | ms per batch | slower than alone |\n|---|---:|---:|")
    for name, measured in timings.items():
        ms = statistics.median(measured)
        print(f"| {name} | {ms:.1f} | {ms / alone:.2f}x |")


if __name__ == "__main__":
    main()
