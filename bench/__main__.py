"""``python -m bench`` (``make bench``): raw engine throughput and the real service under load, in
one run on one machine, so the ratios between them mean something."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from app.options import HelpFormatter, comma_list, in_range, positive
from bench import accuracy, load, protocols, raw, report, server

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PHOTOS = REPO.parent / "shared" / "datasets" / "flower_photos_dev"
QUEUE_LIMIT = 256


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    if args.smoke:
        args.duration, args.concurrency, args.images_per_request = 1.0, [1, 4], [1]
        args.batch_sizes, args.rounds, args.raw_seconds = [1, 4], 1, 0.3
        args.protocol_concurrency = 4
    if args.out is None:
        args.out = REPO / "bench" / "results" / ("smoke" if args.smoke else "")
    return args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=(__doc__ or "").replace("``", ""),
        formatter_class=HelpFormatter,
    )
    counts = comma_list(positive(int))
    parser.add_argument(
        "--store",
        type=Path,
        default=Path(os.environ.get("FLOWERS_MODEL_STORE", "model_store")),
        help="the model store whose active version is measured (env FLOWERS_MODEL_STORE)",
    )
    parser.add_argument(
        "--photos", type=Path, default=DEFAULT_PHOTOS, help="folder of class folders of photos"
    )
    parser.add_argument(
        "--engines",
        default="openvino,tensorflow",
        help="engines to measure, comma-separated, each optionally with its precision "
        "(FLOWERS_ENGINE_PRECISION) and test-time flips (FLOWERS_TTA), e.g. "
        "openvino:int8,openvino:bf16,openvino:f32,openvino:auto:flip",
    )
    parser.add_argument(
        "--duration", type=positive(float), default=8.0, help="seconds per load level"
    )
    parser.add_argument(
        "--concurrency", type=counts, default=[1, 4, 16, 64], help="clients at each load level"
    )
    parser.add_argument(
        "--images-per-request", type=counts, default=[1, 8], help="images in each client request"
    )
    parser.add_argument(
        "--batch-sizes", type=counts, default=[1, 4, 8, 16, 32], help="raw engine batch sizes"
    )
    parser.add_argument(
        "--max-batch-size", type=positive(int), default=None, help="server setting; unset: its own"
    )
    parser.add_argument(
        "--max-batch-delay-ms",
        type=in_range(float, 0),
        default=None,
        help="server setting; unset: its own",
    )
    parser.add_argument(
        "--protocol-concurrency",
        type=positive(int),
        default=16,
        help="clients for /predict vs the Open Inference Protocol (V2 REST, gRPC)",
    )
    parser.add_argument(
        "--rounds", type=positive(int), default=2, help="interleaved rounds per load level"
    )
    parser.add_argument(
        "--raw-seconds", type=positive(float), default=3.0, help="seconds per raw batch size"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder; unset: bench/results, or bench/results/smoke with --smoke, so a "
        "smoke run never replaces the committed latest run",
    )
    parser.add_argument(
        "--smoke", action="store_true", help="a few seconds: keeps the harness working"
    )
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="also the service on a 2-node Ray Serve cluster on this machine, at 1 img/req "
        "(needs the ray extra)",
    )
    parser.add_argument(
        "--cluster-ingress", type=positive(int), default=1, help="Ingress (HTTP, decoding) replicas"
    )
    parser.add_argument(
        "--cluster-gpus",
        type=in_range(float, 0),
        default=0,
        help="GPUs of the one Model replica (e.g. 1)",
    )
    return parser


def photos(folder: Path) -> list[Path]:
    found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not found:
        raise SystemExit(f"no photos under {folder}")
    return found[:256]


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    from app.imaging import preprocess

    chosen = photos(args.photos)
    images = np.stack([preprocess(p.read_bytes()) for p in chosen[:64]])
    started = time.time()
    record: dict[str, Any] = {
        "started_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": _machine(),
        "duration_s": args.duration,
        "rounds": args.rounds,
        "queue_limit": QUEUE_LIMIT,
        "engines": [],
    }
    for engine in args.engines.split(","):
        print(f"== engine {engine}", flush=True)
        entry = _measure_engine(args, engine, chosen, images)
        entry["ratios"] = report.ratios(entry, QUEUE_LIMIT)
        record["engines"].append(entry)
    record["total_s"] = round(time.time() - started, 1)
    print("\n" + report.write(record, args.out))
    print(
        f"written: {args.out / 'latest.json'}, {args.out / 'latest.md'}, {args.out / 'latest.png'}"
    )
    return 0


def _measure_engine(
    args: argparse.Namespace, kind: str, chosen: list[Path], images: np.ndarray
) -> dict[str, Any]:
    from app.store.versions import ModelStore

    kind, precision, tta = [*kind.split(":"), "", ""][:3]
    store, largest = ModelStore(args.store), max(args.batch_sizes)
    engine = raw.load(store, kind, largest, precision or "auto", tta or "off")
    held_out = accuracy.recorded(store.get(engine.version), engine)  # the version it loaded
    print(f"  {accuracy.summary(held_out)}", flush=True)
    sweep = []
    for size in args.batch_sizes:
        sweep.append(raw.measure(engine, images, size, args.raw_seconds))
        r = sweep[-1]
        rate = f"{r['ms_per_batch']:8.1f} ms {r['images_per_s']:7.1f} img/s"
        print(f"  raw {engine.name} batch {size:>3}: {rate}", flush=True)
    best = max(sweep, key=lambda r: r["images_per_s"])["batch_size"]
    tuned: dict[str, str] = {"engine": kind, "queue_limit": str(QUEUE_LIMIT)}
    if precision:
        tuned["engine_precision"] = precision
    if tta:
        tuned["tta"] = tta
    if args.max_batch_size:
        tuned["max_batch_size"] = str(args.max_batch_size)
    if args.max_batch_delay_ms is not None:
        tuned["max_batch_delay_ms"] = str(args.max_batch_delay_ms)
    plain = {**tuned, "max_batch_size": "1", "max_batch_delay_ms": "0"}
    grpc_port = server.free_port()
    tuned["grpc_port"] = str(grpc_port)
    levels: dict[str, list[dict[str, Any]]] = {"batching": [], "no_batching": []}
    encoded = [photo.read_bytes() for photo in chosen[:64]]  # the photos the loads send
    with contextlib.ExitStack() as stack:
        # The servers run side by side and take turns, with raw-engine measurements in between:
        # speed drifts on shared machines, and interleaving keeps each comparison fair.
        bases = {
            "batching": stack.enter_context(server.serving(args.store, tuned)),
            "no_batching": stack.enter_context(server.serving(args.store, plain)),
        }
        if args.cluster:
            cluster = server.cluster_serving(
                args.store, tuned, args.cluster_ingress, args.cluster_gpus
            )
            bases["cluster"] = stack.enter_context(cluster)
            levels["cluster"] = []
        for mode, base in bases.items():
            print(f"  server ({mode}, {server.engine_of(base)} engine) at {base}", flush=True)
        for per_request in args.images_per_request:
            bodies = load.multipart_bodies(chosen, per_request, 64)
            for base in bases.values():
                asyncio.run(load.run(base, bodies, 4, per_request, min(2.0, args.duration)))
            for concurrency in args.concurrency:
                modes = [m for m in bases if per_request == 1 or m == "batching"]
                measured = _interleaved(
                    args,
                    engine,
                    images,
                    best,
                    bases,
                    modes,
                    bodies,
                    concurrency,
                    per_request,
                    encoded,
                )
                for mode in modes:
                    levels[mode].append(measured[mode])
        compared = _protocols(args, bases["batching"], f"127.0.0.1:{grpc_port}", chosen)
    return {
        "name": f"{engine.name} ({engine.precision})" if precision or tta else engine.name,
        "raw": sweep,
        "best_raw_batch_size": best,
        "service": levels,
        "protocols": compared,
        "held_out": held_out,
    }


def _protocols(
    args: argparse.Namespace, base: str, grpc_target: str, chosen: list[Path]
) -> dict[str, Any]:
    """/predict, V2 REST (binary) and V2 gRPC on one server, same photos, taking turns."""
    concurrency = args.protocol_concurrency
    runs = {
        "predict": _http_load(base, load.multipart_bodies(chosen, 1, 64), concurrency),
        "v2_rest": _http_load(base, protocols.v2_rest_requests(chosen, 1, 64), concurrency),
        "v2_grpc": _grpc_load(grpc_target, protocols.v2_grpc_messages(chosen, 1, 64), concurrency),
    }
    for run in runs.values():  # warm: connections, code paths
        run(min(1.0, args.duration / 4))
    segment_s = args.duration / args.rounds
    segments: dict[str, list[tuple[load.LoadResult, float, float]]] = {name: [] for name in runs}
    names = list(runs)
    for round_index in range(args.rounds):
        # each round starts with the next protocol: none always runs first (or last)
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            run = runs[name]
            before = server.batch_counters(base)
            result = run(segment_s)
            after = server.batch_counters(base)
            segments[name].append((result, after[0] - before[0], after[1] - before[1]))
    out: dict[str, Any] = {"concurrency": concurrency}
    for name, measured in segments.items():
        out[name] = _merge(measured, concurrency, 1)
        level = out[name]
        print(
            f"    {name:<11} c={concurrency:<3} 1 img/req: {level['images_per_s']:7.1f} img/s "
            f"p50 {level['p50_ms']:7.1f} ms p99 {level['p99_ms']:7.1f} ms "
            f"batch {level['mean_batch_size']:5.1f} errors {level['errors'] or 0}",
            flush=True,
        )
    return out


def _http_load(
    base: str, requests: list[load.Request], concurrency: int
) -> Callable[[float], load.LoadResult]:
    return lambda seconds: asyncio.run(load.run(base, requests, concurrency, 1, seconds))


def _grpc_load(
    target: str, messages: list[bytes], concurrency: int
) -> Callable[[float], load.LoadResult]:
    return lambda seconds: asyncio.run(
        protocols.run_grpc(target, messages, concurrency, 1, seconds)
    )


def _interleaved(
    args: argparse.Namespace,
    engine: Any,
    images: np.ndarray,
    best: int,
    bases: dict[str, str],
    modes: list[str],
    bodies: list[load.Request],
    concurrency: int,
    per_request: int,
    encoded: list[bytes],
) -> dict[str, dict[str, Any]]:
    segment_s = args.duration / args.rounds
    segments: dict[str, list[tuple[load.LoadResult, float, float]]] = {m: [] for m in modes}
    raw_best: list[float] = []
    raw_one: list[float] = []
    decode: list[float] = []
    for _ in range(args.rounds):
        raw_best.append(raw.measure(engine, images, best, segment_s / 2)["images_per_s"])
        decode.append(raw.decode_ms(encoded, segment_s / 4))
        if concurrency == 1 and per_request == 1:
            raw_one.append(raw.measure(engine, images, 1, segment_s / 2)["ms_per_batch"])
        for mode in modes:
            counters = server.cluster_batch_counters if mode == "cluster" else server.batch_counters
            before = counters(bases[mode])
            result = asyncio.run(load.run(bases[mode], bodies, concurrency, per_request, segment_s))
            after = counters(bases[mode])
            segments[mode].append((result, after[0] - before[0], after[1] - before[1]))
    out = {}
    for mode in modes:
        level = _merge(segments[mode], concurrency, per_request)
        level["raw_best_alongside_images_per_s"] = round(statistics.median(raw_best), 2)
        level["decode_alongside_ms"] = round(statistics.median(decode), 3)
        level["pipeline_limit_images_per_s"] = round(
            raw.pipeline_limit(statistics.median(raw_best), statistics.median(decode)), 2
        )
        if raw_one:
            level["raw_batch1_alongside_ms"] = round(statistics.median(raw_one), 2)
        print(
            f"    {mode:<11} c={concurrency:<3} {per_request} img/req: "
            f"{level['images_per_s']:7.1f} img/s "
            f"(raw alongside {level['raw_best_alongside_images_per_s']:.1f}, pipeline limit "
            f"{level['pipeline_limit_images_per_s']:.1f}) "
            f"p50 {level['p50_ms']:7.1f} ms p99 {level['p99_ms']:7.1f} ms "
            f"batch {level['mean_batch_size']:5.1f} errors {level['errors'] or 0}",
            flush=True,
        )
        out[mode] = level
    return out


def _merge(
    segments: list[tuple[load.LoadResult, float, float]], concurrency: int, per_request: int
) -> dict[str, Any]:
    seconds = sum(r.seconds for r, _, _ in segments)
    requests = sum(r.requests for r, _, _ in segments)
    latencies = np.array([ms for r, _, _ in segments for ms in r.latencies_ms])
    errors: dict[str, int] = {}
    for result, _, _ in segments:
        for key, count in result.errors.items():
            errors[key] = errors.get(key, 0) + count
    images_batched = sum(i for _, i, _ in segments)
    calls = sum(c for _, _, c in segments)
    percentile = lambda q: round(float(np.percentile(latencies, q)), 1) if len(latencies) else None  # noqa: E731
    return {
        "concurrency": concurrency,
        "images_per_request": per_request,
        "images_per_s": round(requests * per_request / seconds, 2),
        "requests_per_s": round(requests / seconds, 2),
        "p50_ms": percentile(50),
        "p95_ms": percentile(95),
        "p99_ms": percentile(99),
        "mean_batch_size": round(images_batched / calls, 2) if calls else 0.0,
        "errors": errors,
        "retry_after_on_503": all(r.retry_after_on_503 for r, _, _ in segments),
        "requests": requests,
    }


# The flags that decide what the CPU engines run in (AVX2, AVX-512, VNNI, bf16, AMX)
_ENGINE_FLAGS = (
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_bf16",
    "amx_int8",
)


def _machine() -> str:
    """The CPU, its engine-relevant flags, and a cap on what oneDNN may use (ONEDNN_MAX_CPU_ISA,
    e.g. AVX512_CORE_BF16 to run as a CPU without AMX), since each changes the figures."""
    from app.ml.engines import cpu_flags

    present = cpu_flags()  # /proc/cpuinfo, read once
    flags = [flag for flag in _ENGINE_FLAGS if flag in present]
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, {_cpu_model()}, flags "
    machine += " ".join(flags) or "none of " + " ".join(_ENGINE_FLAGS)
    capped = os.environ.get("ONEDNN_MAX_CPU_ISA")
    return machine + (f", oneDNN capped at {capped} (ONEDNN_MAX_CPU_ISA)" if capped else "")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    raise SystemExit(main())
