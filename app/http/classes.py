"""GET /classes and GET /model: what the serving model knows."""

from __future__ import annotations

from fastapi import APIRouter

from app.http.deps import BackendDep, ControlDep, SettingsDep
from app.http.errors import responses
from app.http.examples import example_url
from app.http.schemas import (
    BatchingInfo,
    ClassesResponse,
    ExampleInfo,
    ModelResponse,
    UploadLimitsInfo,
    cluster_fields,
)

router = APIRouter(tags=["model"])


@router.get("/classes", response_model=ClassesResponse, responses=responses(503))
async def classes(backend: BackendDep) -> ClassesResponse:
    """The class names, in the model's output order."""
    model = backend.ready_model()
    return ClassesResponse(model_version=str(model.number), classes=model.classes)


@router.get(
    "/model",
    response_model=ModelResponse,
    responses=responses(503),
    response_model_exclude_unset=True,  # `replicas` and `versions_served` only on a cluster
)
async def model_info(
    backend: BackendDep, control: ControlDep, settings: SettingsDep
) -> ModelResponse:
    """The serving version's metadata, the engine and device, and the batching settings."""
    model = backend.ready_model()
    metadata = model.metadata
    return ModelResponse(
        version=str(model.number),
        classes=model.classes,
        val_accuracy=metadata.val_accuracy,
        created_at=metadata.created_at,
        loaded_at=model.loaded_at,
        engine=model.engine,
        precision=model.precision,
        float_precision=model.float_precision,
        device=model.device,
        batching=BatchingInfo(
            max_batch_size=settings.max_batch_size,
            max_batch_delay_ms=settings.max_batch_delay_ms,
            queue_limit=settings.queue_limit,
            batch_sizes=list(model.batch_sizes),
        ),
        limits=UploadLimitsInfo(
            max_file_bytes=settings.max_upload_bytes,
            max_files_per_request=settings.max_files_per_request,
            max_image_pixels=settings.max_image_pixels,
        ),
        examples=[
            ExampleInfo(
                url=example_url(model.number, index),
                class_name=photo.class_name,
                credit=photo.credit,
                license=metadata.examples.license,
            )
            for index, photo in enumerate(metadata.examples.photos)
        ],
        metadata=metadata.public_dict(),
        **cluster_fields(control.replicas()),
    )
