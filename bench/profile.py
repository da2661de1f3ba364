"""``python -m bench.profile``: where the service's time goes under load, by py-spy and by the
kernel's CPU counters.

Starts the real server (``python -m app.serve``) on the store's active version, puts
``--concurrency`` closed-loop clients of one photo each on ``/predict``, and samples the server
with py-spy meanwhile (``py-spy record --format raw``, every thread, idle excluded). Prints the
throughput and the top frames: by their own time (the leaf frame: where the CPU was) and by their
inclusive time within the app's own code; writes the collapsed stacks for a flame graph. Then
where the cores went (``bench.cpu``): the CPU each thread group of the server really ran, the
load generator's, and the idle; each busy thread's share of the time on a core, ready but
waiting for a core, and asleep; and how busy the engine was (its batches' wall time). With
``--no-sampling`` only the latter, without py-spy's own cost on the same cores.

py-spy reads the server's memory (ptrace): run it as root or with CAP_SYS_PTRACE.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

from app.options import HelpFormatter, positive
from bench import cpu, load, server

_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*)\)$")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.profile",
        description=(__doc__ or "").replace("``", ""),
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--store", type=Path, required=True, help="model store to serve")
    parser.add_argument(
        "--photos",
        type=Path,
        default=server.REPO.parent / "shared/datasets/flower_photos_dev",
        help="folder of class folders of photos; the clients send its first 64",
    )
    parser.add_argument(
        "--engine",
        default="openvino",
        help="engine[:precision], as bench --engines (e.g. openvino:int8)",
    )
    parser.add_argument(
        "--concurrency", type=positive(int), default=16, help="clients, one photo each"
    )
    parser.add_argument(
        "--seconds", type=positive(float), default=20.0, help="seconds sampled under load"
    )
    parser.add_argument("--rate", type=positive(int), default=200, help="py-spy samples per second")
    parser.add_argument("--top", type=positive(int), default=15, help="frames listed in each table")
    parser.add_argument(
        "--no-sampling",
        action="store_true",
        help="no py-spy record: only where the cores went (py-spy's sampling takes CPU too)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("profile.txt"), help="collapsed stacks written here"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    spy = py_spy()
    from bench.__main__ import photos

    kind, _, precision = args.engine.partition(":")
    settings = {"engine": kind, "queue_limit": "256"}
    if precision:
        settings["engine_precision"] = precision
    bodies = load.multipart_bodies(photos(args.photos), 1, 64)
    with server.serving(args.store, settings) as base:
        pid = server.pid_of(base)
        asyncio.run(load.run(base, bodies, args.concurrency, 1, 3.0))  # warm
        record = [
            spy, "record", "--pid", str(pid), "--duration", str(int(args.seconds)),
            "--rate", str(args.rate), "--format", "raw", "--nolineno", "--threads",
            "--output", str(args.out), "--nonblocking",
        ]  # fmt: skip
        sampler = threading.Thread(
            target=subprocess.run, args=(record,), kwargs={"capture_output": True}
        )
        if not args.no_sampling:
            sampler.start()
        engine_before, before = server.engine_counters(base), cpu.snapshot(pid)
        result = asyncio.run(load.run(base, bodies, args.concurrency, 1, args.seconds + 1))
        after, engine_after = cpu.snapshot(pid), server.engine_counters(base)
        dumped = subprocess.run([spy, "dump", "--pid", str(pid)], capture_output=True, text=True)
        if not args.no_sampling:
            sampler.join()
    print(
        f"{args.engine} at c={args.concurrency}: {result.images_per_s:.1f} img/s, p50 "
        f"{result.percentile(50):.0f} ms, errors {result.errors or 0}"
    )
    if not args.no_sampling:
        print(report(args.out.read_text(), args.top))
        print(f"collapsed stacks: {args.out}")
    print()
    names = cpu.thread_names(dumped.stdout)
    print(cpu.split(before, after, result.seconds, result.images, names))
    print()
    print(cpu.states(before, after, result.seconds, names))
    print(engine_busy(engine_before, engine_after, result.seconds))
    return 0


def py_spy() -> str:
    """The py-spy beside this interpreter (the dev extra installs it into the virtual environment,
    whose bin/ need not be on PATH), else the one on PATH; a clear exit when there is none."""
    beside = Path(sys.executable).with_name("py-spy")
    found = str(beside) if beside.is_file() else shutil.which("py-spy")
    if found is None:
        raise SystemExit(
            f"py-spy is not installed beside {sys.executable} or on PATH "
            "(pip install -e '.[dev]', or pip install py-spy)"
        )
    return found


def engine_busy(
    before: tuple[float, float, float], after: tuple[float, float, float], seconds: float
) -> str:
    """How long the engine's batches ran (wall time, all streams together), their count and
    mean size, from the server's counters (``server.engine_counters``)."""
    images, calls, busy = (b - a for a, b in zip(before, after, strict=True))
    if not calls:
        return "the engine ran no batch"
    return (
        f"engine: batches ran {busy:.2f} s of {seconds:.1f} ({busy / seconds:.0%}, all streams "
        f"together); {calls:.0f} batches of {images / calls:.2f} images, "
        f"{1000 * busy / calls:.1f} ms each"
    )


def report(collapsed: str, top: int) -> str:
    """Tables of the top frames in py-spy's collapsed stacks (``frame;frame;... count``)."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.splitlines():
        match = _LINE.match(line.strip())
        if not match:
            continue
        count = int(match["count"])
        thread, *frames = match["stack"].split(";")
        total += count
        threads[_thread_name(thread)] += count
        if frames:
            own[_short(frames[-1])] += count
        for frame in {_short(f) for f in frames if "(app/" in f or "/app/" in f}:
            inclusive[frame] += count
    if not total:
        return "no samples (is the server busy, and may py-spy attach to it?)"
    lines = [f"{total} samples of busy threads"]
    for title, counter in (
        ("by thread", threads),
        ("own time (where the CPU was)", own),
        ("inclusive time, the app's own frames", inclusive),
    ):
        lines += ["", f"| {title} | share |", "|---|---:|"]
        lines += [f"| `{name}` | {count / total:.1%} |" for name, count in counter.most_common(top)]
    return "\n".join(lines)


def _thread_name(frame: str) -> str:
    # py-spy: 'process 123:"python -m app.serve"' or 'thread (0x7f..)' or 'thread-name (0x..)'
    return re.sub(r"\s*\(0x[0-9a-f]+\)$", "", frame.strip()) or "thread"


def _short(frame: str) -> str:
    match = _FRAME.match(frame)
    if not match:
        return frame
    path = match["file"]
    for marker in ("/site-packages/", "/lib/python3", "/work/main/", "/app/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match['function']} ({path})"


if __name__ == "__main__":
    raise SystemExit(main())
