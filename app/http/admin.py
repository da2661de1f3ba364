"""/admin: retrain jobs, model versions (activate, roll back) and labelled images.

Guarded once, where the router is included (``dependencies=[Depends(require_admin)]``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path as FilePath
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, status
from fastapi.responses import FileResponse, Response

from app import errors, imaging
from app.config import Settings
from app.dataset import photos
from app.dataset.flags import Flag
from app.dataset.labelling import CLASS_NAME, STORED_NAME, DatasetWriter
from app.dataset.spool import spooled
from app.http import bodies, multipart
from app.http.deps import (
    AdmissionDep,
    ControlDep,
    DatasetDep,
    FlagsDep,
    JobsDep,
    LimitsDep,
    SettingsDep,
    StoreDep,
)
from app.http.errors import responses
from app.http.schemas import (
    ClassCount,
    DatasetAddResult,
    DatasetSummary,
    DisagreedPhoto,
    Disagreements,
    DuplicateImage,
    FlagAccept,
    FlagAccepted,
    FlagInfo,
    JobAccepted,
    JobLogPage,
    ModelList,
    NoteBody,
    RejectedImage,
    RemovedImage,
    RetrainRequest,
    StoredImage,
    VersionAnswer,
    VersionDetail,
    VersionSummary,
)
from app.inference.control import ModelControl
from app.jobs.records import Job
from app.store import notes, predictions
from app.store.versions import PLOTS, ModelStore, Version

router = APIRouter(tags=["admin"], responses=responses(401, 403))

ClassName = Annotated[
    str, Path(pattern=CLASS_NAME.pattern, description="Letters, digits, _ and -; 1-64 characters")
]
StoredName = Annotated[
    str, Path(pattern=STORED_NAME.pattern, description="<sha256>.<ext>, as POST stored it")
]
JobId = Annotated[str, Path(pattern=r"^[A-Za-z0-9]{1,64}$")]
Digest = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the photo")]
MAX_DISAGREEMENTS = 1000
VersionNumber = Annotated[int, Path(ge=1)]
PlotName = Annotated[
    Literal["history.png", "confusion.png"], Path(description="One of the plots in store.PLOTS")
]


@router.post(
    "/retrain",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobAccepted,
    responses=responses(409, 413, 415, 422),
    openapi_extra=bodies.json_body(RetrainRequest),
)
async def retrain(request: Request, jobs: JobsDep) -> JobAccepted:
    """Start a training job on the server's dataset folder; poll its status_url."""
    options = await bodies.read_model(request, RetrainRequest)  # after the token check
    job = await jobs.start(options)
    return JobAccepted(job_id=job.id, status_url=f"/admin/jobs/{job.id}")


@router.get("/jobs", response_model=list[Job])
async def list_jobs(jobs: JobsDep) -> list[Job]:
    """Every job, newest first."""
    return await jobs.list_jobs()


@router.get("/jobs/{job_id}", response_model=Job, responses=responses(404))
async def get_job(jobs: JobsDep, job_id: JobId) -> Job:
    """A job's state, progress, timings, result or error, and the last lines of its log."""
    return await jobs.get_job(job_id)


@router.get("/jobs/{job_id}/log", response_model=JobLogPage, responses=responses(404))
async def job_log(
    jobs: JobsDep,
    job_id: JobId,
    offset: Annotated[int, Query(ge=0, le=10_000_000, description="First line (0-based)")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000, description="Lines at most (and 256 KB)")] = 200,
) -> JobLogPage:
    """A job's whole log, a page at a time (the job itself carries only its last lines)."""
    lines, next_offset, total = await jobs.log_page(job_id, offset, limit)
    return JobLogPage(lines=lines, offset=offset, next_offset=next_offset, total_lines=total)


@router.delete("/jobs/{job_id}", response_model=Job, responses=responses(404, 409))
async def cancel_job(jobs: JobsDep, job_id: JobId) -> Job:
    """Cancel a running job: its trainer is stopped and publishes nothing."""
    return await jobs.cancel(job_id)


@router.get("/models", response_model=ModelList)
async def list_models(store: StoreDep, control: ControlDep, settings: SettingsDep) -> ModelList:
    """Every complete version, with which is active in the store and which this server serves."""
    return await asyncio.to_thread(_model_list, store, control, settings)


@router.get("/models/{version}", response_model=VersionDetail, responses=responses(404, 409))
async def get_model(store: StoreDep, control: ControlDep, version: VersionNumber) -> VersionDetail:
    """A version's summary, per-class validation metrics, plots and whole metadata."""
    return await asyncio.to_thread(_version_detail, store, control, version)


@router.get(
    "/models/{version}/plots/{plot}",
    response_class=FileResponse,
    responses={
        200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}},
        **responses(404, 409),
    },
)
async def get_plot(store: StoreDep, version: VersionNumber, plot: PlotName) -> FileResponse:
    """A version's training curves (history.png) or validation confusion matrix (confusion.png)."""
    path = await asyncio.to_thread(store.plot, version, plot)
    return FileResponse(path, media_type="image/png")


@router.get(
    "/models/{version}/disagreements/{other}",
    response_model=Disagreements,
    responses=responses(404, 409),
)
async def disagreements(
    store: StoreDep,
    version: VersionNumber,
    other: VersionNumber,
    limit: Annotated[int, Query(ge=0, le=MAX_DISAGREEMENTS)] = 100,
) -> Disagreements:
    """The photos both versions were measured on (each out of sample) where their answers differ,
    those only one of them gets right first; and how many each gets right."""
    return await asyncio.to_thread(_disagreements, store, version, other, limit)


@router.get(
    "/models/{version}/photos/{digest}",
    response_class=Response,
    responses={200: {"content": {"image/*": {}}}, **responses(404, 409, 503)},
)
async def measured_photo(
    store: StoreDep, writer: DatasetDep, version: VersionNumber, digest: Digest
) -> Response:
    """A photo the version was measured on, from the dataset folder (404 once it is gone or
    changed: its bytes must still hash to the digest)."""
    data, media_type = await asyncio.to_thread(_measured_photo, store, writer, version, digest)
    return Response(data, media_type=media_type, headers={"Cache-Control": "private, max-age=300"})


@router.post("/models/{version}/activate", response_model=ModelList, responses=responses(404, 409))
async def activate(
    store: StoreDep, control: ControlDep, settings: SettingsDep, version: VersionNumber
) -> ModelList:
    """Load and warm up a version beside the serving one, swap it in, and point the store at it."""
    await control.activate(version)
    return await asyncio.to_thread(_model_list, store, control, settings)


@router.put(
    "/models/{version}/note",
    response_model=VersionDetail,
    responses=responses(404, 409, 413, 415, 422),
    openapi_extra=bodies.json_body(NoteBody),
)
async def set_note(
    request: Request, store: StoreDep, control: ControlDep, version: VersionNumber
) -> VersionDetail:
    """Write the operators' note on a version (up to 500 characters; empty removes it)."""
    body = await bodies.read_model(request, NoteBody)  # after the token check
    await asyncio.to_thread(notes.write_note, store, version, body.note)
    return await asyncio.to_thread(_version_detail, store, control, version)


@router.delete("/models/{version}", response_model=ModelList, responses=responses(404, 409))
async def delete_model(
    store: StoreDep, control: ControlDep, settings: SettingsDep, version: VersionNumber
) -> ModelList:
    """Delete a version from the store; never the active one or one that serves."""
    await asyncio.to_thread(store.delete, version, _in_use(control))
    return await asyncio.to_thread(_model_list, store, control, settings)


def _model_list(store: ModelStore, control: ModelControl, settings: Settings) -> ModelList:
    active, serving = _active_and_serving(store, control)
    versions = [_summary(store, v, active, serving) for v in store.versions()]
    return ModelList(
        active=str(active) if active else None,
        serving=str(serving) if serving else None,
        keep_versions=settings.keep_versions,
        versions=versions,
    )


def _active_and_serving(store: ModelStore, control: ModelControl) -> tuple[int | None, int | None]:
    current = control.serving()
    # a garbled pointer is shown as "none"
    return store.pointer_or_none(), current.number if current else None


def _in_use(control: ModelControl) -> set[int]:
    """The versions this server serves: on a cluster, every Model replica's."""
    replicas = control.replicas() or []
    models = [control.serving(), *(replica.model for replica in replicas)]
    return {model.number for model in models if model is not None}


def _summary(
    store: ModelStore, version: Version, active: int | None, serving: int | None
) -> VersionSummary:
    note = notes.read_note(version.path)
    held = version.metadata.evaluation_set
    return VersionSummary(
        version=str(version.number),
        created_at=version.metadata.created_at,
        classes=version.classes,
        val_accuracy=version.metadata.val_accuracy,
        evaluation=version.metadata.metrics.evaluation,
        eval_accuracy=held.accuracy if held else None,
        eval_photos=held.photos if held else None,
        size_bytes=store.size_bytes(version),
        note=note.text if note else None,
        note_updated_at=note.updated_at if note else None,
        active=version.number == active,
        serving=version.number == serving,
    )


def _version_detail(store: ModelStore, control: ModelControl, number: int) -> VersionDetail:
    version = store.get(number)
    summary = _summary(store, version, *_active_and_serving(store, control))
    return VersionDetail(
        **summary.model_dump(),
        per_class=dict(version.metadata.metrics.per_class),
        plots={
            name: f"/admin/models/{number}/plots/{name}"
            for name in PLOTS
            if (version.path / name).is_file()
        },
        metadata=version.metadata.as_dict(),
    )


@router.get("/dataset", response_model=DatasetSummary, responses=responses(409))
async def dataset_summary(writer: DatasetDep) -> DatasetSummary:
    """Class names with image counts and sizes in the server's dataset folder."""
    classes = [ClassCount(**vars(c)) for c in await asyncio.to_thread(writer.summary)]
    return DatasetSummary(
        root=str(writer.root),
        classes=classes,
        total_images=sum(c.images for c in classes),
        total_bytes=sum(c.bytes for c in classes),
    )


@router.post(
    "/dataset/{class_name}",
    response_model=DatasetAddResult,
    responses=responses(400, 408, 409, 413, 415),
    openapi_extra=multipart.multipart_images_body(),
)
async def add_images(
    request: Request,
    writer: DatasetDep,  # 409 before reading the body when no folder is configured
    admission: AdmissionDep,
    limits: LimitsDep,
    class_name: ClassName,
) -> DatasetAddResult:
    """Add labelled images to a class (created if new); duplicates and bad files are reported."""
    await asyncio.to_thread(writer.check_new_class, class_name)  # 422 before reading it too
    declared = multipart.declared_size(request, limits)
    with admission.admit(declared) as ticket:
        async with spooled(writer.root) as spool:
            parts = await multipart.read_images(
                request, limits, on_image=spool.write_later, meter=ticket.counted
            )
            files = [(part.name, await part.writing) for part in parts]
            # One file after the other, in upload order, so duplicates within a request are
            # reported against the first copy.
            return await asyncio.to_thread(_add_all, writer, class_name, files)


@router.delete(
    "/dataset/{class_name}/{stored_name}",
    response_model=RemovedImage,
    responses=responses(404, 409),
)
async def remove_image(
    writer: DatasetDep, class_name: ClassName, stored_name: StoredName
) -> RemovedImage:
    """Remove one photo added through the API, by the name it was stored as: the undo of a
    label.  The photos the dataset came with cannot be removed this way."""
    return RemovedImage(removed=await asyncio.to_thread(writer.remove, class_name, stored_name))


FlagId = Annotated[str, Path(pattern=r"^[0-9a-f]{12}$")]


@router.get("/flags", response_model=list[FlagInfo], responses=responses(409))
async def list_flags(flags: FlagsDep) -> list[FlagInfo]:
    """The review queue: every flag waiting for an operator, oldest first."""
    return [_flag_info(flag) for flag in await asyncio.to_thread(flags.all)]


@router.get(
    "/flags/{flag_id}/image",
    response_class=FileResponse,
    responses={200: {"content": {"image/*": {}}}, **responses(404, 409)},
)
async def flag_image(flags: FlagsDep, flag_id: FlagId) -> FileResponse:
    """The flagged photo, as it was sent."""
    _, path = await asyncio.to_thread(flags.image, flag_id)
    return FileResponse(path)  # its media type from its extension, which add() chose


@router.post(
    "/flags/{flag_id}/accept",
    response_model=FlagAccepted,
    responses=responses(404, 409, 413, 415, 422),
    openapi_extra=bodies.json_body(FlagAccept),
)
async def accept_flag(
    request: Request, flags: FlagsDep, writer: DatasetDep, flag_id: FlagId
) -> FlagAccepted:
    """File the flagged photo in the dataset (under `class_name`, else the suggested class) and
    take it out of the queue."""
    body = await bodies.read_model(request, FlagAccept)  # after the token check
    flag, added = await asyncio.to_thread(flags.accept, flag_id, body.class_name, writer)
    return FlagAccepted(id=flag.id, stored_as=added.stored_as, duplicate_of=added.duplicate_of)


@router.delete("/flags/{flag_id}", response_model=FlagInfo, responses=responses(404, 409))
async def reject_flag(flags: FlagsDep, flag_id: FlagId) -> FlagInfo:
    """Reject a flag: its photo is deleted, nothing enters the dataset."""
    return _flag_info(await asyncio.to_thread(flags.reject, flag_id))


def _flag_info(flag: Flag) -> FlagInfo:
    return FlagInfo(
        id=flag.id,
        created_at=flag.created_at,
        suggested=flag.suggested,
        predicted=flag.predicted,
        model_version=flag.model_version,
        filename=flag.filename,
        size_bytes=flag.size_bytes,
        image_url=f"/admin/flags/{flag.id}/image",
    )


def _add_all(
    writer: DatasetWriter, class_name: str, uploaded: list[tuple[str, FilePath]]
) -> DatasetAddResult:
    result = DatasetAddResult(class_name=class_name, stored=[], duplicates=[], rejected=[])
    for filename, path in uploaded:
        try:
            outcome = writer.add(class_name, path.read_bytes())
        except imaging.ImageError as error:
            status = errors.refusal_of(error).status
            result.rejected.append(
                RejectedImage(filename=filename, status=status, reason=str(error))
            )
            continue
        if outcome.stored_as is not None:
            result.stored.append(StoredImage(filename=filename, stored_as=outcome.stored_as))
        else:
            result.duplicates.append(
                DuplicateImage(filename=filename, existing=outcome.duplicate_of or "")
            )
    return result


def _disagreements(store: ModelStore, a: int, b: int, limit: int) -> Disagreements:
    compared = predictions.compare(predictions.load(store.get(a)), predictions.load(store.get(b)))
    return Disagreements(
        a=str(a),
        b=str(b),
        common=compared.common,
        both_right=compared.both_right,
        only_a_right=compared.only_a_right,
        only_b_right=compared.only_b_right,
        both_wrong=compared.both_wrong,
        relabelled=compared.relabelled,
        total=len(compared.disagreements),
        photos=[
            DisagreedPhoto(
                digest=d.digest,
                source=d.source,
                label=d.label,
                a=VersionAnswer(predicted=d.a.predicted, confidence=d.a.confidence),
                b=VersionAnswer(predicted=d.b.predicted, confidence=d.b.confidence),
                image_url=f"/admin/models/{b}/photos/{d.digest}",
            )
            for d in compared.disagreements[:limit]
        ],
    )


def _measured_photo(
    store: ModelStore, writer: DatasetWriter, number: int, digest: str
) -> tuple[bytes, str]:
    photo = predictions.find(store.get(number), digest)
    return photos.read_measured(writer.root, photo.source, digest)
