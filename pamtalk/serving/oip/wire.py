"""The Open Inference Protocol's (KServe v2) wire types: tensor datatypes, and the JSON
shapes of requests, responses and metadata (pydantic: parsing a request's JSON header, and
the OpenAPI documentation). The codec (codec.py) turns them into numpy arrays and back."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from pamtalk.errors import BadRequest

SERVER_NAME = "pamtalk"
PLATFORM = "onnxruntime_onnx"
EXTENSIONS = ("binary_tensor_data",)
HEADER_LENGTH = "Inference-Header-Content-Length"
JSON_TYPE = "application/json"
BINARY_TYPE = "application/octet-stream"

# OIP tensor datatypes that have a numpy counterpart (BYTES and BF16 have none here).
DATATYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
}
_NAMES = {dtype: name for name, dtype in DATATYPES.items()}
_UNSUPPORTED = ("BYTES", "BF16")


def datatype_of(dtype: np.dtype[Any] | str) -> str:
    """The OIP datatype of a numpy dtype ("float32" -> "FP32")."""
    return _NAMES[np.dtype(dtype)]


def numpy_dtype(datatype: str, tensor: str = "") -> np.dtype[Any]:
    """The numpy dtype of an OIP datatype; BadRequest naming ``tensor`` if there is none."""
    found = DATATYPES.get(datatype)
    if found is not None:
        return found
    where = f"input {tensor!r}: " if tensor else ""
    if datatype in _UNSUPPORTED:
        raise BadRequest(f"{where}datatype {datatype} is not supported by this server")
    raise BadRequest(f"{where}unknown datatype {datatype!r}; one of {', '.join(DATATYPES)}")


Parameters = dict[str, Any]


class RequestInput(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    shape: list[StrictInt]
    datatype: str = Field(description="FP32 for the pamtalk models; " + ", ".join(DATATYPES))
    parameters: Parameters = Field(
        default_factory=dict,
        description="binary_data_size: bytes of this tensor in the binary part (instead of data)",
    )
    data: list[Any] | None = Field(
        default=None, description="the values, flat in row-major order or nested by shape"
    )


class RequestOutput(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    parameters: Parameters = Field(
        default_factory=dict, description="binary_data: true to get it in the binary part"
    )


class InferenceRequest(BaseModel):
    """The JSON of an infer request (with the binary extension, its header)."""

    model_config = ConfigDict(extra="ignore")

    id: str | None = None
    parameters: Parameters = Field(
        default_factory=dict,
        description="binary_data_output: true to get every output in the binary part",
    )
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = Field(
        default=None, description="the outputs to return; all of them when absent"
    )


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: Parameters | None = None
    data: Any = Field(default=None, description="flat, row-major; absent if sent binary")


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[ResponseOutput]


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int] = Field(description="-1 for a dynamic axis (the batch axis)")


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class Live(BaseModel):
    live: bool


class Ready(BaseModel):
    ready: bool


class ModelReady(BaseModel):
    name: str
    ready: bool


class ErrorBody(BaseModel):
    """The protocol's error shape."""

    error: str


def infer_request_schema() -> dict[str, Any]:
    """The JSON schema of an infer request with its definitions inlined (OpenAPI cannot
    resolve pydantic's ``#/$defs/...`` references from inside an operation)."""
    schema = InferenceRequest.model_json_schema()
    defs: dict[str, Any] = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(defs[ref.rsplit("/", 1)[1]])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(value) for value in node]
        return node

    inlined: dict[str, Any] = inline(schema)
    return inlined
