"""The table printed at the end of a training run."""

from __future__ import annotations

from app.store.versions import Version
from app.training.finetune import MEASURED_ONCE
from app.training.pipeline import TrainedModel
from app.training.publishing import Activation


def render(trained: TrainedModel, version: Version, activation: Activation) -> str:
    report = trained.report
    state = "active" if activation.activate else "not active"
    lines = [
        "",
        "Summary",
        f"  version published    {version.number} ({state}) in {version.path}",
        f"  activation           {activation.reason}",
        f"  accuracy             {trained.measured.describe()}",
        f"  trained on           {trained.trained_on} photos",
        f"  features             {trained.feature_counts['computed']} computed, "
        f"{trained.feature_counts['cached']} from the cache",
    ]
    epochs = trained.config.options.fine_tune_epochs
    counted = f"{epochs} epoch{'' if epochs == 1 else 's'}"
    if epochs and trained.config.options.fine_tune_in_folds:
        lines.append(f"{'  fine-tuned':<23}conv5, {counted}, in every fold")
    elif epochs:
        lines += [
            f"{'  fine-tuned':<23}conv5, {counted}, the published model only",
            f"{'':<23}(the accuracy is the head's; fine-tuning added "
            f"{MEASURED_ONCE['gain']} when measured once)",
        ]
        held_out = trained.held_out
        if held_out is not None:
            lines.append(
                f"{'':<23}on the {held_out.photos} photos it kept out: {held_out.fine_tuned:.4f} "
                f"against the head's {held_out.head_alone:.4f} ({held_out.gain:+.4f})"
            )
    if trained.data.skipped:
        lines.append(
            f"  skipped images       {len(trained.data.skipped)} unreadable (see warnings)"
        )
    lines += ["", f"  {'class':<16}{'precision':>10}{'recall':>9}{'f1':>8}{'support':>9}"]
    for name, scores in report["per_class"].items():
        lines.append(
            f"  {name:<16}{scores['precision']:>10.3f}{scores['recall']:>9.3f}"
            f"{scores['f1']:>8.3f}{scores['support']:>9}"
        )
    lines += ["", f"  {'phase':<16}{'seconds':>10}"]
    lines += [f"  {phase:<16}{seconds:>10.1f}" for phase, seconds in trained.timings.items()]
    return "\n".join(lines)
