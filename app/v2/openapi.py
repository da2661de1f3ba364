"""The REST inference bodies as the OpenAPI document shows them: JSON with base64 images.

Documentation only: a request is parsed by :mod:`app.v2.codec` (it may be binary, which no JSON
schema describes), never validated against these.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class RequestInput(BaseModel):
    name: str = Field(examples=["image"])
    shape: list[int] = Field(description="[number of images]", examples=[[1]])
    datatype: str = Field(examples=["BYTES"])
    parameters: dict[str, Any] | None = Field(
        None, description="binary_data_size: the input's bytes follow the JSON header"
    )
    data: list[Any] | None = Field(
        None, description="BYTES elements as base64 strings (one image file each)"
    )


class RequestOutput(BaseModel):
    name: str = Field(examples=["probabilities"])
    parameters: dict[str, Any] | None = Field(
        None,
        description="binary_data (bool); classification (k): the k best classes as "
        '"score:index:label"',
    )


# A 4x4 red PNG: the documented example request is one that the server answers.
_EXAMPLE_IMAGE = (
    "iVBORw0KGgoAAAANSUhEUgAAAAQAAAAECAIAAAAmkwkpAAAAFElEQVR4"
    "2mM8oWHDAANMDEgANwcAPCgBNFl6ACUAAAAASUVORK5CYII="
)


class InferenceRequest(BaseModel):
    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "id": "1",
                    "inputs": [
                        {
                            "name": "image",
                            "shape": [1],
                            "datatype": "BYTES",
                            "data": [_EXAMPLE_IMAGE],
                        }
                    ],
                    "outputs": [{"name": "label"}],
                }
            ]
        }
    }

    id: str | None = None
    parameters: dict[str, Any] | None = Field(
        None, description="binary_data_output (bool): every output as binary data"
    )
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None


class InferenceResponse(BaseModel):
    model_name: str = Field(examples=["flowers"])
    model_version: str = Field(description="The version that computed every output", examples=["1"])
    id: str | None = None
    outputs: list[ResponseOutput]
