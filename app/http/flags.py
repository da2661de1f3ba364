"""POST /flags: anyone says a prediction is wrong, with the photo and the class it really is.

The flag waits in the review queue (:mod:`app.dataset.flags`) until an operator accepts it into
the dataset or rejects it (``/admin/flags``); it is never a label by itself. Rate limited per
client, one photo per flag, the photo validated like any upload, the queue bounded.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, Request, status

from app.errors import TooManyFiles
from app.http import multipart
from app.http.deps import AdmissionDep, BackendDep, FlagLimiterDep, FlagsDep, LimitsDep
from app.http.errors import responses
from app.http.schemas import FlagQueued

router = APIRouter(tags=["feedback"])

Label = Annotated[str, Query(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


@router.post(
    "/flags",
    response_model=FlagQueued,
    status_code=status.HTTP_202_ACCEPTED,
    responses=responses(400, 408, 409, 413, 415, 422, 429, 503),
    openapi_extra=multipart.multipart_one_image_body(),
)
async def flag(
    request: Request,
    flags: FlagsDep,
    limiter: FlagLimiterDep,
    backend: BackendDep,
    admission: AdmissionDep,
    limits: LimitsDep,
    suggested: Annotated[Label, Query(description="The class the photo really is")],
    predicted: Annotated[Label | None, Query(description="The class the model said")] = None,
    model_version: Annotated[
        str | None, Query(pattern=r"^[0-9]{1,9}$", description="The version that said it")
    ] = None,
) -> FlagQueued:
    """Flag one photo (a multipart part named `file`) as misclassified, with the class it is."""
    limiter.check(request.client.host if request.client else "unknown")  # 429 before the body
    known = backend.ready_model().classes  # 503 with no model: nothing to suggest against
    declared = multipart.declared_size(request, limits)
    with admission.admit(declared) as ticket:
        images = await multipart.read_images(
            request, limits, on_image=lambda name, data: (name, data), meter=ticket.counted
        )
        if len(images) != 1:
            raise TooManyFiles(f"a flag carries exactly one photo, not {len(images)}")
        ((filename, data),) = images
        queued_flag, queued = await asyncio.to_thread(
            flags.add, data, filename, suggested, known, predicted, model_version
        )
    return FlagQueued(id=queued_flag.id, queued=queued, suggested=queued_flag.suggested)
