"""The Open Inference Protocol's messages, one set for every protocol: the data plane
(:mod:`app.v2.dataplane`) speaks these; the REST routes send the metadata models as they are,
the REST codec (:mod:`app.v2.codec`) and the gRPC codec (:mod:`app.v2.grpc_codec`) translate
the inference request and response.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, Field

from app.errors import MalformedUpload


class InvalidInferRequest(MalformedUpload):
    """The inference request does not follow the protocol (400)."""


@dataclass(frozen=True)
class InputTensor:
    name: str
    datatype: str
    shape: tuple[int, ...]
    elements: list[bytes] | None  # a BYTES tensor's elements; None for other datatypes


@dataclass(frozen=True)
class RequestedOutput:
    name: str
    binary: bool | None = None  # None: the request's default (binary_data_output)
    classification: int | None = None  # the k best classes as "score:index:label"


@dataclass(frozen=True)
class InferRequest:
    id: str
    inputs: list[InputTensor]
    outputs: list[RequestedOutput] | None = None  # None: every output
    binary_output: bool = False


@dataclass(frozen=True)
class OutputTensor:
    name: str
    datatype: str  # FP32 or BYTES
    data: np.ndarray  # float32, or an object array of bytes; its shape is the tensor's
    binary: bool = False  # REST: sent as binary data after the JSON header


@dataclass(frozen=True)
class InferResponse:
    model_name: str
    model_version: str
    id: str
    outputs: list[OutputTensor]


class V2Error(BaseModel):
    error: str = Field(examples=["unknown model 'resnet': this server serves 'flowers'"])


class ServerLive(BaseModel):
    live: bool


class ServerReady(BaseModel):
    ready: bool


class ModelReady(BaseModel):
    name: str = Field(examples=["flowers"])
    ready: bool


class ServerMetadata(BaseModel):
    name: str = Field(examples=["flower-classifier"])
    version: str = Field(examples=["0.1.0"])
    extensions: list[str] = Field(examples=[["binary_tensor_data", "classification"]])


class TensorMetadata(BaseModel):
    name: str = Field(examples=["image"])
    datatype: str = Field(examples=["BYTES"])
    shape: list[int] = Field(description="-1: a dimension of any size", examples=[[-1]])


class ModelMetadata(BaseModel):
    name: str = Field(examples=["flowers"])
    versions: list[str] = Field(description="Every version in the model store", examples=[["1"]])
    platform: str = Field(description="The engine that runs the model", examples=["openvino"])
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
