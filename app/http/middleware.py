"""One pure-ASGI middleware for what every request needs: a request id (``X-Request-ID``, the
client's if it is sane, else a new one), security headers, per-route metrics and an access log.

Behind Ray Serve's proxy (``request_id_header=False``) the request always arrives with an id
(the client's, or one the proxy made up), and the proxy adds the header to the response itself:
the id is used for logs and error bodies, and the header is not added a second time.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import errors
from app.http.errors import speaks_v2
from app.observability import logs
from app.observability.metrics import Metrics

access_log = logging.getLogger("app.access")

_SANE_ID: Final = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Health probes (load balancers, Kubernetes, the ready banner) come every few seconds forever:
# their access lines are DEBUG; metrics still count them.
_PROBES: Final = frozenset({"/health/live", "/health/ready"})
_SECURITY_HEADERS: Final = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
_API_CSP: Final = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics, request_id_header: bool = True) -> None:
        self.app = app
        self.metrics = metrics
        self.request_id_header = request_id_header

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        token = logs.request_id.set(request_id)
        started = time.perf_counter()
        status = 500
        responded = False

        async def send_with_headers(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status, responded = message["status"], True
                own = list(message.get("headers", []))
                ours = request_id if self.request_id_header else None
                message["headers"] = [*own, *_headers(ours, own)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as error:
            if responded:  # too late for an error response: the connection is cut
                raise
            # A bug must still answer like every other error: JSON, request id, headers.
            errors.refuse(error, self.metrics)
            await _internal_error(scope, request_id, send_with_headers)
        finally:
            self._observe(scope, status, time.perf_counter() - started)
            logs.request_id.reset(token)

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        template = route_template(scope)
        self.metrics.observe(template, method_label(scope["method"]), status, seconds)
        access_log.log(
            logging.DEBUG if template in _PROBES else logging.INFO,
            "%s %s %d %.1fms",
            scope["method"],
            template,
            status,
            seconds * 1000,
            extra={"fields": {"route": template, "status": status, "ms": round(seconds * 1000, 1)}},
        )


def method_label(method: str) -> str:
    """The method as the metrics record it: the client chooses it, so anything outside the API's
    own methods is one series, ``other`` (httptools accepts 34 methods)."""
    return method if method in _METHODS else "other"


def route_template(scope: Scope) -> str:
    """The matched route's path template with the prefix of the router that included it
    (``/admin/jobs/{job_id}``, not ``/jobs/{job_id}``): the prefix is the request path's leading
    segments that the template does not cover; "unmatched" for no route."""
    template = getattr(scope.get("route"), "path", None)
    if not template:
        return "unmatched"
    segments = scope["path"].rstrip("/").split("/")
    depth = len(template.rstrip("/").split("/"))
    prefix = "/".join(segments[: max(len(segments) - depth + 1, 1)])
    return f"{prefix}{template}" if prefix else str(template)


async def _internal_error(scope: Scope, request_id: str, send: Send) -> None:
    shown = (
        {"error": "internal server error"}
        if speaks_v2(scope)
        else {
            "detail": "internal server error",
            "request_id": request_id,
        }
    )
    body = json.dumps(shown).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 500, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate: str = value.decode("latin-1")
            if _SANE_ID.match(candidate):
                return candidate
    return uuid.uuid4().hex


def _headers(request_id: str | None, own: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    own_id = [] if request_id is None else [(b"x-request-id", request_id.encode("latin-1"))]
    headers = [*own_id, *_SECURITY_HEADERS]
    # The web pages (the console's, the API docs') bring their own policy.
    if not any(name.lower() == _API_CSP[0] for name, _ in own):
        headers.append(_API_CSP)
    return headers
