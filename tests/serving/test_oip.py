"""The Open Inference Protocol (KServe v2) under /v2: through the ASGI app on both stacks,
then with the real tritonclient against a live uvicorn server."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnx
import orjson
import pytest
import tritonclient.http as triton
from fastapi import FastAPI
from tritonclient.utils import InferenceServerException

from pamtalk import __version__
from pamtalk.api.app import create_app
from pamtalk.db import manage
from pamtalk.db.models import Role
from pamtalk.models.contract import CONTRACTS, DEMAND, ESG, ModelContract
from pamtalk.registry import promote, store
from pamtalk.serving.service import PredictorService
from pamtalk.settings import Settings
from tests import services
from tests.conftest import ADMIN_KEY, ActorFactory, Stack, running
from tests.serving.conftest import ModelStore, example

BIN = Path(sys.executable).parent
HEADER_LENGTH = "Inference-Header-Content-Length"
ONNX_DATATYPES = {onnx.TensorProto.FLOAT: "FP32"}


@pytest.fixture
async def headers(new_actor: ActorFactory) -> dict[str, str]:
    return (await new_actor(Role.buyer)).headers


def predictor(app: FastAPI) -> PredictorService:
    service: PredictorService = app.state.pamtalk.predictor
    return service


def json_request(contract: ModelContract, inputs: list[np.ndarray], **extra: Any) -> dict[str, Any]:
    return {
        "inputs": [
            {
                "name": spec.name,
                "shape": list(array.shape),
                "datatype": "FP32",
                "data": array.ravel().tolist(),
            }
            for spec, array in zip(contract.inputs, inputs, strict=True)
        ],
        **extra,
    }


def binary_request(contract: ModelContract, inputs: list[np.ndarray]) -> tuple[bytes, int]:
    """A body in Triton's binary tensor data form, every output asked for binary."""
    header = orjson.dumps(
        {
            "id": "bin-1",
            "inputs": [
                {
                    "name": spec.name,
                    "shape": list(array.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": array.nbytes},
                }
                for spec, array in zip(contract.inputs, inputs, strict=True)
            ],
            "parameters": {"binary_data_output": True},
        }
    )
    return header + b"".join(array.astype("<f4").tobytes() for array in inputs), len(header)


def onnx_tensors(values: Any) -> list[dict[str, Any]]:
    """name, datatype and shape (-1 for a symbolic axis) of ONNX graph inputs or outputs."""
    return [
        {
            "name": value.name,
            "datatype": ONNX_DATATYPES[value.type.tensor_type.elem_type],
            "shape": [
                dim.dim_value if dim.HasField("dim_value") else -1
                for dim in value.type.tensor_type.shape.dim
            ],
        }
        for value in values
    ]


def assert_oip_error(response: httpx.Response, status: int, match: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["error"] and isinstance(body["error"], str), body
    assert match in body["error"], body


# -- through the ASGI app -------------------------------------------------------------------


async def test_server_metadata_and_health(client: httpx.AsyncClient) -> None:
    server = await client.get("/v2")
    assert server.status_code == 200
    assert server.json() == {
        "name": "pamtalk",
        "version": __version__,
        "extensions": ["binary_tensor_data"],
    }
    live = await client.get("/v2/health/live")
    assert (live.status_code, live.json()) == (200, {"live": True})
    ready = await client.get("/v2/health/ready")
    assert (ready.status_code, ready.json()) == (200, {"ready": True})
    for path in ("/v2/models/pamtalk-esg/ready", "/v2/models/pamtalk-demand/versions/1/ready"):
        model = await client.get(path)
        assert model.status_code == 200 and model.json()["ready"] is True
    assert_oip_error(await client.get("/v2/models/pamtalk-esg/versions/9/ready"), 404, "not")
    assert_oip_error(await client.get("/v2/models/nope/ready"), 404, "unknown model 'nope'")


async def test_model_metadata_matches_the_onnx_graph(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    registry = store.connect(settings)
    for name in CONTRACTS:
        champion = promote.resolve(registry, name)
        assert champion is not None
        graph = onnx.load(str(champion.fp32)).graph
        expected: dict[str, Any] = {
            "name": name,
            "versions": ["1"],
            "platform": "onnxruntime_onnx",
            "inputs": onnx_tensors(graph.input),
            "outputs": onnx_tensors(graph.output),
        }
        assert all(t["shape"][0] == -1 for t in expected["inputs"] + expected["outputs"])
        for path in (f"/v2/models/{name}", f"/v2/models/{name}/versions/1"):
            response = await client.get(path)
            assert response.status_code == 200
            assert response.json() == expected
    assert_oip_error(await client.get("/v2/models/pamtalk-nope"), 404, "unknown model")
    missing = await client.get("/v2/models/pamtalk-esg/versions/7")
    assert_oip_error(missing, 404, "pamtalk-esg version 7 is not being served")


@pytest.mark.parametrize("contract", [ESG, DEMAND], ids=["esg", "demand"])
async def test_json_infer_equals_the_service(
    client: httpx.AsyncClient, app: FastAPI, headers: dict[str, str], contract: ModelContract
) -> None:
    name = contract.registered_name
    inputs = example(contract, 3)
    local = await predictor(app).infer(name, inputs)
    (output,) = contract.outputs

    response = await client.post(
        f"/v2/models/{name}/infer", json=json_request(contract, inputs, id="req-7"), headers=headers
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert (body["model_name"], body["model_version"], body["id"]) == (name, "1", "req-7")
    (tensor,) = body["outputs"]
    assert (tensor["name"], tensor["datatype"]) == (output.name, "FP32")
    assert tensor["shape"] == list(local.outputs[0].shape)
    got = np.array(tensor["data"], np.float32).reshape(tensor["shape"])
    np.testing.assert_array_equal(got, local.outputs[0])

    # Nested data, the version in the path, the output named: the same numbers.
    nested = {
        "inputs": [
            {"name": s.name, "shape": list(a.shape), "datatype": "FP32", "data": a.tolist()}
            for s, a in zip(contract.inputs[::-1], inputs[::-1], strict=True)
        ],
        "outputs": [{"name": output.name}],
    }
    pinned = await client.post(f"/v2/models/{name}/versions/1/infer", json=nested, headers=headers)
    assert pinned.status_code == 200, pinned.text
    assert pinned.json()["id"] == pinned.headers["x-request-id"]  # no id sent: the request's
    data = pinned.json()["outputs"][0]["data"]
    np.testing.assert_array_equal(np.array(data, np.float32).reshape(got.shape), got)


async def test_binary_infer_equals_the_service(
    client: httpx.AsyncClient, app: FastAPI, headers: dict[str, str]
) -> None:
    inputs = example(DEMAND, 2)
    local = await predictor(app).infer("pamtalk-demand", inputs)
    body, length = binary_request(DEMAND, inputs)
    response = await client.post(
        "/v2/models/pamtalk-demand/infer",
        content=body,
        headers={**headers, HEADER_LENGTH: str(length), "Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    result = triton.InferResult.from_response_body(
        response.content, header_length=int(response.headers[HEADER_LENGTH])
    )
    assert result.get_response()["id"] == "bin-1"
    np.testing.assert_array_equal(result.as_numpy("quantiles"), local.outputs[0])

    compressed = await client.post(
        "/v2/models/pamtalk-demand/infer",
        content=gzip.compress(body),
        headers={**headers, HEADER_LENGTH: str(length), "Content-Encoding": "gzip"},
    )
    assert compressed.status_code == 200, compressed.text
    assert compressed.content == response.content


async def test_errors_take_the_protocol_shape(
    client: httpx.AsyncClient, headers: dict[str, str], settings: Settings
) -> None:
    practices, mask = example(ESG, 2)
    good = json_request(ESG, [practices, mask])
    url = "/v2/models/pamtalk-esg/infer"

    unauthenticated = await client.post(url, json=good)
    assert_oip_error(unauthenticated, 401, "authentication required")
    assert unauthenticated.headers["www-authenticate"] == "Bearer"
    assert_oip_error(
        await client.post("/v2/models/pamtalk-nope/infer", json=good, headers=headers),
        404,
        "unknown model 'pamtalk-nope'",
    )
    assert_oip_error(
        await client.post("/v2/models/pamtalk-esg/versions/5/infer", json=good, headers=headers),
        404,
        "not being served",
    )
    wrong_shape = json_request(ESG, [practices[:, :30], mask[:, :30]])
    assert_oip_error(
        await client.post(url, json=wrong_shape, headers=headers), 422, "must have shape [N, 34]"
    )
    nan = json_request(ESG, [np.full_like(practices, np.nan), mask])
    nan_body = orjson.dumps(nan).replace(b"null", b"NaN")  # orjson writes NaN as null
    assert_oip_error(await client.post(url, content=nan_body, headers=headers), 422, "NaN")

    cases: list[tuple[bytes | dict[str, Any], str]] = [
        (b'{"inputs": [', "not valid JSON"),
        (b"", "not valid JSON"),
        ({"inputs": good["inputs"][:1]}, "missing: mask"),
        ({"inputs": [*good["inputs"], {**good["inputs"][0], "name": "x"}]}, "unknown input 'x'"),
        ({"inputs": [{**good["inputs"][0], "datatype": "FP64"}, good["inputs"][1]]}, "takes FP32"),
        ({"inputs": [{**good["inputs"][0], "datatype": "REAL"}]}, "unknown datatype 'REAL'"),
        ({"inputs": [{**good["inputs"][0], "shape": [3, 34]}]}, "takes 102 values, data has 68"),
        ({"inputs": [{**good["inputs"][0], "shape": ["2", 34]}]}, "inputs.0.shape.0"),
        ({"inputs": [{**good["inputs"][0], "data": ["a"] * 68}]}, "data must be numbers"),
        ({**good, "outputs": [{"name": "nope"}]}, "unknown output 'nope'"),
        ({**good, "parameters": {"binary_data_output": "yes"}}, "must be true or false"),
        (
            {"inputs": [{**good["inputs"][0], "parameters": {"binary_data_size": 272}}]},
            "both data and binary_data_size",
        ),
        ({"inputs": [{**good["inputs"][0], "shape": [1] * 65}]}, "65 dimensions, at most 64"),
        ({"inputs": [{**good["inputs"][0], "shape": [0, 2**62]}]}, "must be from 0 to"),
        ({"inputs": [{**good["inputs"][0], "shape": [0, 2**40, 2**40]}]}, "is too large"),
    ]
    for body, message in cases:
        content = body if isinstance(body, bytes) else orjson.dumps(body)
        assert_oip_error(await client.post(url, content=content, headers=headers), 400, message)

    binary, length = binary_request(ESG, [practices, mask])
    for header, message in (
        ("12x", "must be an integer"),
        (str(len(binary) + 1), "but the body has"),
        (str(length + 8), "not valid JSON"),
    ):
        response = await client.post(
            url, content=binary, headers={**headers, HEADER_LENGTH: header}
        )
        assert_oip_error(response, 400, message)
    short = await client.post(
        url, content=binary[:-4], headers={**headers, HEADER_LENGTH: str(length)}
    )
    assert_oip_error(short, 400, "runs past the end of the body")
    no_header = await client.post(url, content=binary[:length], headers=headers)
    assert_oip_error(no_header, 400, "no Inference-Header-Content-Length header")

    bomb = gzip.compress(b" " * (settings.max_body_bytes + 1))
    inflated = await client.post(url, content=bomb, headers={**headers, "Content-Encoding": "gzip"})
    assert_oip_error(inflated, 413, "inflates to more than")
    brotli = await client.post(url, content=b"{}", headers={**headers, "Content-Encoding": "br"})
    assert_oip_error(brotli, 400, "unsupported Content-Encoding 'br'")


async def test_not_ready_without_champions(stack: Stack, empty_registry: str) -> None:
    settings = Settings(
        env="test",
        database_url=stack.database_url,
        redis_url=stack.redis_url,
        mlflow_tracking_uri=empty_registry,
        model_watch_interval=0,
    )
    application = create_app(settings)
    async with running(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await client.get("/v2/health/live")).status_code == 200
            ready = await client.get("/v2/health/ready")
            assert_oip_error(ready, 503, "no champion loaded for pamtalk-demand, pamtalk-esg")
            assert_oip_error(await client.get("/v2/models/pamtalk-esg/ready"), 503, "champion")
            metadata = await client.get("/v2/models/pamtalk-esg")
            assert metadata.status_code == 200 and metadata.json()["versions"] == []


async def test_openapi_documents_the_v2_routes(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    infer = schema["paths"]["/v2/models/{name}/infer"]["post"]
    body = infer["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["inputs"] and "$ref" not in orjson.dumps(body).decode()
    assert infer["responses"]["4XX"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"
    }
    assert infer["security"]  # needs a user
    assert "security" not in schema["paths"]["/v2/models/{name}"]["get"]


# -- a live server and tritonclient ---------------------------------------------------------


@pytest.fixture(scope="module")
def live_registry(model_store: ModelStore, tmp_path_factory: pytest.TempPathFactory) -> str:
    return model_store.copy(tmp_path_factory.mktemp("oip") / "store")


@pytest.fixture(scope="module")
async def live_database(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated SQLite database holding the admin API key (what `pamtalk init` does)."""
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('oip-db') / 'pamtalk.db'}"
    settings = Settings(database_url=url, admin_api_key=ADMIN_KEY)
    await manage.upgrade_database(settings)
    await manage.register_admin_key(settings)
    return url


@pytest.fixture(scope="module")
def live_url(
    live_database: str, live_registry: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`pamtalk serve` in a process, serving the champions; its host:port."""
    env = {
        **os.environ,
        "PAMTALK_DATABASE_URL": live_database,
        "PAMTALK_MLFLOW_TRACKING_URI": live_registry,
        "PAMTALK_ADMIN_API_KEY": ADMIN_KEY,
        "PAMTALK_ENV": "test",
        "PAMTALK_MODEL_WATCH_INTERVAL": "0",
    }
    env.pop("PAMTALK_REDIS_URL", None)
    port = services.free_port()
    log = tmp_path_factory.mktemp("oip-server") / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(BIN / "pamtalk"), "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    # Ready only once both champions are loaded.
    services.wait_until_up(f"http://127.0.0.1:{port}/v2/health/ready", process, log, timeout=120)
    yield f"127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=20)


@pytest.fixture(scope="module")
async def local(live_registry: str) -> dict[str, tuple[list[np.ndarray], np.ndarray]]:
    """Inputs and what the predictor service answers for them in this process, per model."""
    service = PredictorService(
        Settings(env="test", mlflow_tracking_uri=live_registry, model_watch_interval=0)
    )
    await service.start()
    try:
        answers = {}
        for contract in (ESG, DEMAND):
            inputs = example(contract, 4, seed=3)
            result = await service.infer(contract.registered_name, inputs)
            answers[contract.registered_name] = (inputs, result.outputs[0])
        return answers
    finally:
        await service.close()


@pytest.fixture
def triton_client(live_url: str) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(url=live_url)
    yield client
    client.close()


def test_tritonclient_health_and_metadata(triton_client: triton.InferenceServerClient) -> None:
    assert triton_client.is_server_live()
    assert triton_client.is_server_ready()
    assert triton_client.is_model_ready("pamtalk-esg")
    assert triton_client.is_model_ready("pamtalk-demand", model_version="1")
    assert not triton_client.is_model_ready("pamtalk-demand", model_version="2")
    assert not triton_client.is_model_ready("pamtalk-nope")

    server = triton_client.get_server_metadata()
    assert server["name"] == "pamtalk" and "binary_tensor_data" in server["extensions"]
    metadata = triton_client.get_model_metadata("pamtalk-demand")
    assert metadata["versions"] == ["1"] and metadata["platform"] == "onnxruntime_onnx"
    assert metadata["inputs"] == [
        {"name": "history", "datatype": "FP32", "shape": [-1, 56, 2]},
        {"name": "calendar", "datatype": "FP32", "shape": [-1, 84, 13]},
    ]
    assert metadata["outputs"] == [{"name": "quantiles", "datatype": "FP32", "shape": [-1, 28, 3]}]
    assert triton_client.get_model_metadata("pamtalk-esg", model_version="1")["versions"] == ["1"]
    with pytest.raises(InferenceServerException) as missing:
        triton_client.get_model_metadata("pamtalk-nope")
    assert missing.value.status() == "404" and "unknown model" in missing.value.message()


def infer_inputs(contract: ModelContract, arrays: list[np.ndarray], binary: bool) -> list[Any]:
    inputs = []
    for spec, array in zip(contract.inputs, arrays, strict=True):
        tensor = triton.InferInput(spec.name, list(array.shape), "FP32")
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    return inputs


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("contract", [ESG, DEMAND], ids=["esg", "demand"])
def test_tritonclient_infer_equals_local(
    triton_client: triton.InferenceServerClient,
    local: dict[str, tuple[list[np.ndarray], np.ndarray]],
    contract: ModelContract,
    binary: bool,
) -> None:
    name = contract.registered_name
    arrays, expected = local[name]
    output = contract.outputs[0].name
    auth = {"X-API-Key": ADMIN_KEY}
    asked = [triton.InferRequestedOutput(output, binary_data=binary)]

    result = triton_client.infer(
        name,
        infer_inputs(contract, arrays, binary),
        outputs=asked,
        request_id="triton-1",
        headers=auth,
    )
    response = result.get_response()
    assert (response["model_name"], response["model_version"], response["id"]) == (
        name,
        "1",
        "triton-1",
    )
    assert ("parameters" in response["outputs"][0]) is binary
    np.testing.assert_allclose(result.as_numpy(output), expected, rtol=1e-6, atol=0)

    pinned = triton_client.infer(
        name, infer_inputs(contract, arrays, binary), model_version="1", headers=auth
    )  # no outputs named: tritonclient asks for all of them, binary
    assert pinned.get_response()["model_version"] == "1"
    np.testing.assert_allclose(pinned.as_numpy(output), expected, rtol=1e-6, atol=0)

    if binary:
        compressed = triton_client.infer(
            name,
            infer_inputs(contract, arrays, binary),
            outputs=asked,
            headers=auth,
            request_compression_algorithm="gzip",
        )
        np.testing.assert_allclose(compressed.as_numpy(output), expected, rtol=1e-6, atol=0)


def test_tritonclient_sees_protocol_errors(
    triton_client: triton.InferenceServerClient,
    local: dict[str, tuple[list[np.ndarray], np.ndarray]],
) -> None:
    arrays, _ = local["pamtalk-esg"]
    inputs = infer_inputs(ESG, arrays, binary=True)
    with pytest.raises(InferenceServerException) as unauthenticated:
        triton_client.infer("pamtalk-esg", inputs)
    assert unauthenticated.value.status() == "401"
    assert "authentication required" in unauthenticated.value.message()
    with pytest.raises(InferenceServerException) as unserved:
        triton_client.infer(
            "pamtalk-esg", inputs, model_version="3", headers={"X-API-Key": ADMIN_KEY}
        )
    assert unserved.value.status() == "404" and "not being served" in unserved.value.message()
    wrong = infer_inputs(ESG, [a[:, :10] for a in arrays], binary=True)
    with pytest.raises(InferenceServerException) as shape:
        triton_client.infer("pamtalk-esg", wrong, headers={"X-API-Key": ADMIN_KEY})
    assert shape.value.status() == "422" and "must have shape" in shape.value.message()
