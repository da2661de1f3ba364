"""POST /predict: uploaded images in, softmax probabilities and the predicted class out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from app.http import multipart
from app.http.deps import LimitsDep, PredictorDep
from app.http.errors import responses
from app.http.schemas import Prediction, PredictResponse
from app.inference.backend import Inference

router = APIRouter(tags=["inference"])


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses=responses(400, 408, 413, 415, 500, 503, 504),
    openapi_extra=multipart.multipart_images_body(),
)
async def predict(
    request: Request,
    predictor: PredictorDep,
    limits: LimitsDep,
    top_k: Annotated[
        int | None, Query(ge=1, le=1000, description="Return only the k most probable classes")
    ] = None,
) -> PredictResponse:
    """Classify one or more images sent as multipart file parts named `file` or `files`."""
    # A declared body over the limit is 413 before anything else; no model, no room in the queue
    # or in the memory budget for the declared body: 503, before a byte of the body is read.
    declared = multipart.declared_size(request, limits)
    with predictor.admit(declared) as admitted:
        images = await multipart.read_images(
            request, limits, on_image=admitted.start_decoding, meter=admitted.meter
        )
        inference = await admitted.classify(images)
    return predict_response([image.name for image in images], inference, top_k)


def predict_response(
    filenames: list[str], inference: Inference, top_k: int | None = None
) -> PredictResponse:
    classes = inference.classes
    rows = zip(filenames, inference.probabilities.tolist(), strict=True)  # plain floats: cheaper
    return PredictResponse(
        model_version=str(inference.version),
        predictions=[_prediction(name, row, classes, top_k) for name, row in rows],
    )


def _prediction(
    filename: str, values: list[float], classes: list[str], top_k: int | None
) -> Prediction:
    ranked = sorted(range(len(values)), key=lambda i: -values[i])
    shown = ranked[:top_k] if top_k else range(len(values))  # all: in the model's class order
    best = ranked[0]
    return Prediction(
        filename=filename,
        class_name=classes[best],
        confidence=values[best],
        probabilities={classes[i]: values[i] for i in shown},
    )
