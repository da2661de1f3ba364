"""Typed dependencies: routes declare what they need, the lifespan provides it."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.config import Settings
from app.http.service import Service
from app.inference.manager import NoModel


# async on purpose: FastAPI would run plain functions in its thread pool, a thread hop on
# every request.
async def get_service(request: Request) -> Service:
    service: Service | None = getattr(request.app.state, "service", None)
    if service is None:
        raise NoModel("the server is still starting")
    return service


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


ServiceDep = Annotated[Service, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
