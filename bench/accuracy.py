"""Each engine's held-out accuracy in the arithmetic it serves in, as publishing measured it.

Publishing checks a version's INT8 IR (``engines.openvino.int8``) on photos its fine-tuning kept
out and calibration never saw: the float IR and the INT8 IR scored on the same photos, both
compiled in f32 (``held_out``) and again, where the CPU has bf16, both in bf16 (``served``). So
every OpenVINO arithmetic the bench times has its accuracy on one set of photos: f32 and bf16
are the float IR's, int8 the INT8 IR's with its float layers in the arithmetic they serve in.
"""

from __future__ import annotations

from typing import Any

from app.ml.engines import Engine
from app.store.versions import Version


def recorded(version: Version, engine: Engine) -> dict[str, Any] | None:
    """``accuracy`` and ``photos`` (and for int8 its ``agreement`` with the float IR) of the
    check in ``engine``'s arithmetic; None where publishing made no such check (no INT8 step,
    a CPU without bf16 for a bf16 engine) or the engine is not OpenVINO's."""
    record = version.metadata.int8
    if engine.name != "openvino" or record is None:
        return None
    int8 = record.model_dump()
    checks = {int8.get("compiled_in", "f32"): int8.get("held_out")}
    if record.served is not None:
        checks[record.served.compiled_in] = int8["served"]
    check = checks.get(engine.float_precision)
    if not check:
        return None
    found: dict[str, Any] = {"photos": check["photos"], "arithmetic": engine.float_precision}
    if engine.precision == "int8":
        return {**found, "accuracy": check["int8_accuracy"], "agreement": check["agreement"]}
    return {**found, "accuracy": check["float_accuracy"]}


def summary(found: dict[str, Any] | None, bold: str = "") -> str:
    """One engine's accuracy in words (``bold="**"``: the figure in bold, for the report)."""
    if found is None:
        return "held-out accuracy: none recorded for this arithmetic at publishing"
    agreement = (
        f"; top-1 agreement with the float IR {found['agreement']:.4f}"
        if "agreement" in found
        else ""
    )
    return (
        f"held-out accuracy (recorded at publishing, {found['photos']} photos kept out of "
        f"training and calibration, float layers in {found['arithmetic']}): "
        f"{bold}{found['accuracy']:.4f}{bold}{agreement}"
    )
