"""What one running app owns, and the typed dependencies through which each route asks for the
one piece it needs (routes never see the whole :class:`Service`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from app.config import Settings
from app.dataset.flags import FlaggingOff, FlagQueue, RateLimiter
from app.dataset.labelling import DatasetNotConfigured, DatasetWriter
from app.inference.admission import Admission
from app.inference.backend import InferenceBackend
from app.inference.control import ModelControl
from app.inference.limits import UploadLimits
from app.inference.manager import NoModel
from app.inference.predictor import Predictor
from app.jobs.runner import JobControl
from app.observability.metrics import Metrics
from app.store.versions import ModelStore
from app.v2.dataplane import DataPlane


@dataclass
class Service:
    """The pieces of one service, built once by the composition root (``app.main``)."""

    settings: Settings
    metrics: Metrics
    limits: UploadLimits
    admission: Admission
    store: ModelStore
    backend: InferenceBackend
    control: ModelControl
    predictor: Predictor
    dataplane: DataPlane
    jobs: JobControl
    dataset: DatasetWriter | None
    flags: FlagQueue | None  # None: flagging is off (FLOWERS_MAX_FLAGS=0)
    flag_limiter: RateLimiter

    async def start(self) -> None:
        await self.jobs.recover()
        await self.backend.start()

    async def stop(self) -> None:
        await self.jobs.close()
        await self.backend.stop(self.settings.shutdown_drain_s)
        self.predictor.close()


# async on purpose: FastAPI would run plain functions in its thread pool, a thread hop on
# every request.
async def get_service(request: Request) -> Service:
    service: Service | None = request.app.state.service
    if service is None:
        raise NoModel("the server is still starting")
    return service


ServiceDep = Annotated[Service, Depends(get_service)]


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


async def get_predictor(service: ServiceDep) -> Predictor:
    return service.predictor


async def get_admission(service: ServiceDep) -> Admission:
    return service.admission


async def get_limits(service: ServiceDep) -> UploadLimits:
    return service.limits


async def get_backend(service: ServiceDep) -> InferenceBackend:
    return service.backend


async def get_control(service: ServiceDep) -> ModelControl:
    return service.control


async def get_dataplane(service: ServiceDep) -> DataPlane:
    return service.dataplane


async def get_store(service: ServiceDep) -> ModelStore:
    return service.store


async def get_jobs(service: ServiceDep) -> JobControl:
    return service.jobs


async def get_dataset(service: ServiceDep) -> DatasetWriter:
    """The dataset folder's writer; 409 (before any body is read) when none is configured."""
    if service.dataset is None:
        raise DatasetNotConfigured(
            "no dataset folder is configured: set FLOWERS_DATA_DIR to a folder of class "
            "sub-folders (it is created on the first upload)"
        )
    return service.dataset


async def get_flags(service: ServiceDep) -> FlagQueue:
    if service.flags is None:
        raise FlaggingOff("flagging is off on this server (FLOWERS_MAX_FLAGS=0)")
    return service.flags


async def get_flag_limiter(service: ServiceDep) -> RateLimiter:
    return service.flag_limiter


SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
PredictorDep = Annotated[Predictor, Depends(get_predictor)]
LimitsDep = Annotated[UploadLimits, Depends(get_limits)]
AdmissionDep = Annotated[Admission, Depends(get_admission)]
BackendDep = Annotated[InferenceBackend, Depends(get_backend)]
ControlDep = Annotated[ModelControl, Depends(get_control)]
DataPlaneDep = Annotated[DataPlane, Depends(get_dataplane)]
StoreDep = Annotated[ModelStore, Depends(get_store)]
JobsDep = Annotated[JobControl, Depends(get_jobs)]
DatasetDep = Annotated[DatasetWriter, Depends(get_dataset)]
FlagsDep = Annotated[FlagQueue, Depends(get_flags)]
FlagLimiterDep = Annotated[RateLimiter, Depends(get_flag_limiter)]
