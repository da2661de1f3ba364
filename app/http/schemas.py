"""Response models: the API contract, as it appears in the OpenAPI document."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from app import options
from app.inference.control import ReplicaStatus
from app.options import TrainOptions
from app.store.metadata import ClassScores


class Prediction(BaseModel):
    filename: str = Field(examples=["rose.jpg"])
    class_name: str = Field(examples=["roses"])
    confidence: float = Field(ge=0, le=1, examples=[0.97])
    probabilities: dict[str, float] = Field(
        description="Softmax outputs keyed by class name (all classes, or the top_k most probable)",
        examples=[
            {"daisy": 0.001, "dandelion": 0.002, "roses": 0.97, "sunflowers": 0.007, "tulips": 0.02}
        ],
    )


class PredictResponse(BaseModel):
    model_version: str = Field(
        description="The version that computed every prediction", examples=["3"]
    )
    predictions: list[Prediction] = Field(
        description="One entry per uploaded image, in upload order"
    )


class ClassesResponse(BaseModel):
    model_version: str = Field(examples=["3"])
    classes: list[str] = Field(examples=[["daisy", "dandelion", "roses", "sunflowers", "tulips"]])


class BatchingInfo(BaseModel):
    max_batch_size: int
    max_batch_delay_ms: float
    queue_limit: int
    batch_sizes: list[int] = Field(description="The padded sizes the engine runs (all warmed up)")


class UploadLimitsInfo(BaseModel):
    max_file_bytes: int = Field(description="The most one image may be (FLOWERS_MAX_UPLOAD_BYTES)")
    max_files_per_request: int
    max_image_pixels: int = Field(description="The most pixels a decoded image may have")


class ReplicaInfo(BaseModel):
    deployment: str = Field(description="Ingress (HTTP) or Model (batcher and engine)")
    replica: str = Field(description="Ray Serve's replica id")
    node: str = Field(description="The node's IP address")
    pid: int
    version: str | None = Field(description="The version a Model replica serves")
    engine: str | None
    precision: str | None = Field(
        description="What a Model replica computes in, as /model's precision (replicas on CPUs "
        "of different kinds may differ: int8 needs VNNI or AMX, bf16 its instructions)"
    )
    float_precision: str | None = Field(description="As /model's float_precision")
    device: str | None
    requests: int = Field(description="Requests this replica has answered since it started")
    images: int = Field(description="Images it has classified")
    batches: int = Field(description="Model calls it has made (images / batches: mean batch)")
    retried: int = Field(
        description="Requests an Ingress replica sent again because their Model replica died"
    )


VERSIONS_SERVED = (
    "On a Ray cluster: the versions its Model replicas serve now, each once. More than one "
    "during a swap, for a moment, or where a replica did not load the active version (the "
    "admin API's activation logs it); `replicas` says which serves what"
)


def cluster_fields(replicas: list[ReplicaStatus] | None) -> dict[str, Any]:
    """``replicas`` and ``versions_served`` on a cluster; nothing for one process (None)."""
    if replicas is None:
        return {}
    served = sorted({r.model.number for r in replicas if r.model is not None})
    return {"replicas": _replica_infos(replicas), "versions_served": [str(n) for n in served]}


def _replica_infos(replicas: list[ReplicaStatus]) -> list[ReplicaInfo]:
    return [
        ReplicaInfo(
            deployment=r.deployment,
            replica=r.replica,
            node=r.node,
            pid=r.pid,
            version=str(r.model.number) if r.model else None,
            engine=r.model.engine if r.model else None,
            precision=r.model.precision if r.model else None,
            float_precision=r.model.float_precision if r.model else None,
            device=r.model.device if r.model else None,
            requests=r.requests,
            images=r.images,
            batches=r.batches,
            retried=r.retried,
        )
        for r in replicas
    ]


class ExampleInfo(BaseModel):
    url: str = Field(examples=["/examples/3/0"])
    class_name: str = Field(description="The class folder the photo was trained under")
    credit: str = Field(description="Its author and source, from the dataset's LICENSE.txt")
    license: str | None = Field(None, description="The licence's address, where stated")


class ModelResponse(BaseModel):
    version: str
    classes: list[str]
    val_accuracy: float | None
    created_at: str | None
    loaded_at: str
    engine: str
    precision: str = Field(
        description="The engine's arithmetic: f32, bf16/f16, or int8 (a version's INT8 IR, its "
        "layers kept in float in bf16 where publishing checked them in bf16, else f32; see "
        "FLOWERS_ENGINE_PRECISION)"
    )
    float_precision: str = Field(
        description="What the layers kept in float compute in: for int8, f32 or bf16 as above; "
        "for a float engine, its precision",
        examples=["f32"],
    )
    device: str
    batching: BatchingInfo
    limits: UploadLimitsInfo | None = Field(
        None, description="What one upload may be: clients shrink or split to fit"
    )
    examples: list[ExampleInfo] = Field(
        default_factory=list,
        description="Photos to try the model on, with their credits (empty where the version "
        "ships none)",
    )
    metadata: dict[str, Any] = Field(
        description="The version's metadata.json (metrics, training, dataset), without where "
        "the server's files lie (dataset.root and .skipped, evaluation_set.folder: the admin API "
        "has them)"
    )
    replicas: list[ReplicaInfo] | None = Field(
        None, description="On a Ray cluster: every replica, where it runs and what it serves"
    )
    versions_served: list[str] | None = Field(None, description=VERSIONS_SERVED, examples=[["3"]])


class Health(BaseModel):
    status: str = Field(examples=["ok"])
    model_version: str | None = None
    replicas: list[ReplicaInfo] | None = Field(
        None, description="On a Ray cluster: every replica, where it runs and what it serves"
    )
    versions_served: list[str] | None = Field(None, description=VERSIONS_SERVED, examples=[["3"]])


class ValidationErrors(BaseModel):
    """A 422: FastAPI's list of validation errors, with the request id."""

    detail: list[dict[str, Any]] = Field(
        examples=[[{"type": "greater_than_equal", "loc": ["body", "epochs"], "msg": "..."}]]
    )
    request_id: str | None = Field(None, description="Also in the X-Request-ID response header")


class Error(BaseModel):
    detail: str = Field(
        examples=["rose.svg: SVG images are not accepted; send JPEG, PNG, WEBP, GIF, BMP, TIFF"]
    )
    request_id: str | None = Field(None, description="Also in the X-Request-ID response header")


if TYPE_CHECKING:  # a class built at run time is not a type to mypy; it has these fields
    RetrainRequest = TrainOptions
else:
    RetrainRequest = options.request_model()


class JobAccepted(BaseModel):
    job_id: str
    status_url: str


class VersionSummary(BaseModel):
    version: str
    created_at: str | None
    classes: list[str]
    val_accuracy: float | None
    evaluation: str | None = Field(
        None,
        description="How val_accuracy was measured (e.g. 5-fold cross-validation); null: on the "
        "version's held-out validation split",
    )
    eval_accuracy: float | None = Field(
        None,
        description="Its accuracy on the evaluation folder (FLOWERS_EVAL_DIR: photos never "
        "trained on) at publishing; null without one",
    )
    eval_photos: int | None = Field(None, description="How many photos eval_accuracy is on")
    size_bytes: int
    note: str | None = Field(None, description="The operators' note on this version")
    note_updated_at: str | None = None
    active: bool = Field(description="The store's active pointer names this version")
    serving: bool = Field(description="This server is serving this version now")


class NoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = Field(
        max_length=500,
        # Text, tabs and newlines: no other control character (C0, DEL, C1).
        pattern=r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f]*$",
        description="Free text, up to 500 characters (trimmed); empty removes the note",
        examples=["trained after the May uploads"],
    )


class ModelList(BaseModel):
    active: str | None
    serving: str | None
    keep_versions: int = Field(
        description="Retention (FLOWERS_KEEP_VERSIONS): after each publish the newest N versions "
        "plus the active one are kept; 0: every version is kept"
    )
    versions: list[VersionSummary]


class VersionDetail(VersionSummary):
    per_class: dict[str, ClassScores] = Field(
        description="Validation precision, recall and F1 per class (empty when not measured)"
    )
    plots: dict[str, str] = Field(
        description="The plots this version holds, by name, with their URLs (admin token needed)",
        examples=[{"history.png": "/admin/models/3/plots/history.png"}],
    )
    metadata: dict[str, Any] = Field(
        description="The version's whole metadata.json (metrics, training, dataset, activation)"
    )


class ClassCount(BaseModel):
    name: str
    images: int
    bytes: int


class DatasetSummary(BaseModel):
    root: str
    classes: list[ClassCount]
    total_images: int
    total_bytes: int


class StoredImage(BaseModel):
    filename: str
    stored_as: str


class DuplicateImage(BaseModel):
    filename: str
    existing: str = Field(description="The class/file that already holds the same bytes")


class RejectedImage(BaseModel):
    filename: str
    status: int
    reason: str


class JobLogPage(BaseModel):
    lines: list[str]
    offset: int = Field(description="The first line's number (0-based)")
    next_offset: int = Field(description="Where the next page starts")
    total_lines: int = Field(description="Lines in the log now (a running job's grows)")


class FlagQueued(BaseModel):
    id: str
    queued: bool = Field(description="False: the same photo already waits for review (that flag)")
    suggested: str


class FlagInfo(BaseModel):
    id: str
    created_at: str
    suggested: str = Field(description="The class the flagger says the photo is")
    predicted: str | None = Field(description="The class the model said")
    model_version: str | None
    filename: str
    size_bytes: int
    image_url: str


class FlagAccept(BaseModel):
    model_config = ConfigDict(extra="forbid")

    class_name: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="The class to file the photo under; null: the one the flagger suggested",
    )


class FlagAccepted(BaseModel):
    id: str
    stored_as: str | None = Field(description="Where the photo went in the dataset")
    duplicate_of: str | None = Field(description="The dataset photo with the same bytes, if any")


class RemovedImage(BaseModel):
    removed: str = Field(description="The class/file deleted from the dataset folder")


class DatasetAddResult(BaseModel):
    class_name: str
    stored: list[StoredImage]
    duplicates: list[DuplicateImage]
    rejected: list[RejectedImage]


class VersionAnswer(BaseModel):
    predicted: str
    confidence: float


class DisagreedPhoto(BaseModel):
    digest: str = Field(description="SHA-256 of the photo's bytes")
    source: str = Field(description="Where it is, relative to the dataset folder")
    label: str = Field(description="Its class folder: the right answer")
    a: VersionAnswer
    b: VersionAnswer
    image_url: str = Field(description="The photo, while the dataset still holds it unchanged")


class Disagreements(BaseModel):
    """What two versions answered on the photos both were measured on (out of sample each)."""

    a: str
    b: str
    common: int = Field(description="Photos both were measured on, under the same class")
    both_right: int
    only_a_right: int
    only_b_right: int
    both_wrong: int
    relabelled: int = Field(description="Photos in both whose class folder changed between runs")
    total: int = Field(description="Photos on which their answers differ")
    photos: list[DisagreedPhoto] = Field(
        description="The first `limit` of them: those only one version gets right first"
    )
