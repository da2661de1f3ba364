"""The Open Inference Protocol's REST form: requests parsed, responses written, errors named.

Requests are built by tritonclient's own encoder (the client the protocol has to satisfy) where
it can build them, and by hand for what it never sends.
"""

from __future__ import annotations

import base64
import json
import re
import struct

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import deserialize_bytes_tensor, serialize_byte_tensor

from app.v2 import codec
from app.v2.types import InferResponse, InvalidInferRequest, OutputTensor

IMAGES = [b"\xff\xd8first image", b"", b"\x89PNG\r\n\x1a\nthird"]


def _triton_body(
    binary: bool, outputs: list[triton.InferRequestedOutput] | None = None, **kwargs: object
) -> tuple[bytes, str | None]:
    tensor = triton.InferInput("image", [len(IMAGES)], "BYTES")
    data = IMAGES if binary else [base64.b64encode(image) for image in IMAGES]
    tensor.set_data_from_numpy(np.array(data, dtype=object), binary_data=binary)
    body, header_length = triton.InferenceServerClient.generate_request_body(
        [tensor], outputs=outputs, **kwargs
    )
    return body, None if header_length is None else str(header_length)


def test_bytes_elements_are_a_little_endian_length_then_the_bytes() -> None:
    raw = codec.serialize_bytes(IMAGES)
    assert raw[:4] == struct.pack("<I", len(IMAGES[0]))
    assert raw == serialize_byte_tensor(np.array(IMAGES, dtype=object)).item()
    assert codec.deserialize_bytes(raw) == IMAGES


@pytest.mark.parametrize("cut", [2, 4 + len(IMAGES[0]) - 1])
def test_cut_short_bytes_data_is_refused(cut: int) -> None:
    with pytest.raises(InvalidInferRequest, match=r"cut short|remain"):
        codec.deserialize_bytes(codec.serialize_bytes(IMAGES)[:cut])


def test_a_binary_request_from_tritonclient_is_parsed() -> None:
    outputs = [triton.InferRequestedOutput("probabilities", binary_data=True, class_count=3)]
    body, header_length = _triton_body(True, outputs, request_id="req-7")
    assert header_length is not None
    request = codec.parse_rest_request(body, header_length)
    assert request.id == "req-7"
    [tensor] = request.inputs
    assert (tensor.name, tensor.datatype, tensor.shape) == ("image", "BYTES", (3,))
    assert tensor.elements == IMAGES
    [output] = request.outputs or []
    assert (output.name, output.binary, output.classification) == ("probabilities", True, 3)


def test_a_json_request_carries_images_as_base64() -> None:
    body, header_length = _triton_body(False)
    assert header_length is None
    request = codec.parse_rest_request(body, None)
    assert request.inputs[0].elements == IMAGES
    assert request.outputs is None
    assert request.binary_output  # tritonclient asks for binary outputs when it names none


def test_nested_json_data_is_read_in_row_major_order() -> None:
    encoded = [base64.b64encode(image).decode() for image in IMAGES]
    document = {"inputs": [{"name": "image", "shape": [3], "datatype": "BYTES"}]}
    document["inputs"][0]["data"] = [[encoded[0]], [encoded[1], encoded[2]]]
    request = codec.parse_rest_request(json.dumps(document).encode(), None)
    assert request.inputs[0].elements == IMAGES


def test_unknown_parameters_are_ignored() -> None:
    document = {
        "parameters": {"priority": 3, "custom": "x"},
        "inputs": [{"name": "image", "shape": [0], "datatype": "BYTES", "data": []}],
    }
    request = codec.parse_rest_request(json.dumps(document).encode(), None)
    assert request.binary_output is False


def _body(document: object) -> bytes:
    return json.dumps(document).encode()


def _input(**fields: object) -> dict[str, object]:
    return {"name": "image", "shape": [1], "datatype": "BYTES", **fields}


MALFORMED: dict[str, tuple[bytes, str | None, str]] = {
    "not json": (b"\x00\x01binary", None, "not valid JSON"),
    "a json list": (b"[1, 2]", None, "must be a JSON object"),
    "no inputs": (_body({"id": "1"}), None, "'inputs' must be a list"),
    "empty inputs": (_body({"inputs": []}), None, "'inputs' is empty"),
    "input without a name": (_body({"inputs": [{"shape": [1]}]}), None, "'name' string"),
    "negative shape": (_body({"inputs": [_input(shape=[-1], data=[])]}), None, "'shape'"),
    "no data": (_body({"inputs": [_input()]}), None, "neither 'data' nor binary_data_size"),
    "data not base64": (_body({"inputs": [_input(data=["not base64!"])]}), None, "not base64"),
    "data not strings": (_body({"inputs": [_input(data=[17])]}), None, "element 0 is int"),
    "header length not a number": (_body({"inputs": []}), "twelve", "must be a byte count"),
    "header length beyond the body": (_body({"inputs": []}), "9999", "does not fit"),
    "binary size beyond the body": (
        _body({"inputs": [_input(parameters={"binary_data_size": 50})]}) + b"\0" * 8,
        str(len(_body({"inputs": [_input(parameters={"binary_data_size": 50})]}))),
        "beyond the end of the body",
    ),
    "bytes after the binary inputs": (
        _body({"inputs": [_input(parameters={"binary_data_size": 4})]}) + b"\0" * 8,
        str(len(_body({"inputs": [_input(parameters={"binary_data_size": 4})]}))),
        "4 bytes of binary data follow",
    ),
    "id not a string": (_body({"id": 5, "inputs": [_input(data=[])]}), None, "'id' must be"),
    "classification of zero": (
        _body(
            {
                "inputs": [_input(data=[])],
                "outputs": [{"name": "p", "parameters": {"classification": 0}}],
            }
        ),
        None,
        "at least 1",
    ),
    "binary_data_output not a bool": (
        _body({"inputs": [_input(data=[])], "parameters": {"binary_data_output": "yes"}}),
        None,
        "true or false",
    ),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_request_is_refused_naming_the_problem(case: str) -> None:
    body, header_length, message = MALFORMED[case]
    with pytest.raises(InvalidInferRequest, match=re.escape(message)):
        codec.parse_rest_request(body, header_length)


def _response(binary_probabilities: bool, binary_labels: bool) -> InferResponse:
    probabilities = np.array([[0.25, 0.75], [0.5, 0.5]], dtype=np.float32)
    labels = np.array([b"tulips", "marguerite \u00e9t\u00e9".encode()], dtype=object)
    return InferResponse(
        model_name="flowers",
        model_version="3",
        id="req-1",
        outputs=[
            OutputTensor("probabilities", "FP32", probabilities, binary_probabilities),
            OutputTensor("label", "BYTES", labels, binary_labels),
        ],
    )


@pytest.mark.parametrize(("binary_probabilities", "binary_labels"), [(True, True), (False, False)])
def test_tritonclient_reads_what_the_server_writes(
    binary_probabilities: bool, binary_labels: bool
) -> None:
    body, header_length = codec.encode_rest_response(_response(binary_probabilities, binary_labels))
    assert (header_length is None) == (not binary_probabilities and not binary_labels)
    result = triton.InferenceServerClient.parse_response_body(body, header_length=header_length)
    assert result.get_response()["model_version"] == "3"
    assert result.get_response()["id"] == "req-1"
    assert result.as_numpy("probabilities").tolist() == [[0.25, 0.75], [0.5, 0.5]]
    labels = [
        label if isinstance(label, bytes) else label.encode()
        for label in result.as_numpy("label").tolist()
    ]
    assert labels == [b"tulips", "marguerite \u00e9t\u00e9".encode()]


def test_binary_outputs_follow_the_header_in_order() -> None:
    body, header_length = codec.encode_rest_response(_response(True, True))
    assert header_length is not None
    header = json.loads(body[:header_length])
    sizes = [output["parameters"]["binary_data_size"] for output in header["outputs"]]
    tail = body[header_length:]
    assert sizes == [4 * 4, len(tail) - 16]
    assert np.frombuffer(tail[:16], "<f4").tolist() == [0.25, 0.75, 0.5, 0.5]
    assert deserialize_bytes_tensor(tail[16:]).tolist()[0] == b"tulips"


def test_a_json_response_without_an_id_leaves_it_out() -> None:
    response = InferResponse("flowers", "1", "", [])
    body, _ = codec.encode_rest_response(response)
    assert json.loads(body) == {"model_name": "flowers", "model_version": "1", "outputs": []}
