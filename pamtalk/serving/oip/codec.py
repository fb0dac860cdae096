"""The Open Inference Protocol (KServe v2) codec: infer requests in, responses out, metadata.

Pure: bytes and contracts in, numpy arrays and bytes out; the HTTP routes live in
``pamtalk.api.routes.oip``. Both body forms of the REST protocol are understood:

- JSON: ``{"id"?, "parameters"?, "inputs": [{"name", "shape", "datatype", "data"}],
  "outputs"?: [{"name", "parameters"?}]}`` with ``data`` flat (row-major) or nested;
- Triton's binary tensor data extension: the JSON header, then the raw little-endian bytes of
  each input that declares ``parameters.binary_data_size``, in input order; the header's
  length travels in the ``Inference-Header-Content-Length`` HTTP header. Outputs come back
  binary where asked (``outputs[].parameters.binary_data`` or the request's
  ``parameters.binary_data_output``), the same way.

    request = decode_request(body, headers.get("Inference-Header-Content-Length"))
    inputs = contract_inputs(contract, request.inputs)     # contract order, checked names
    selected = select_outputs(contract, request)
    encoded = encode_response(model=..., version=..., request_id=request.id,
                              selected=selected, outputs={"scores": array})
    encoded.body, encoded.header_length   # header_length is None for a JSON-only body
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from pydantic import ValidationError

from pamtalk import __version__
from pamtalk.errors import BadRequest, PayloadTooLarge
from pamtalk.models.contract import ModelContract
from pamtalk.serving.oip.wire import (
    BINARY_TYPE,
    EXTENSIONS,
    HEADER_LENGTH,
    JSON_TYPE,
    PLATFORM,
    SERVER_NAME,
    InferenceRequest,
    InferenceResponse,
    ModelMetadata,
    Parameters,
    RequestInput,
    RequestOutput,
    ResponseOutput,
    ServerMetadata,
    TensorMetadata,
    datatype_of,
    numpy_dtype,
)

MAX_DIMS = 64  # numpy's limit
MAX_BYTES = 2**62
# numpy kinds of JSON-decoded data each target kind accepts: no bools as numbers, no
# fractions as integers.
_JSON_KINDS = {"b": "b", "i": "iu", "u": "iu", "f": "iuf"}
_JSON_WHAT = {"b": "booleans", "i": "integers", "u": "integers", "f": "numbers"}


# -- metadata ------------------------------------------------------------------------------


def server_metadata() -> ServerMetadata:
    return ServerMetadata(name=SERVER_NAME, version=__version__, extensions=list(EXTENSIONS))


def model_metadata(contract: ModelContract, versions: Sequence[str]) -> ModelMetadata:
    """From the contract, which serving checks against each version's ONNX graph at load."""

    def tensors(specs: Sequence[Any]) -> list[TensorMetadata]:
        return [
            TensorMetadata(
                name=spec.name,
                datatype=datatype_of(spec.dtype),
                shape=[-1 if dim is None else dim for dim in spec.shape],
            )
            for spec in specs
        ]

    return ModelMetadata(
        name=contract.registered_name,
        versions=list(versions),
        platform=PLATFORM,
        inputs=tensors(contract.inputs),
        outputs=tensors(contract.outputs),
    )


# -- requests ------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutputRequest:
    name: str
    binary: bool


@dataclass(frozen=True)
class InferRequest:
    id: str | None
    inputs: dict[str, np.ndarray]  # by name, in request order
    outputs: tuple[OutputRequest, ...] | None  # None: every output
    binary_output: bool  # the default for outputs that do not say


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """The body without its ``Content-Encoding`` (gzip or deflate, as tritonclient sends with
    ``request_compression_algorithm``), at most ``limit`` bytes once inflated."""
    coding = (encoding or "identity").strip().lower()
    if coding == "identity":
        return body
    if coding not in ("gzip", "deflate"):
        raise BadRequest(f"unsupported Content-Encoding {encoding!r}: use gzip, deflate or none")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS if coding == "gzip" else zlib.MAX_WBITS)
    try:
        plain = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BadRequest(f"the body is not valid {coding} data") from exc
    if len(plain) > limit:
        raise PayloadTooLarge(f"the request body inflates to more than {limit} bytes")
    if not inflater.eof:
        raise BadRequest(f"the {coding} body is truncated")
    return plain


def decode_request(body: bytes, header_length: str | None = None) -> InferRequest:
    """Parse an infer request: the whole body is JSON unless ``header_length`` (the
    Inference-Header-Content-Length header) says where the JSON ends and tensor bytes begin."""
    if header_length is None:
        header, binary = body, b""
    else:
        length = _header_length(header_length, len(body))
        header, binary = body[:length], body[length:]
    try:
        parsed = InferenceRequest.model_validate_json(header)
    except ValidationError as exc:
        raise BadRequest(_describe(exc)) from None

    inputs: dict[str, np.ndarray] = {}
    offset = 0
    for tensor in parsed.inputs:
        if tensor.name in inputs:
            raise BadRequest(f"input {tensor.name!r} is given twice")
        array, used = _decode_input(tensor, binary, offset, header_length is not None)
        inputs[tensor.name] = array
        offset += used
    if offset != len(binary):
        raise BadRequest(
            f"the binary part has {len(binary)} bytes but the inputs' binary_data_size add up "
            f"to {offset}"
        )

    binary_output = _flag(parsed.parameters, "binary_data_output", "request parameter")
    outputs = None
    if parsed.outputs is not None:
        outputs = tuple(
            OutputRequest(o.name, _output_binary(o, binary_output)) for o in parsed.outputs
        )
    return InferRequest(parsed.id, inputs, outputs, binary_output)


def _header_length(value: str, body_length: int) -> int:
    try:
        length = int(value.strip())
    except ValueError:
        raise BadRequest(f"{HEADER_LENGTH} must be an integer, got {value[:40]!r}") from None
    if not 0 <= length <= body_length:
        raise BadRequest(f"{HEADER_LENGTH} is {length} but the body has {body_length} bytes")
    return length


def _describe(exc: ValidationError) -> str:
    first = exc.errors(include_url=False)[0]
    if first["type"] == "json_invalid":
        return f"the request is not valid JSON: {first['msg']}"
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}" if where else f"request: {first['msg']}"


def _flag(parameters: Parameters, key: str, what: str) -> bool:
    value = parameters.get(key, False)
    if not isinstance(value, bool):
        raise BadRequest(f"{what} {key} must be true or false, got {value!r}")
    return value


def _output_binary(output: RequestOutput, default: bool) -> bool:
    if output.parameters.get("classification"):
        raise BadRequest(f"output {output.name!r}: the classification extension is not supported")
    if "binary_data" not in output.parameters:
        return default
    return _flag(output.parameters, "binary_data", f"output {output.name!r} parameter")


def _checked_shape(name: str, shape: list[int], dtype: np.dtype[Any]) -> tuple[int, ...]:
    """``shape`` if numpy can hold it: checked before any arithmetic on it, since a request
    may carry thousands of dimensions or enormous ones."""
    if len(shape) > MAX_DIMS:
        raise BadRequest(f"input {name!r}: shape has {len(shape)} dimensions, at most {MAX_DIMS}")
    if any(not 0 <= dim < MAX_BYTES for dim in shape):
        raise BadRequest(f"input {name!r}: shape dimensions must be from 0 to {MAX_BYTES - 1}")
    # numpy refuses a shape whose non-zero dimensions overflow, even if another one is 0.
    if math.prod(dim for dim in shape if dim) * dtype.itemsize >= MAX_BYTES:
        raise BadRequest(f"input {name!r}: shape {shape} is too large")
    return tuple(shape)


def _decode_input(
    tensor: RequestInput, binary: bytes, offset: int, has_binary_part: bool
) -> tuple[np.ndarray, int]:
    """The array of one input and how many bytes of the binary part it took."""
    name = tensor.name
    dtype = numpy_dtype(tensor.datatype, name)
    shape = _checked_shape(name, tensor.shape, dtype)
    count = math.prod(shape)
    size = tensor.parameters.get("binary_data_size")

    if size is not None:
        if tensor.data is not None:
            raise BadRequest(f"input {name!r} has both data and binary_data_size: send one")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BadRequest(f"input {name!r}: binary_data_size must be a byte count")
        expected = count * dtype.itemsize
        if size != expected:
            raise BadRequest(
                f"input {name!r}: binary_data_size is {size} but shape {list(shape)} of "
                f"{tensor.datatype} takes {expected} bytes"
            )
        if offset + size > len(binary):
            if not has_binary_part:
                raise BadRequest(
                    f"input {name!r} is binary (binary_data_size) but the request has no "
                    f"{HEADER_LENGTH} header saying where its JSON ends"
                )
            raise BadRequest(
                f"input {name!r}: binary_data_size {size} runs past the end of the body "
                f"({len(binary) - offset} bytes left)"
            )
        if count == 0:
            return np.empty(shape, dtype), size
        # Little-endian on the wire; astype copies into an aligned, writable native array.
        raw = np.frombuffer(binary, dtype=dtype.newbyteorder("<"), count=count, offset=offset)
        return raw.astype(dtype).reshape(shape), size

    if tensor.data is None:
        raise BadRequest(f"input {name!r} has no data (nor parameters.binary_data_size)")
    return _from_json(tensor, dtype, shape, count), 0


def _from_json(
    tensor: RequestInput, dtype: np.dtype[Any], shape: tuple[int, ...], count: int
) -> np.ndarray:
    name = tensor.name
    try:
        values = np.array(tensor.data)
    except (ValueError, TypeError, OverflowError):
        raise BadRequest(
            f"input {name!r}: data must be a list of numbers, flat or nested evenly"
        ) from None
    if values.size != count:
        raise BadRequest(
            f"input {name!r}: shape {list(shape)} takes {count} values, data has {values.size}"
        )
    if count and values.dtype.kind not in _JSON_KINDS[dtype.kind]:
        raise BadRequest(
            f"input {name!r}: data must be {_JSON_WHAT[dtype.kind]} for {tensor.datatype}"
        )
    if count and dtype.kind in "iu":
        info = np.iinfo(dtype)
        if values.min() < info.min or values.max() > info.max:
            raise BadRequest(f"input {name!r}: a value is out of range for {tensor.datatype}")
    return values.astype(dtype).reshape(shape)


def contract_inputs(contract: ModelContract, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """The named inputs in the contract's order; BadRequest for missing, unknown or
    mistyped ones. Shapes are checked by the predictor service (InvalidInput)."""
    names = [spec.name for spec in contract.inputs]
    model = contract.registered_name
    unknown = [name for name in inputs if name not in names]
    if unknown:
        raise BadRequest(
            f"unknown input {unknown[0]!r} for {model}; its inputs are {', '.join(names)}"
        )
    missing = [name for name in names if name not in inputs]
    if missing:
        raise BadRequest(f"{model} needs inputs {', '.join(names)}; missing: {', '.join(missing)}")
    ordered = []
    for spec in contract.inputs:
        array = inputs[spec.name]
        if array.dtype != np.dtype(spec.dtype):
            raise BadRequest(
                f"input {spec.name!r} is {datatype_of(array.dtype)}; {model} takes "
                f"{datatype_of(spec.dtype)}"
            )
        ordered.append(array)
    return ordered


def select_outputs(contract: ModelContract, request: InferRequest) -> tuple[OutputRequest, ...]:
    """The outputs to return, in the order asked (every output in contract order if the
    request names none); BadRequest for unknown or repeated names."""
    names = [spec.name for spec in contract.outputs]
    if request.outputs is None:
        return tuple(OutputRequest(name, request.binary_output) for name in names)
    seen: set[str] = set()
    for output in request.outputs:
        if output.name not in names:
            raise BadRequest(
                f"unknown output {output.name!r} for {contract.registered_name}; "
                f"its outputs are {', '.join(names)}"
            )
        if output.name in seen:
            raise BadRequest(f"output {output.name!r} is asked for twice")
        seen.add(output.name)
    return request.outputs


# -- responses -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Encoded:
    body: bytes
    header_length: int | None  # the JSON header's length when binary parts follow it

    @property
    def content_type(self) -> str:
        return JSON_TYPE if self.header_length is None else BINARY_TYPE


def encode_response(
    *,
    model: str,
    version: str,
    request_id: str | None,
    selected: Sequence[OutputRequest],
    outputs: Mapping[str, np.ndarray],
) -> Encoded:
    """The response body: JSON data (flat, row-major) for outputs sent as JSON, raw
    little-endian bytes after the JSON header for those asked binary."""
    described: list[ResponseOutput] = []
    parts: list[bytes] = []
    for output in selected:
        array = outputs[output.name]
        flat = np.ascontiguousarray(array).reshape(-1)
        tensor = ResponseOutput(
            name=output.name, shape=list(array.shape), datatype=datatype_of(array.dtype)
        )
        if output.binary:
            data = flat.astype(flat.dtype.newbyteorder("<"), copy=False).tobytes()
            tensor.parameters = {"binary_data_size": len(data)}
            parts.append(data)
        else:
            tensor.data = flat  # orjson writes numpy arrays natively (float32: shortest form)
        described.append(tensor)
    response = InferenceResponse(
        model_name=model, model_version=version, id=request_id, outputs=described
    )
    header = orjson.dumps(response.model_dump(exclude_none=True), option=orjson.OPT_SERIALIZE_NUMPY)
    if not parts:
        return Encoded(header, None)
    return Encoded(b"".join([header, *parts]), len(header))
