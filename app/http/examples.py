"""GET /examples/{version}/{index}: the example photos a version ships for the public page.

Public, like the page that shows them; the list (with each photo's credit) is in ``GET /model``.
Only files a complete version's metadata lists are served (:meth:`ModelStore.example`), and a
version's files never change, so the browser may keep them.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import FileResponse

from app.http.deps import StoreDep
from app.http.errors import responses

router = APIRouter(tags=["model"])

MAX_EXAMPLE_INDEX = 999  # options.examples bounds them far lower; a larger index is a 422
CACHE = {"Cache-Control": "public, max-age=86400, immutable"}


@router.get(
    "/examples/{version}/{index}",
    response_class=FileResponse,
    responses={
        200: {"content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}}},
        **responses(404),
    },
)
async def example_photo(
    store: StoreDep,
    version: Annotated[int, Path(ge=1, le=2**31 - 1)],
    index: Annotated[int, Path(ge=0, le=MAX_EXAMPLE_INDEX)],
) -> FileResponse:
    """One of a version's example photos (a shrunk JPEG), as `GET /model`'s `examples` lists."""
    path = await asyncio.to_thread(store.example, version, index)
    return FileResponse(path, media_type="image/jpeg", headers=CACHE)


def example_url(version: int, index: int) -> str:
    return f"/examples/{version}/{index}"
