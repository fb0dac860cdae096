"""The Ray Serve backend on a real local Ray: the same answers as in-process serving, live
scaling (also through `pamtalk scale`), and back-pressure as 429s.

Ray is imported inside the tests: importing ray.serve warns (pydantic deprecations in its
config models), and only the marks below, not the collection, may ignore that.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from pamtalk.cli import app
from pamtalk.errors import TooManyRequests
from pamtalk.models.contract import DEMAND, ESG
from pamtalk.serving.service import PredictorService
from pamtalk.settings import Settings
from tests.serving.conftest import example, local_ray

pytestmark = [
    pytest.mark.filterwarnings("ignore:Using extra keyword arguments on `Field`"),
]


def on_ray(settings: Settings, **update: Any) -> Settings:
    return settings.model_copy(
        update={
            "serving_backend": "ray",
            "ray_min_replicas": 1,
            "ray_max_replicas": 2,
            "ray_num_cpus": 0.25,  # this box has 2 cores
            "serving_warmup_batches": [1],
            **update,
        }
    )


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    """A local Ray that the tests, not the backend, started (as on an external cluster)."""
    with local_ray():
        yield


def running(app_name: str) -> int:
    from ray import serve

    app = serve.status().applications.get(app_name)
    if app is None:
        return 0
    states = app.deployments["OnnxReplica"].replica_states
    return sum(n for state, n in states.items() if state == "RUNNING")


def wait_for_replicas(app_name: str, replicas: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while running(app_name) != replicas:
        assert time.monotonic() < deadline, f"{app_name}: {running(app_name)} != {replicas}"
        time.sleep(0.2)


async def test_ray_answers_as_local_serving_does(serving_settings: Settings) -> None:
    import ray

    assert not ray.is_initialized()
    # The default precision (static int8 on the CPU): its answers do not depend on how the
    # two backends batch, so they must be the same bit for bit.
    local = PredictorService(serving_settings)
    on_serve = PredictorService(on_ray(serving_settings))
    await local.start()
    await on_serve.start()  # starts a local Ray of its own
    try:
        assert {(s.model, s.version, s.precision, s.device) for s in on_serve.served()} == {
            ("pamtalk-demand", "1", "int8", "cpu"),
            ("pamtalk-esg", "1", "int8", "cpu"),
        }
        for contract in (ESG, DEMAND):
            inputs = example(contract, 3)
            got = await on_serve.infer(contract.registered_name, inputs)
            want = await local.infer(contract.registered_name, inputs)
            assert got.version == "1"
            for g, w in zip(got.outputs, want.outputs, strict=True):
                np.testing.assert_array_equal(g, w)
        # Concurrent requests of different sizes: micro-batched, each gets its own rows.
        requests = [example(ESG, n % 5 + 1, seed=n) for n in range(40)]
        answers = await asyncio.gather(*(on_serve.infer("pamtalk-esg", r) for r in requests))
        for inputs, got in zip(requests, answers, strict=True):
            want = await local.infer("pamtalk-esg", inputs)
            np.testing.assert_array_equal(got.outputs[0], want.outputs[0])
    finally:
        await on_serve.close()
        await local.close()
    assert not ray.is_initialized()  # it started Ray, so it stopped it


async def replica_ids(want: int, within: float = 30) -> set[str]:
    """The replicas that answer pamtalk-esg-v1's calls, once ``want`` of them have (the
    handle learns of new replicas a moment after the controller reports them)."""
    from ray import serve

    handle = serve.get_app_handle("pamtalk-esg-v1")
    seen: set[str] = set()
    deadline = time.monotonic() + within
    while len(seen) < want:
        assert time.monotonic() < deadline, f"only {seen} answered"
        about = await asyncio.gather(*(handle.describe.remote() for _ in range(10)))
        seen |= {a["replica"] for a in about}
    return seen


async def test_scale_is_live_and_survives_a_new_version(
    ray_cluster: None, serving_settings: Settings
) -> None:
    from ray import serve

    from pamtalk.serving.ray_backend import scale

    service = PredictorService(on_ray(serving_settings))
    await service.start()
    try:
        wait_for_replicas("pamtalk-esg-v1", 1)
        before = await replica_ids(1)
        assert scale("pamtalk-esg", 2) == ["pamtalk-esg-v1"]
        wait_for_replicas("pamtalk-esg-v1", 2)
        # A config-only update: the replica that was up is still up.
        assert before < await replica_ids(2)
        assert (await service.infer("pamtalk-esg", example(ESG, 2))).version == "1"

        # A new version of the model starts with the pinned count.
        champion = service.routers["pamtalk-esg"].champion
        assert champion is not None
        v2 = await service.backend.deploy(dataclasses.replace(champion.artifact, version="2"), ESG)
        wait_for_replicas("pamtalk-esg-v2", 2)
        await v2.retire()
        assert "pamtalk-esg-v2" not in serve.status().applications

        result = CliRunner().invoke(app, ["scale", "pamtalk-esg", "--replicas", "1"])
        assert result.exit_code == 0, result.output
        assert "pamtalk-esg-v1: 1 replica" in result.output
        wait_for_replicas("pamtalk-esg-v1", 1)

        unknown = CliRunner().invoke(app, ["scale", "pamtalk-nope", "--replicas", "1"])
        assert unknown.exit_code == 2 and "unknown model 'pamtalk-nope'" in unknown.output
    finally:
        await service.close()
    # Not its Ray: it took down only its own applications.
    assert serve.status().applications == {}


async def test_a_full_ray_queue_is_a_429(ray_cluster: None, serving_settings: Settings) -> None:
    settings = on_ray(
        serving_settings,
        ray_max_replicas=1,
        ray_max_ongoing_requests=1,
        ray_max_queued_requests=1,
        # One row per micro-batch, many in flight: more calls than Ray may queue.
        serving_max_batch_size=1,
        serving_parallelism=32,
        serving_timeout_s=30,
    )
    service = PredictorService(settings)
    await service.start()
    try:
        flood = [service.infer("pamtalk-esg", example(ESG, 1, seed=n)) for n in range(300)]
        results = await asyncio.wait_for(asyncio.gather(*flood, return_exceptions=True), 60)
        refused = [r for r in results if isinstance(r, TooManyRequests)]
        others = [r for r in results if isinstance(r, BaseException) and r not in refused]
        assert refused and not others, others[:3]
        assert refused[0].status_code == 429 and refused[0].headers == {"Retry-After": "1"}
        assert len(refused) < len(results)  # the rest were answered
        assert (await service.infer("pamtalk-esg", example(ESG, 2))).version == "1"
    finally:
        await service.close()
