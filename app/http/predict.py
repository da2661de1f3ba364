"""POST /predict: uploaded images in, softmax probabilities and the predicted class out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from app.http import multipart
from app.http.deps import ServiceDep
from app.http.errors import responses
from app.http.schemas import Prediction, PredictResponse

router = APIRouter(tags=["inference"])


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses=responses(400, 408, 413, 415, 500, 503, 504),
    openapi_extra=multipart.multipart_images_body(),
)
async def predict(
    request: Request,
    service: ServiceDep,
    top_k: Annotated[
        int | None, Query(ge=1, le=1000, description="Return only the k most probable classes")
    ] = None,
) -> PredictResponse:
    """Classify one or more images sent as multipart file parts named `file` or `files`."""
    # A declared body over the limit is 413 before anything else; no model, no room in the queue
    # or in the memory budget for the declared body: 503, before a byte of the body is read.
    declared = multipart.declared_size(request, service.settings)
    classified = await service.predictor.run(
        lambda start, meter: multipart.read_images(request, service.settings, start, meter),
        declared,
    )
    result = classified.predictions(top_k)
    return PredictResponse(
        model_version=str(result.model_version),
        predictions=[Prediction(**vars(p)) for p in result.predictions],
    )
