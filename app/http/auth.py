"""The admin guard: `Authorization: Bearer <token>` checked against FLOWERS_ADMIN_TOKEN."""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.errors import AdminDisabled, Unauthorized
from app.http.deps import SettingsDep

_bearer = HTTPBearer(auto_error=False, description="FLOWERS_ADMIN_TOKEN")


def require_admin(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Guard every /admin route (installed once, on the router)."""
    if settings.admin_token is None:
        raise AdminDisabled(
            "the admin API is disabled: set FLOWERS_ADMIN_TOKEN (at least 16 characters) to "
            "enable it"
        )
    if credentials is None:
        raise Unauthorized("send the admin token as Authorization: Bearer <token>")
    if not _same_secret(credentials.credentials, settings.admin_token.get_secret_value()):
        raise Unauthorized("the admin token is wrong")


def _same_secret(given: str, expected: str) -> bool:
    # Comparing fixed-length digests keeps the time independent of the matching prefix and of
    # the lengths.
    digest = hashlib.sha256
    return hmac.compare_digest(digest(given.encode()).digest(), digest(expected.encode()).digest())
