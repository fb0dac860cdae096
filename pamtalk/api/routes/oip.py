"""The Open Inference Protocol (KServe v2) over REST, under /v2: server and model metadata,
health, and inference with JSON or binary tensors (Triton's binary tensor data extension),
so that standard clients (tritonclient, KServe's InferenceRESTClient) work unchanged.

Errors on these routes take the protocol's shape, ``{"error": "message"}``, not the
``{"error": {...}}`` of the /v1 routes. Metadata and health are open; infer needs a user.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from pamtalk.api import context
from pamtalk.api.deps import CurrentUser, PredictorDep, SettingsDep
from pamtalk.api.errors import record_error
from pamtalk.api.responses import JSONResponse
from pamtalk.errors import NotFound, PamtalkError, ServiceUnavailable
from pamtalk.serving.oip import codec, wire
from pamtalk.serving.service import PredictorService
from pamtalk.settings import Settings


def oip_error(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    record_error(code)
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class OipRoute(APIRoute):
    """Renders the errors raised in its dependencies and handler in the protocol's shape;
    anything else goes on to the app's handlers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except PamtalkError as exc:
                return oip_error(exc.status_code, exc.code, exc.message, exc.headers)
            except RequestValidationError as exc:
                errors = exc.errors()
                first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
                where = ".".join(str(part) for part in first.get("loc", ()))
                return oip_error(400, "bad_request", f"{where}: {first.get('msg')}")
            except StarletteHTTPException as exc:
                return oip_error(exc.status_code, "http_error", str(exc.detail), exc.headers)

        return handle


_ERRORS: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": wire.ErrorBody, "description": "Client error"},
    "5XX": {"model": wire.ErrorBody, "description": "Server error"},
}

router = APIRouter(
    prefix="/v2", tags=["inference (OIP v2)"], route_class=OipRoute, responses=_ERRORS
)


@router.get("", response_model=wire.ServerMetadata)
async def server_metadata() -> wire.ServerMetadata:
    """Server name, version and protocol extensions."""
    return codec.server_metadata()


@router.get("/health/live", response_model=wire.Live)
async def server_live() -> wire.Live:
    """Open Inference Protocol: the server process is up."""
    return wire.Live(live=True)


@router.get("/health/ready", response_model=wire.Ready)
async def server_ready(predictor: PredictorDep) -> wire.Ready:
    """Ready when every model has a champion loaded; 503 otherwise."""
    if not predictor.ready():
        missing = [name for name in predictor.models() if not predictor.model_ready(name)]
        raise ServiceUnavailable(f"not ready: no champion loaded for {', '.join(missing)}")
    return wire.Ready(ready=True)


@router.get("/models/{name}", response_model=wire.ModelMetadata)
async def model_metadata(name: str, predictor: PredictorDep) -> wire.ModelMetadata:
    """Tensors of the model and the versions being served (champion, then challenger)."""
    info = predictor.metadata(name)
    return codec.model_metadata(info.contract, info.versions)


@router.get("/models/{name}/versions/{version}", response_model=wire.ModelMetadata)
async def model_version_metadata(
    name: str, version: str, predictor: PredictorDep
) -> wire.ModelMetadata:
    """Open Inference Protocol: a served version's inputs and outputs (names, shapes)."""
    info = predictor.metadata(name, version)
    return codec.model_metadata(info.contract, info.versions)


@router.get("/models/{name}/ready", response_model=wire.ModelReady)
async def model_ready(name: str, predictor: PredictorDep) -> wire.ModelReady:
    """Ready when the model's champion is loaded (503 otherwise; 404 for an unknown model)."""
    if not predictor.model_ready(name):
        raise ServiceUnavailable(f"{name} has no champion loaded yet")
    return wire.ModelReady(name=name, ready=True)


@router.get("/models/{name}/versions/{version}/ready", response_model=wire.ModelReady)
async def model_version_ready(name: str, version: str, predictor: PredictorDep) -> wire.ModelReady:
    """Ready when this version is being served (404 otherwise)."""
    if not predictor.model_ready(name, version):
        raise NotFound(f"{name} version {version} is not being served")
    return wire.ModelReady(name=name, ready=True)


_INFER_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            wire.JSON_TYPE: {"schema": wire.infer_request_schema()},
            wire.BINARY_TYPE: {
                "schema": {"type": "string", "format": "binary"},
                "description": (
                    "binary tensor data extension: the JSON header "
                    f"({wire.HEADER_LENGTH} bytes) then the inputs' raw little-endian bytes"
                ),
            },
        },
    }
}
_INFER_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": wire.InferenceResponse,
        "description": "JSON, or with binary outputs the JSON header "
        f"({wire.HEADER_LENGTH} bytes) followed by their raw bytes",
        "content": {wire.BINARY_TYPE: {"schema": {"type": "string", "format": "binary"}}},
    }
}
HeaderLength = Annotated[
    str | None,
    Header(
        alias=wire.HEADER_LENGTH,
        description="length of the JSON header when binary tensor data follows it",
    ),
]


@router.post("/models/{name}/infer", openapi_extra=_INFER_DOC, responses=_INFER_RESPONSES)
async def infer(
    name: str,
    request: Request,
    user: CurrentUser,
    predictor: PredictorDep,
    settings: SettingsDep,
    header_length: HeaderLength = None,
) -> Response:
    """Run the model's champion (or, for a canary, the challenger this user sticks to)."""
    return await _infer(predictor, settings, request, user.id, name, None, header_length)


@router.post(
    "/models/{name}/versions/{version}/infer",
    openapi_extra=_INFER_DOC,
    responses=_INFER_RESPONSES,
)
async def infer_version(
    name: str,
    version: str,
    request: Request,
    user: CurrentUser,
    predictor: PredictorDep,
    settings: SettingsDep,
    header_length: HeaderLength = None,
) -> Response:
    """Run this version, if it is being served (the champion or the challenger)."""
    return await _infer(predictor, settings, request, user.id, name, version, header_length)


async def _infer(
    predictor: PredictorService,
    settings: Settings,
    request: Request,
    user_id: int,
    name: str,
    version: str | None,
    header_length: str | None,
) -> Response:
    contract = predictor.contract(name)  # an unknown model is a 404 before the body is read
    body = codec.decompress(
        await request.body(), request.headers.get("content-encoding"), settings.max_body_bytes
    )
    decoded = codec.decode_request(body, header_length)
    inputs = codec.contract_inputs(contract, decoded.inputs)
    selected = codec.select_outputs(contract, decoded)
    result = await predictor.infer(name, inputs, key=str(user_id), version=version)
    encoded = codec.encode_response(
        model=result.model,
        version=result.version,
        request_id=decoded.id if decoded.id is not None else context.request_id(),
        selected=selected,
        outputs={
            spec.name: out for spec, out in zip(contract.outputs, result.outputs, strict=True)
        },
    )
    headers = {}
    if encoded.header_length is not None:
        headers[wire.HEADER_LENGTH] = str(encoded.header_length)
    return Response(encoded.body, media_type=encoded.content_type, headers=headers)
