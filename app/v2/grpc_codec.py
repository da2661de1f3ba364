"""The Open Inference Protocol's gRPC messages to and from :mod:`app.v2.types`.

Outputs always travel in ``raw_output_contents`` (tritonclient reads numeric outputs only
there).

Import this module only to serve gRPC: its generated messages (package ``inference``) go into
protobuf's default descriptor pool, where another copy of the protocol (tritonclient's, in a
test process) would clash with them.
"""

from __future__ import annotations

from app.errors import shown
from app.v2 import codec
from app.v2.generated import grpc_predict_v2_pb2 as pb
from app.v2.types import (
    InferRequest,
    InferResponse,
    InputTensor,
    InvalidInferRequest,
    ModelMetadata,
    RequestedOutput,
)


def infer_request(message: pb.ModelInferRequest) -> InferRequest:
    """The protocol-neutral request: inputs from raw_input_contents, or from their contents."""
    raw = message.raw_input_contents  # each entry read is a copy: read one at a time
    if raw and len(raw) != len(message.inputs):
        raise InvalidInferRequest(
            f"raw_input_contents holds {len(raw)} entries for {len(message.inputs)} inputs"
        )
    inputs = [
        _input(tensor, raw[index] if raw else None) for index, tensor in enumerate(message.inputs)
    ]
    outputs = [
        RequestedOutput(output.name, classification=_classification(output))
        for output in message.outputs
    ]
    return InferRequest(message.id, inputs, outputs or None)


def _input(tensor: pb.ModelInferRequest.InferInputTensor, raw: bytes | None) -> InputTensor:
    elements = None
    if tensor.datatype == "BYTES":
        if raw is not None:
            elements = codec.deserialize_bytes(raw, f"input {shown(tensor.name)}")
        else:
            elements = list(tensor.contents.bytes_contents)
    return InputTensor(tensor.name, tensor.datatype, tuple(tensor.shape), elements)


def _classification(output: pb.ModelInferRequest.InferRequestedOutputTensor) -> int | None:
    if "classification" not in output.parameters:
        return None
    parameter = output.parameters["classification"]
    kind = parameter.WhichOneof("parameter_choice")
    k = parameter.int64_param if kind == "int64_param" else parameter.uint64_param
    if kind not in ("int64_param", "uint64_param") or k < 1:
        raise InvalidInferRequest(
            f"output {shown(output.name)}: classification must be a class count of at least 1"
        )
    return k


def infer_response(response: InferResponse) -> pb.ModelInferResponse:
    message = pb.ModelInferResponse(
        model_name=response.model_name, model_version=response.model_version, id=response.id
    )
    for output in response.outputs:
        message.outputs.add(name=output.name, datatype=output.datatype, shape=output.data.shape)
        message.raw_output_contents.append(codec.tensor_bytes(output))
    return message


def model_metadata(metadata: ModelMetadata) -> pb.ModelMetadataResponse:
    tensor = pb.ModelMetadataResponse.TensorMetadata
    return pb.ModelMetadataResponse(
        name=metadata.name,
        versions=metadata.versions,
        platform=metadata.platform,
        inputs=[tensor(name=t.name, datatype=t.datatype, shape=t.shape) for t in metadata.inputs],
        outputs=[tensor(name=t.name, datatype=t.datatype, shape=t.shape) for t in metadata.outputs],
    )
