"""The web console: its two pages and their assets, static files shipped in ``app/web/``.

No templates and no logic: the pages talk to the server only through the public API (the same
JSON the docs show).  Each page carries a strict Content-Security-Policy of its own (scripts,
styles and fetches from this origin only, no inline code, never framed); the middleware keeps
the API's ``default-src 'none'`` for everything else.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Final

from fastapi import APIRouter
from fastapi.responses import FileResponse
from starlette.exceptions import HTTPException

WEB_ROOT: Final = Path(__file__).resolve().parent.parent / "web"
PAGE_CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
MEDIA_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}

router = APIRouter(include_in_schema=False)


@router.api_route("/", methods=["GET", "HEAD"])
async def classify_page() -> FileResponse:
    """Classify photos in the browser."""
    return _file("index.html", {"Content-Security-Policy": PAGE_CSP})


@router.api_route("/admin", methods=["GET", "HEAD"])
async def console_page() -> FileResponse:
    """The operator's console (the token is typed into the page, never sent in a URL)."""
    return _file("admin.html", {"Content-Security-Policy": PAGE_CSP})


@router.api_route("/web/{name}", methods=["GET", "HEAD"])
async def asset(name: str) -> FileResponse:
    """A script, style sheet or icon of the pages."""
    if name not in assets():
        raise HTTPException(404, f"no web asset named {name!r}")
    return _file(name)


@functools.cache
def assets() -> frozenset[str]:
    """The files the pages may load: those in app/web/ of a known type (read once)."""
    return frozenset(
        path.name for path in WEB_ROOT.iterdir() if path.suffix in MEDIA_TYPES and path.is_file()
    )


def _file(name: str, headers: dict[str, str] | None = None) -> FileResponse:
    path = WEB_ROOT / name
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers=headers)
