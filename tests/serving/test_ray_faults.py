"""A Ray Serve replica that dies with a request in flight, on a real local Ray: the request is
answered by the other replica, never turned into a 500 (found by the chaos scenario
ray_replica_kill, tests/chaos/ray_faults.py)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from pamtalk.models.contract import ESG
from pamtalk.serving.service import PredictorService
from pamtalk.settings import Settings
from tests.serving.conftest import example, local_ray
from tests.serving.test_ray import on_ray

pytestmark = [
    pytest.mark.filterwarnings("ignore:Using extra keyword arguments on `Field`"),
]

APP = "pamtalk-esg-v1"
# Each replica holds a call this long waiting for company (serve.batch's wait, from
# serving_max_wait_ms): long enough for the kill to land while both hold one.
HOLD_S = 3.0


@pytest.fixture
def ray_cluster() -> Iterator[None]:
    """A local Ray of this test's own (RAY_ADDRESS ignored: never someone else's cluster)."""
    with local_ray():
        yield


def esg_replicas() -> list[dict[str, Any]]:
    """The Serve controller's RUNNING replicas of the ESG champion (pid, actor_id, ...)."""
    from ray.serve.context import _get_global_client

    client = _get_global_client()
    assert client is not None
    app = client.get_serve_details()["applications"][APP]
    return [r for r in app["deployments"]["OnnxReplica"]["replicas"] if r["state"] == "RUNNING"]


async def test_a_replica_killed_mid_request_is_retried_on_the_other(
    ray_cluster: None, serving_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings = on_ray(
        serving_settings,
        ray_min_replicas=2,
        ray_max_replicas=2,
        serving_max_wait_ms=HOLD_S * 1000,
        serving_timeout_s=30,
    )
    # Two front processes' worth of services on one Serve application: each sends its
    # request at once (a front batcher with a call in flight would hold the next one back),
    # and Ray's router puts the second on the replica that is not busy.
    first, second = PredictorService(settings), PredictorService(settings)
    await first.start()
    await second.start()
    # On the backend's logger itself: a CLI run earlier in the session (pamtalk.logs.configure)
    # replaces the root logger's handlers, caplog's included.
    backend_log = logging.getLogger("pamtalk.serving.ray_backend")
    backend_log.addHandler(caplog.handler)
    try:
        deadline = time.monotonic() + 60
        while len(replicas := esg_replicas()) != 2:
            assert time.monotonic() < deadline, replicas
            await asyncio.sleep(0.2)
        calls = []
        for n, service in enumerate((first, second)):
            calls.append(asyncio.create_task(service.infer("pamtalk-esg", example(ESG, 1, n))))
            # The first call is on a replica now: the router sends the second to the other.
            await asyncio.sleep(HOLD_S / 6)
        os.kill(replicas[0]["pid"], signal.SIGKILL)  # both calls wait inside their replicas
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert [getattr(r, "version", r) for r in results] == ["1", "1"]
        # The kill did land on a call in flight, which went again to the other replica.
        assert any("lost a replica mid-call" in r.getMessage() for r in caplog.records)
        # Serve replaces the dead replica; the service goes on answering meanwhile.
        assert (await first.infer("pamtalk-esg", example(ESG, 2))).version == "1"
    finally:
        backend_log.removeHandler(caplog.handler)
        await second.close()
        await first.close()
