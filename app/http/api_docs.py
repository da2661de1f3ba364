"""The API's documentation pages: Swagger UI at ``/docs`` and ReDoc at ``/redoc``, over the
app's own OpenAPI document.

Their scripts and styles are vendored in ``app/web/vendor/`` (see its README: versions,
licences, hashes) and served from here, never from a CDN: the pages work offline and carry a
Content-Security-Policy that allows this origin alone.  Both viewers set styles from script
(ReDoc also runs its search in a worker made from a blob), hence the two allowances beyond the
console pages' policy.
"""

from __future__ import annotations

import functools
from typing import Final

from fastapi import APIRouter
from fastapi.responses import FileResponse
from starlette.exceptions import HTTPException

from app.http.web import MEDIA_TYPES, WEB_ROOT

VENDOR_ROOT: Final = WEB_ROOT / "vendor"
DOCS_CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; object-src 'none'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

router = APIRouter(include_in_schema=False)


@router.api_route("/docs", methods=["GET", "HEAD"])
async def swagger_ui() -> FileResponse:
    """Swagger UI: every operation, tried from the browser."""
    return _page("api-docs.html")


@router.api_route("/redoc", methods=["GET", "HEAD"])
async def redoc() -> FileResponse:
    """ReDoc: the same document as a reference to read."""
    return _page("redoc.html")


@router.api_route("/web/vendor/{name}", methods=["GET", "HEAD"])
async def vendored(name: str) -> FileResponse:
    """A vendored script or style sheet of the two pages."""
    if name not in vendored_assets():
        raise HTTPException(404, f"no vendored asset named {name!r}")
    path = VENDOR_ROOT / name
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix])


@functools.cache
def vendored_assets() -> frozenset[str]:
    """The vendored files the pages load (scripts and styles; the licences ship, unserved)."""
    return frozenset(
        path.name
        for path in VENDOR_ROOT.iterdir()
        if path.suffix in (".js", ".css") and path.is_file()
    )


def _page(name: str) -> FileResponse:
    return FileResponse(
        WEB_ROOT / name,
        media_type=MEDIA_TYPES[".html"],
        headers={"Content-Security-Policy": DOCS_CSP},
    )
