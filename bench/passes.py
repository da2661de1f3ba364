"""``python -m bench.passes``: what the IR rewrite at load buys (``app.ml.ir_passes``).

Compiles the store's active version's IRs (the float IR at bf16 where the CPU has it and at
f32, and the INT8 IR where publishing kept one) twice each: as written on disk and rewritten as
the engine compiles them; then times one batch size on every compiled model in turn, round
after round, so each ratio compares numbers taken seconds apart on the same cores; with
``--layers``, where each one's time goes by OpenVINO's per-layer counters.  An IR
exported since the rewrite was made at export has nothing left to rewrite: both columns are then
the same graph.
"""

from __future__ import annotations

import argparse
import collections
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from app.imaging import IMAGE_SIZE
from app.ml import ir_passes
from app.ml.engines import (
    INT8_XML,
    OPENVINO_XML,
    choose_precision,
    cpu_capabilities,
    int8_float_precision,
)
from app.options import HelpFormatter, in_range, positive
from app.store.versions import ModelStore
from bench import raw


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.passes",
        description=(__doc__ or "").replace("``", ""),
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--store", type=Path, required=True, help="model store to measure")
    parser.add_argument("--batch-size", type=positive(int), default=8, help="images per call")
    parser.add_argument(
        "--rounds", type=positive(int), default=5, help="rounds, every model in each"
    )
    parser.add_argument(
        "--seconds", type=positive(float), default=2.0, help="seconds per model per round"
    )
    parser.add_argument(
        "--layers",
        type=in_range(int, 0),
        default=0,
        metavar="N",
        help="also each model's N costliest kernels by OpenVINO's per-layer counters (PERF_COUNT)",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    version = ModelStore(args.store).active()
    if version is None:
        raise SystemExit(f"no model in {args.store}: train one first (python -m app.train)")
    capabilities = cpu_capabilities()
    auto = choose_precision("auto", capabilities)
    irs = [(version.path / OPENVINO_XML, precision) for precision in sorted({auto, "f32"})]
    if (version.path / INT8_XML).exists():  # its float layers in the arithmetic they serve in
        irs.append((version.path / INT8_XML, int8_float_precision(version, capabilities)))
    batch = (
        np.random.default_rng(0)
        .integers(0, 256, (args.batch_size, IMAGE_SIZE, IMAGE_SIZE, 3))
        .astype(np.float32)
    )
    models = {
        (xml, precision, rewrite): _compiled(xml, precision, rewrite)
        for xml, precision in irs
        for rewrite in (False, True)
    }
    rates: dict[tuple[Path, str, bool], list[float]] = {key: [] for key in models}
    for _ in range(args.rounds):
        for key, request in models.items():
            call = lambda request=request: request.infer({0: batch})  # noqa: E731
            rates[key].append(len(batch) / raw.seconds_per_call(call, args.seconds))
    print(
        f"version {version.number}, batch {args.batch_size}, {args.rounds} rounds of "
        f"{args.seconds:g} s per model, taking turns (median img/s)\n"
    )
    print("| IR | as written | rewritten (the engine) | ratio |\n|---|---:|---:|---:|")
    for xml, precision in irs:
        before = statistics.median(rates[(xml, precision, False)])
        after = statistics.median(rates[(xml, precision, True)])
        print(f"| {xml.name} at {precision} | {before:.1f} | {after:.1f} | {after / before:.2f} |")
    if args.layers:
        for xml, precision, rewrite in models:
            how = "rewritten" if rewrite else "as written"
            title = f"{xml.name} at {precision}, {how}"
            _print_layers(title, xml, precision, rewrite, batch, args.layers)


def _compiled(xml: Path, precision: str, rewrite: bool, counters: bool = False) -> Any:
    import openvino

    core = openvino.Core()
    model = core.read_model(str(xml))
    if rewrite:
        ir_passes.rewrite(model)
    config = {
        "INFERENCE_PRECISION_HINT": precision,
        "PERFORMANCE_HINT": "LATENCY",
        "PERF_COUNT": counters,
    }
    return core.compile_model(model, "CPU", config).create_infer_request()


def _print_layers(
    title: str, xml: Path, precision: str, rewrite: bool, batch: np.ndarray, top: int
) -> None:
    """The kernels (layer type, implementation) that took the most time, over 10 batches; the
    counters slow the run down, so their sum exceeds the timings above."""
    request = _compiled(xml, precision, rewrite, counters=True)
    request.infer({0: batch})
    spent: collections.Counter[tuple[str, str]] = collections.Counter()
    calls = 10
    for _ in range(calls):
        request.infer({0: batch})
        for layer in request.profiling_info:
            spent[(layer.node_type, layer.exec_type)] += layer.real_time.total_seconds() * 1000
    total = sum(spent.values())
    print(f"\n{title}: {total / calls:.1f} ms per batch in the counters")
    print("| layer | kernel | ms per batch | share |\n|---|---|---:|---:|")
    for (layer, kernel), ms in spent.most_common(top):
        print(f"| {layer} | {kernel} | {ms / calls:.2f} | {ms / total:.1%} |")


if __name__ == "__main__":
    main()
