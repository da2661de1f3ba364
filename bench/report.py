"""Benchmark outputs: the JSON record, a markdown table with the target ratios, and a PNG plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.accuracy import summary as accuracy_summary

TARGET_SERVICE_VS_RAW = 0.85
# the raw engine plus one decode per image (issue 26)
TARGET_SERVICE_VS_PIPELINE = 0.90
TARGET_BATCHING_GAIN = 1.3
TARGET_P50_SLACK_MS = 10.0
TARGET_PROTOCOL_VS_PREDICT = 0.95
# INT8 against bf16, raw, where the CPU has VNNI or AMX (issue 26)
TARGET_INT8_VS_BF16 = 1.6
PROTOCOLS = {"predict": "/predict", "v2_rest": "V2 REST (binary)", "v2_grpc": "V2 gRPC"}


def ratios(engine: dict[str, Any], queue_limit: int) -> dict[str, Any]:
    """The issue's targets for one engine, each against raw numbers measured alongside."""
    batching = {
        (lvl["concurrency"], lvl["images_per_request"]): lvl
        for lvl in engine["service"]["batching"]
    }
    plain = {
        (lvl["concurrency"], lvl["images_per_request"]): lvl
        for lvl in engine["service"]["no_batching"]
    }
    c16, c16_plain, c1 = batching.get((16, 1)), plain.get((16, 1)), batching.get((1, 1))
    out: dict[str, Any] = {
        "best_raw_images_per_s": max(r["images_per_s"] for r in engine["raw"]),
        "best_raw_batch_size": engine["best_raw_batch_size"],
    }
    if c16:
        out["service_c16_vs_raw"] = round(
            c16["images_per_s"] / c16["raw_best_alongside_images_per_s"], 3
        )
    if c16 and "pipeline_limit_images_per_s" in c16:
        out["service_c16_vs_pipeline_limit"] = round(
            c16["images_per_s"] / c16["pipeline_limit_images_per_s"], 3
        )
        out["decode_ms_per_image"] = c16["decode_alongside_ms"]
    if c16 and c16_plain:
        out["batching_vs_none_c16"] = round(c16["images_per_s"] / c16_plain["images_per_s"], 3)
    if c1 and "raw_batch1_alongside_ms" in c1:
        out["p50_c1_minus_raw_batch1_ms"] = round(c1["p50_ms"] - c1["raw_batch1_alongside_ms"], 2)
    levels = [*batching.values(), *plain.values()]
    within = [
        lvl for lvl in levels if lvl["concurrency"] * lvl["images_per_request"] <= queue_limit
    ]
    beyond = [lvl for lvl in levels if lvl["concurrency"] * lvl["images_per_request"] > queue_limit]
    out["errors_within_queue_bound"] = sum(sum(lvl["errors"].values()) for lvl in within)
    out["beyond_bound_only_503_with_retry_after"] = all(
        set(lvl["errors"]) <= {"503"} and lvl["retry_after_on_503"] for lvl in beyond
    )
    compared = engine.get("protocols")
    if compared:
        for name in ("v2_rest", "v2_grpc"):
            out[f"{name}_vs_predict"] = round(
                compared[name]["images_per_s"] / compared["predict"]["images_per_s"], 3
            )
    out["targets_met"] = {
        "service >= 0.85 x raw": out.get("service_c16_vs_raw", 0) >= TARGET_SERVICE_VS_RAW,
        "service >= 0.90 x pipeline limit": out.get("service_c16_vs_pipeline_limit", 0)
        >= TARGET_SERVICE_VS_PIPELINE,
        "batching >= 1.3 x none": out.get("batching_vs_none_c16", 0) >= TARGET_BATCHING_GAIN,
        "p50 c1 <= raw b1 + 10 ms": out.get("p50_c1_minus_raw_batch1_ms", 1e9)
        <= TARGET_P50_SLACK_MS,
        "no errors up to the queue bound": out["errors_within_queue_bound"] == 0,
        "beyond it only 503 + Retry-After": out["beyond_bound_only_503_with_retry_after"],
    }
    if compared:
        for name in ("v2_rest", "v2_grpc"):
            met = out[f"{name}_vs_predict"] >= TARGET_PROTOCOL_VS_PREDICT
            out["targets_met"][f"{PROTOCOLS[name]} >= 0.95 x /predict"] = met
    return out


_SERVICE_COLUMNS = (
    "| server | conc. | img/req | img/s | raw img/s alongside | req/s "
    "| p50 ms | p95 ms | p99 ms | mean batch | errors |"
)


def markdown(record: dict[str, Any]) -> str:
    lines = [
        f"Machine: {record['machine']}  ",
        f"Run: {record['started_at']}, {record['duration_s']} s per load level "
        f"({record['rounds']} interleaved rounds)",
        "",
    ]
    for engine in record["engines"]:
        lines += [f"### Engine: {engine['name']}", "", "| raw batch size | ms / batch | img/s |"]
        lines.append("|---:|---:|---:|")
        for r in engine["raw"]:
            lines.append(
                f"| {r['batch_size']} | {r['ms_per_batch']:.1f} | {r['images_per_s']:.1f} |"
            )
        lines += ["", _SERVICE_COLUMNS, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for mode in ("batching", "no_batching", "cluster"):
            lines += [_service_row(mode, level) for level in engine["service"].get(mode, [])]
        lines += ["", *_ratio_lines(engine["ratios"]), *_cluster_lines(engine["service"])]
        if "held_out" in engine:
            lines.append(f"- {accuracy_summary(engine['held_out'], bold='**')}")
        lines.append("")
        if engine.get("protocols"):
            lines += [*_protocol_lines(engine["protocols"], engine["ratios"]), ""]
    if len(record["engines"]) > 1:
        lines += _side_by_side(record["engines"])
        lines += _precision_lines(record["engines"])
    return "\n".join(lines)


def precision_ratios(engines: list[dict[str, Any]], over: str) -> dict[str, float] | None:
    """OpenVINO's INT8 raw img/s over its ``over`` precision's in the same run: at each batch
    size both measured (``"1"``, ``"8"``...) and at each one's best (``"best"``); None unless
    the run measured both."""
    by_name = {engine["name"]: engine for engine in engines}
    int8, other = by_name.get("openvino (int8)"), by_name.get(f"openvino ({over})")
    if int8 is None or other is None:
        return None
    theirs = {r["batch_size"]: r["images_per_s"] for r in other["raw"]}
    out = {
        str(r["batch_size"]): round(r["images_per_s"] / theirs[r["batch_size"]], 2)
        for r in int8["raw"]
        if theirs.get(r["batch_size"])
    }
    best = max(theirs.values(), default=0)
    if best:
        out["best"] = round(max(r["images_per_s"] for r in int8["raw"]) / best, 2)
    return out


def _precision_lines(engines: list[dict[str, Any]]) -> list[str]:
    lines = []
    for over in ("bf16", "f32"):
        ratios = precision_ratios(engines, over)
        if not ratios:
            continue
        sizes = [f"**{r:.2f}x** at batch {size}" for size, r in ratios.items() if size != "best"]
        best = [f"**{ratios['best']:.2f}x** at each one's best batch"] if "best" in ratios else []
        target = f" (target >= {TARGET_INT8_VS_BF16}x where the CPU has VNNI or AMX)"
        lines.append(
            f"- INT8 / {over}, raw: {', '.join([*sizes, *best])}{target if over == 'bf16' else ''}"
        )
    return [*lines, ""] if lines else []


def _side_by_side(engines: list[dict[str, Any]]) -> list[str]:
    """The engines of the run in one table: raw at the best batch, the service at its most
    clients of one photo each, and the held-out accuracy publishing recorded for each."""
    lines = [
        "### Side by side",
        "",
        "| engine | raw img/s, best batch | service img/s (clients) | service / pipeline limit "
        "at 16 | held-out accuracy |",
        "|---|---:|---:|---:|---:|",
    ]
    for engine in engines:
        r = engine["ratios"]
        ones = [lvl for lvl in engine["service"]["batching"] if lvl["images_per_request"] == 1]
        busiest = max(ones, key=lambda lvl: lvl["concurrency"], default=None)
        service = f"{busiest['images_per_s']:.1f} ({busiest['concurrency']})" if busiest else "-"
        limit = r.get("service_c16_vs_pipeline_limit")
        held_out = engine.get("held_out")
        cells = [
            engine["name"],
            f"{r['best_raw_images_per_s']:.1f}",
            service,
            "-" if limit is None else f"{limit:.3f}",
            "-" if not held_out else f"{held_out['accuracy']:.4f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def _protocol_lines(compared: dict[str, Any], r: dict[str, Any]) -> list[str]:
    """/predict beside the Open Inference Protocol, same server and photos, taking turns."""
    lines = [
        "| protocol (same server) | conc. | img/s | p50 ms | p95 ms | p99 ms | mean batch "
        "| errors |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, label in PROTOCOLS.items():
        level = compared[name]
        errors = ", ".join(f"{k}: {v}" for k, v in level["errors"].items()) or "0"
        lines.append(
            f"| {label} | {compared['concurrency']} | {level['images_per_s']:.1f} "
            f"| {level['p50_ms']:.0f} | {level['p95_ms']:.0f} | {level['p99_ms']:.0f} "
            f"| {level['mean_batch_size']:.1f} | {errors} |"
        )
    return [
        *lines,
        "",
        f"- V2 REST (binary) / /predict: **{r.get('v2_rest_vs_predict')}**; V2 gRPC / /predict: "
        f"**{r.get('v2_grpc_vs_predict')}** (target >= {TARGET_PROTOCOL_VS_PREDICT})",
    ]


def _service_row(mode: str, level: dict[str, Any]) -> str:
    errors = ", ".join(f"{k}: {v}" for k, v in level["errors"].items()) or "0"
    cells = [
        mode.replace("_", " "),
        str(level["concurrency"]),
        str(level["images_per_request"]),
        f"{level['images_per_s']:.1f}",
        f"{level['raw_best_alongside_images_per_s']:.1f}",
        f"{level['requests_per_s']:.1f}",
        f"{level['p50_ms']:.0f}",
        f"{level['p95_ms']:.0f}",
        f"{level['p99_ms']:.0f}",
        f"{level['mean_batch_size']:.1f}",
        errors,
    ]
    return "| " + " | ".join(cells) + " |"


def cluster_vs_single(service: dict[str, Any]) -> dict[int, dict[str, float]]:
    """Per concurrency at 1 img/req: cluster / single-process throughput, and the p50 added."""
    ones = [lvl for lvl in service["batching"] if lvl["images_per_request"] == 1]
    single = {lvl["concurrency"]: lvl for lvl in ones}
    out = {}
    for level in service.get("cluster", []):
        alone = single.get(level["concurrency"])
        if alone and alone["images_per_s"]:
            out[level["concurrency"]] = {
                "throughput_ratio": round(level["images_per_s"] / alone["images_per_s"], 3),
                "p50_added_ms": round(level["p50_ms"] - alone["p50_ms"], 1),
            }
    return out


def _cluster_lines(service: dict[str, Any]) -> list[str]:
    return [
        f"- Ray Serve cluster / single process at c={c}: throughput **{r['throughput_ratio']}**, "
        f"p50 **{r['p50_added_ms']:+} ms**"
        for c, r in cluster_vs_single(service).items()
    ]


def _ratio_lines(r: dict[str, Any]) -> list[str]:
    """One line per target this run measured; a target whose load level it skipped is named."""
    targets = [
        (
            "service_c16_vs_raw",
            "service (c=16, 1 img/req) / raw engine at its best batch size "
            f"({r['best_raw_batch_size']}), measured alongside",
            "",
            "(target >= 0.85)",
        ),
        (
            "service_c16_vs_pipeline_limit",
            "service (c=16, 1 img/req) / pipeline limit (raw at its best batch size plus one "
            "decode per image"
            + (f", {r['decode_ms_per_image']} ms" if r.get("decode_ms_per_image") else "")
            + "), measured alongside",
            "",
            "(target >= 0.90)",
        ),
        ("batching_vs_none_c16", "batching / no batching at c=16", "", "(target >= 1.3)"),
        (
            "p50_c1_minus_raw_batch1_ms",
            "p50 at c=1 minus raw batch-1 latency measured alongside",
            " ms",
            "(target <= 10 ms)",
        ),
    ]
    lines = [
        f"- {text}: **{r[key]}{unit}** {target}"
        if r.get(key) is not None
        else f"- {text}: not measured in this run {target}"
        for key, text, unit, target in targets
    ]
    lines.append(
        f"- errors up to the queue bound: **{r['errors_within_queue_bound']}**; beyond it only "
        f"503 + Retry-After: **{r['beyond_bound_only_503_with_retry_after']}**"
    )
    return lines


def plot(record: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    engines = record["engines"]
    figure, axes = pyplot.subplots(len(engines), 2, figsize=(12, 4.2 * len(engines)), squeeze=False)
    for row, engine in enumerate(engines):
        left, right = axes[row]
        for mode, ipr, style in (
            ("batching", 1, "o-"),
            ("batching", 8, "s-"),
            ("no_batching", 1, "x--"),
            ("cluster", 1, "d-."),
        ):
            chosen = engine["service"].get(mode, [])
            levels = [lvl for lvl in chosen if lvl["images_per_request"] == ipr]
            if levels:
                left.plot(
                    [lvl["concurrency"] for lvl in levels],
                    [lvl["images_per_s"] for lvl in levels],
                    style,
                    label=f"{mode.replace('_', ' ')}, {ipr} img/req",
                )
        left.axhline(
            engine["ratios"]["best_raw_images_per_s"],
            color="grey",
            linestyle=":",
            label="best raw engine",
        )
        left.set(
            xscale="log",
            xlabel="concurrent clients",
            ylabel="images / s",
            title=f"{engine['name']}: throughput",
        )
        left.legend(fontsize=8)
        levels = [lvl for lvl in engine["service"]["batching"] if lvl["images_per_request"] == 1]
        for q in ("p50", "p95", "p99"):
            right.plot(
                [lvl["concurrency"] for lvl in levels],
                [lvl[f"{q}_ms"] for lvl in levels],
                "o-",
                label=q,
            )
        right.set(
            xscale="log",
            yscale="log",
            xlabel="concurrent clients",
            ylabel="latency (ms)",
            title=f"{engine['name']}: latency, batching, 1 img/req",
        )
        right.legend(fontsize=8)
        for axis in (left, right):
            axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    pyplot.close(figure)


def write(record: dict[str, Any], folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "latest.json").write_text(json.dumps(record, indent=2) + "\n")
    table = markdown(record)
    (folder / "latest.md").write_text(table + "\n")
    plot(record, folder / "latest.png")
    return table
