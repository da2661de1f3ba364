"""A version's ``metadata.json``, typed: the fields code reads are declared here, once.

Training writes much more (per-class metrics, history, dataset counts, timings, libraries): those
are kept as they are (``extra="allow"``) and returned whole by :meth:`VersionMetadata.as_dict`.
"""

from __future__ import annotations

from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

# Where the server's files lie: for operators (the admin API), not for anonymous clients (/model).
SERVER_PATHS: Final = (("dataset", "root"), ("dataset", "skipped"), ("evaluation_set", "folder"))


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class ClassScores(_Open):
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    support: int | None = Field(None, description="Validation images of this class")


class ValidationMetrics(_Open):
    """How well the version scored on photos it was not fitted on (``metrics`` in the file)."""

    val_accuracy: float | None = None
    # How val_accuracy was measured (e.g. "holdout" or "5-fold cross-validation").
    evaluation: str | None = None
    per_class: dict[str, ClassScores] = Field(default_factory=dict)


class Backbone(_Open):
    weights_digest: str | None = None


class Activation(_Open):
    policy: str | None = None
    activated: bool | None = None
    reason: str | None = None


class JobRef(_Open):
    id: str


class ExamplePhoto(_Open):
    """One example photo the version ships for the public page (:mod:`app.training.examples`)."""

    file: str  # relative to the version's folder
    class_name: str
    source: str  # where it came from, relative to the dataset folder
    credit: str  # its line in the dataset's LICENSE.txt


class Examples(_Open):
    photos: list[ExamplePhoto] = Field(default_factory=list)
    license: str | None = None
    reason: str | None = None  # why there are none


class EvaluationSet(_Open):
    """The version scored on an evaluation folder of photos never trained on, at publishing."""

    accuracy: float | None = None
    photos: int | None = None
    content_hash: str | None = None


class Int8Served(_Open):
    """The INT8 IR checked again with both IRs compiled in bf16 (``int8.served``)."""

    compiled_in: str = "bf16"
    within_bounds: bool = False  # its layers kept in float may then be served in bf16


class Int8Record(_Open):
    """The version's INT8 IR as publishing checked it (``engines.openvino.int8``)."""

    kept: bool = False
    reason: str | None = None  # why it was not kept (or not made)
    served: Int8Served | None = None  # where the publishing CPU had bf16


class OpenVinoRecord(_Open):
    int8: Int8Record | None = None


class EngineRecords(_Open):
    openvino: OpenVinoRecord | None = None


class VersionMetadata(_Open):
    version: int
    classes: list[str] = Field(min_length=1)
    created_at: str | None = None
    preprocessing_version: str | None = None
    metrics: ValidationMetrics = Field(default_factory=ValidationMetrics)
    backbone: Backbone = Field(default_factory=Backbone)
    activation: Activation = Field(default_factory=Activation)
    job: JobRef | None = None  # the server's retrain job that published it
    examples: Examples = Field(default_factory=Examples)
    evaluation_set: EvaluationSet | None = None
    engines: EngineRecords = Field(default_factory=EngineRecords)

    @property
    def val_accuracy(self) -> float | None:
        return self.metrics.val_accuracy

    @property
    def int8(self) -> Int8Record | None:
        return self.engines.openvino.int8 if self.engines.openvino is not None else None

    @property
    def backbone_digest(self) -> str | None:
        return self.backbone.weights_digest

    def as_dict(self) -> dict[str, Any]:
        """Everything the file holds, as JSON-ready values."""
        return self.model_dump(mode="json", exclude_unset=True)

    def public_dict(self) -> dict[str, Any]:
        """:meth:`as_dict` without the server's paths (:data:`SERVER_PATHS`)."""
        shown = self.as_dict()
        for section, key in SERVER_PATHS:
            if isinstance(shown.get(section), dict):
                shown[section].pop(key, None)
        return shown
