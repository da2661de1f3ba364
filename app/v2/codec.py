"""The Open Inference Protocol's (KServe V2) inference messages in their REST form: a JSON
document, or a JSON header followed by binary tensor data (the binary tensor data extension:
``Inference-Header-Content-Length`` gives the header's size, each binary input or output says its
``binary_data_size``, and a BYTES tensor is its elements in row-major order, each a 4-byte
little-endian length followed by the bytes).

In JSON, BYTES elements of an input are base64 strings (image files are not UTF-8 text); BYTES
outputs are UTF-8 strings.  Every malformed request raises :class:`InvalidInferRequest` (400)
naming what is wrong.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from collections.abc import Iterable
from typing import Any, Final

from app.errors import shown
from app.v2.types import (
    InferRequest,
    InferResponse,
    InputTensor,
    InvalidInferRequest,
    OutputTensor,
    RequestedOutput,
)

_LENGTH: Final = struct.Struct("<I")
_MAX_SIZE_DIGITS: Final = 12  # a byte count beyond any body the server reads
_MAX_DATA_DEPTH: Final = 32  # a tensor of more dimensions than that is no image batch
_MAX_SHOWN_CHARS: Final = 200  # of a parser's message, which may quote the input


def serialize_bytes(elements: Iterable[bytes]) -> bytes:
    """A BYTES tensor's binary form: each element as a 4-byte little-endian length + bytes."""
    return b"".join(_LENGTH.pack(len(element)) + element for element in elements)


def deserialize_bytes(raw: bytes, what: str = "BYTES data") -> list[bytes]:
    elements = []
    view = memoryview(raw)
    offset = 0
    while offset < len(view):
        if offset + 4 > len(view):
            raise InvalidInferRequest(f"{what}: an element length is cut short")
        (size,) = _LENGTH.unpack_from(view, offset)
        offset += 4
        if offset + size > len(view):
            raise InvalidInferRequest(
                f"{what}: an element says {size:,} bytes, {len(view) - offset:,} remain"
            )
        elements.append(bytes(view[offset : offset + size]))
        offset += size
    return elements


def tensor_bytes(output: OutputTensor) -> bytes:
    """An output's binary form (binary data extension, gRPC raw_output_contents)."""
    if output.datatype == "BYTES":
        return serialize_bytes(output.data.ravel().tolist())
    return output.data.astype("<f4", copy=False).tobytes()


def parse_rest_request(body: bytes, header_length: str | None) -> InferRequest:
    """A REST inference request: all JSON, or a JSON header of ``header_length`` bytes + data."""
    size = len(body) if header_length is None else _header_size(header_length, len(body))
    header = _json_object(body[:size])
    tail = memoryview(body)[size:]
    inputs = _list(header, "inputs", required=True)
    if not inputs:
        raise InvalidInferRequest("'inputs' is empty: send at least one input tensor")
    parsed, offset = [], 0
    for index, item in enumerate(inputs):
        tensor, offset = _input(_object(item, f"inputs[{index}]"), tail, offset)
        parsed.append(tensor)
    if offset != len(tail):
        raise InvalidInferRequest(
            f"{len(tail) - offset:,} bytes of binary data follow the inputs' binary_data_size"
        )
    outputs = _list(header, "outputs", required=False)
    parameters = _parameters(header, "the request")
    return InferRequest(
        id=_optional_str(header, "id"),
        inputs=parsed,
        outputs=None if outputs is None else [_requested(o, i) for i, o in enumerate(outputs)],
        binary_output=_bool(parameters, "binary_data_output", False),
    )


def encode_rest_response(response: InferResponse) -> tuple[bytes, int | None]:
    """The response body, and the JSON header's length when binary data follows it."""
    outputs, tails = [], []
    for output in response.outputs:
        entry: dict[str, Any] = {
            "name": output.name,
            "datatype": output.datatype,
            "shape": list(output.data.shape),
        }
        if output.binary:
            tails.append(tensor_bytes(output))
            entry["parameters"] = {"binary_data_size": len(tails[-1])}
        else:
            entry["data"] = _json_data(output)
        outputs.append(entry)
    document: dict[str, Any] = {
        "model_name": response.model_name,
        "model_version": response.model_version,
    }
    if response.id:
        document["id"] = response.id
    document["outputs"] = outputs
    header = json.dumps(document, separators=(",", ":")).encode()
    if not tails:
        return header, None
    return b"".join([header, *tails]), len(header)


def _json_data(output: OutputTensor) -> list[Any]:
    flat = output.data.ravel().tolist()
    if output.datatype == "BYTES":
        return [element.decode("utf-8", errors="replace") for element in flat]
    return list(flat)


def _header_size(header_length: str, body_size: int) -> int:
    digits = header_length.strip()
    if not digits.isdecimal() or len(digits) > _MAX_SIZE_DIGITS:
        raise InvalidInferRequest(
            f"Inference-Header-Content-Length must be a byte count, not {shown(header_length)}"
        )
    size = int(header_length)
    if not 0 < size <= body_size:
        raise InvalidInferRequest(
            f"Inference-Header-Content-Length {size:,} does not fit the {body_size:,}-byte body"
        )
    return size


def _json_object(data: bytes | memoryview) -> dict[str, Any]:
    try:
        document = json.loads(bytes(data))
    except RecursionError:
        raise InvalidInferRequest("the inference request is nested too deeply") from None
    except ValueError as error:  # not JSON, or an integer of more digits than Python converts
        shown = str(error)[:_MAX_SHOWN_CHARS]
        raise InvalidInferRequest(
            f"the inference request is not valid JSON ({shown}); a request with binary data "
            "needs the Inference-Header-Content-Length header"
        ) from None
    return _object(document, "the inference request")


def _input(item: dict[str, Any], tail: memoryview, offset: int) -> tuple[InputTensor, int]:
    name = _str(item, "name")
    datatype = _str(item, "datatype")
    shape = _shape(item, name)
    size = _parameters(item, f"input {shown(name)}").get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidInferRequest(f"input {shown(name)}: binary_data_size must be a byte count")
        if offset + size > len(tail):
            raise InvalidInferRequest(
                f"input {shown(name)}: binary_data_size {size:,} is beyond the end of the body"
            )
        raw = bytes(tail[offset : offset + size])
        elements = deserialize_bytes(raw, f"input {shown(name)}") if datatype == "BYTES" else None
        return InputTensor(name, datatype, shape, elements), offset + size
    if "data" not in item:
        raise InvalidInferRequest(f"input {shown(name)} has neither 'data' nor binary_data_size")
    elements = _base64_elements(item["data"], name) if datatype == "BYTES" else None
    return InputTensor(name, datatype, shape, elements), offset


def _base64_elements(data: Any, name: str) -> list[bytes]:
    flat: list[Any] = []
    _flatten(data, flat)
    elements = []
    for index, value in enumerate(flat):
        if not isinstance(value, str):
            raise InvalidInferRequest(
                f"input {shown(name)}: BYTES elements in JSON are base64 strings, "
                f"element {index} is {type(value).__name__}"
            )
        try:
            elements.append(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            raise InvalidInferRequest(
                f"input {shown(name)}: element {index} is not base64 (send files base64-encoded in "
                "JSON, or as binary data)"
            ) from None
    return elements


def _flatten(data: Any, into: list[Any], depth: int = 0) -> None:
    if depth > _MAX_DATA_DEPTH:
        raise InvalidInferRequest(
            f"the data of an input is nested too deeply (more than {_MAX_DATA_DEPTH} levels)"
        )
    if isinstance(data, list):
        for item in data:
            _flatten(item, into, depth + 1)
    else:
        into.append(data)


def _requested(item: Any, index: int) -> RequestedOutput:
    entry = _object(item, f"outputs[{index}]")
    name = _str(entry, "name")
    parameters = _parameters(entry, f"output {shown(name)}")
    k = parameters.get("classification")
    if k is not None and (not isinstance(k, int) or isinstance(k, bool) or k < 1):
        raise InvalidInferRequest(
            f"output {shown(name)}: classification must be a class count of at least 1"
        )
    binary = parameters.get("binary_data")
    return RequestedOutput(
        name, None if binary is None else _bool(parameters, "binary_data", False), k
    )


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInferRequest(f"{what} must be a JSON object")
    return value


def _list(document: dict[str, Any], key: str, required: bool) -> list[Any] | None:
    value = document.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, list):
        raise InvalidInferRequest(f"'{key}' must be a list")
    return value


def _str(document: dict[str, Any], key: str) -> str:
    value = document.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidInferRequest(f"every tensor needs a '{key}' string")
    return value


def _optional_str(document: dict[str, Any], key: str) -> str:
    value = document.get(key, "")
    if not isinstance(value, str):
        raise InvalidInferRequest(f"'{key}' must be a string")
    return value


def _shape(item: dict[str, Any], name: str) -> tuple[int, ...]:
    shape = item.get("shape")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise InvalidInferRequest(f"input {shown(name)}: 'shape' must be a list of sizes (>= 0)")
    return tuple(shape)


def _parameters(document: dict[str, Any], what: str) -> dict[str, Any]:
    parameters = document.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise InvalidInferRequest(f"the parameters of {what} must be a JSON object")
    return parameters


def _bool(parameters: dict[str, Any], key: str, default: bool) -> bool:
    value = parameters.get(key, default)
    if not isinstance(value, bool):
        raise InvalidInferRequest(f"parameter '{key}' must be true or false")
    return value
