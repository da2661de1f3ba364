"""/admin: retrain jobs, model versions (activate, roll back) and labelled images.

Guarded once, where the router is included (``dependencies=[Depends(require_admin)]``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path as FilePath
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request, status
from fastapi.responses import FileResponse

from app import imaging
from app.dataset.labelling import CLASS_NAME, DatasetWriter
from app.dataset.spool import spooled
from app.http import bodies, multipart
from app.http.deps import ServiceDep
from app.http.errors import responses, status_of
from app.http.schemas import (
    ClassCount,
    ClassScores,
    DatasetAddResult,
    DatasetSummary,
    DuplicateImage,
    JobAccepted,
    ModelList,
    RejectedImage,
    RetrainRequest,
    StoredImage,
    VersionDetail,
    VersionSummary,
)
from app.http.service import Service
from app.jobs.records import Job
from app.store.versions import PLOTS, Version

router = APIRouter(tags=["admin"], responses=responses(401, 403))

ClassName = Annotated[
    str, Path(pattern=CLASS_NAME.pattern, description="Letters, digits, _ and -; 1-64 characters")
]
JobId = Annotated[str, Path(pattern=r"^[A-Za-z0-9]{1,64}$")]
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
async def retrain(request: Request, service: ServiceDep) -> JobAccepted:
    """Start a training job on the server's dataset folder; poll its status_url."""
    recipe = await bodies.read_model(request, RetrainRequest)  # after the token check
    job = await service.jobs.start(recipe)
    return JobAccepted(job_id=job.id, status_url=f"/admin/jobs/{job.id}")


@router.get("/jobs", response_model=list[Job])
async def list_jobs(service: ServiceDep) -> list[Job]:
    """Every job, newest first."""
    return await asyncio.to_thread(service.jobs.records.all)


@router.get("/jobs/{job_id}", response_model=Job, responses=responses(404))
async def get_job(service: ServiceDep, job_id: JobId) -> Job:
    """A job's state, progress, timings, result or error, and the last lines of its log."""
    return await asyncio.to_thread(service.jobs.records.get, job_id)


@router.delete("/jobs/{job_id}", response_model=Job, responses=responses(404, 409))
async def cancel_job(service: ServiceDep, job_id: JobId) -> Job:
    """Cancel a running job: its trainer is stopped and publishes nothing."""
    return await service.jobs.cancel(job_id)


@router.get("/models", response_model=ModelList)
async def list_models(service: ServiceDep) -> ModelList:
    """Every complete version, with which is active in the store and which this server serves."""
    return await asyncio.to_thread(_model_list, service)


@router.get("/models/{version}", response_model=VersionDetail, responses=responses(404, 409))
async def get_model(service: ServiceDep, version: VersionNumber) -> VersionDetail:
    """A version's summary, per-class validation metrics, plots and whole metadata."""
    return await asyncio.to_thread(_version_detail, service, version)


@router.get(
    "/models/{version}/plots/{plot}",
    response_class=FileResponse,
    responses={
        200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}},
        **responses(404, 409),
    },
)
async def get_plot(service: ServiceDep, version: VersionNumber, plot: PlotName) -> FileResponse:
    """A version's training curves (history.png) or validation confusion matrix (confusion.png)."""
    path = await asyncio.to_thread(service.store.plot, version, plot)
    return FileResponse(path, media_type="image/png")


@router.post("/models/{version}/activate", response_model=ModelList, responses=responses(404, 409))
async def activate(service: ServiceDep, version: VersionNumber) -> ModelList:
    """Load and warm up a version beside the serving one, swap it in, and point the store at it."""
    await service.backend.activate(version)
    return await asyncio.to_thread(_model_list, service)


@router.delete("/models/{version}", response_model=ModelList, responses=responses(404, 409))
async def delete_model(service: ServiceDep, version: VersionNumber) -> ModelList:
    """Delete a version from the store; never the active one or one that serves."""
    await asyncio.to_thread(service.store.delete, version, _in_use(service))
    return await asyncio.to_thread(_model_list, service)


def _model_list(service: Service) -> ModelList:
    active, serving = _active_and_serving(service)
    versions = [_summary(service, v, active, serving) for v in service.store.versions()]
    return ModelList(
        active=str(active) if active else None,
        serving=str(serving) if serving else None,
        keep_versions=service.settings.keep_versions,
        versions=versions,
    )


def _active_and_serving(service: Service) -> tuple[int | None, int | None]:
    current = service.backend.serving()
    # a garbled pointer is shown as "none"
    return service.store.pointer_or_none(), current.number if current else None


def _in_use(service: Service) -> set[int]:
    """The versions this server serves: on a cluster, every Model replica's."""
    replicas = service.backend.replicas() or []
    models = [service.backend.serving(), *(replica.model for replica in replicas)]
    return {model.number for model in models if model is not None}


def _summary(
    service: Service, version: Version, active: int | None, serving: int | None
) -> VersionSummary:
    return VersionSummary(
        version=str(version.number),
        created_at=version.metadata.created_at,
        classes=version.classes,
        val_accuracy=version.metadata.val_accuracy,
        evaluation=version.metadata.metrics.evaluation,
        size_bytes=service.store.size_bytes(version),
        active=version.number == active,
        serving=version.number == serving,
    )


def _version_detail(service: Service, number: int) -> VersionDetail:
    version = service.store.get(number)
    summary = _summary(service, version, *_active_and_serving(service))
    scores = version.metadata.metrics.per_class
    return VersionDetail(
        **summary.model_dump(),
        per_class={name: ClassScores(**vars(score)) for name, score in scores.items()},
        plots={
            name: f"/admin/models/{number}/plots/{name}"
            for name in PLOTS
            if (version.path / name).is_file()
        },
        metadata=version.metadata.as_dict(),
    )


@router.get("/dataset", response_model=DatasetSummary, responses=responses(409))
async def dataset_summary(service: ServiceDep) -> DatasetSummary:
    """Class names with image counts and sizes in the server's dataset folder."""
    writer = service.dataset()
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
    request: Request, service: ServiceDep, class_name: ClassName
) -> DatasetAddResult:
    """Add labelled images to a class (created if new); duplicates and bad files are reported."""
    writer = service.dataset()  # 409 before reading the body when no folder is configured
    await asyncio.to_thread(writer.check_new_class, class_name)  # 422 before reading it too
    declared = multipart.declared_size(request, service.settings)
    with service.admission.admit(declared) as ticket:
        async with spooled(writer.root) as spool:
            parts = await multipart.read_images(
                request,
                service.settings,
                lambda name, data: (name, spool.write_later(data)),
                ticket.counted,
            )
            files = [(name, await written) for name, written in parts]
            # One file after the other, in upload order, so duplicates within a request are
            # reported against the first copy.
            return await asyncio.to_thread(_add_all, writer, class_name, files)


def _add_all(
    writer: DatasetWriter, class_name: str, uploaded: list[tuple[str, FilePath]]
) -> DatasetAddResult:
    result = DatasetAddResult(class_name=class_name, stored=[], duplicates=[], rejected=[])
    for filename, path in uploaded:
        try:
            outcome = writer.add(class_name, path.read_bytes())
        except imaging.ImageError as error:
            code, _, _ = status_of(error)
            result.rejected.append(RejectedImage(filename=filename, status=code, reason=str(error)))
            continue
        if outcome.stored_as is not None:
            result.stored.append(StoredImage(filename=filename, stored_as=outcome.stored_as))
        else:
            result.duplicates.append(
                DuplicateImage(filename=filename, existing=outcome.duplicate_of or "")
            )
    return result
