"""A flood above capacity is answered with fast 429s (never timeouts or 5xx), and the
server serves normally right after."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter

import httpx

from pamtalk.api.app import create_app
from pamtalk.db.seed import ensure_admin_api_key
from pamtalk.errors import TooManyRequests
from pamtalk.models.contract import ESG
from pamtalk.settings import Settings
from tests.conftest import ADMIN_KEY, running
from tests.serving.conftest import example


async def test_flood_gets_429_then_recovers(settings: Settings) -> None:
    tight = settings.model_copy(
        update={
            "serving_max_batch_size": 4,
            "serving_max_queue_rows": 8,
            "serving_parallelism": 1,
            # The batcher's back-pressure is what is tested here; the edge's in-flight cap
            # (a 503 before the model is reached) has tests/serving/test_admission.py.
            "max_in_flight": 1000,
        }
    )
    app = create_app(tight)
    async with running(app):
        async with app.state.pamtalk.sessions.write() as session:
            await ensure_admin_api_key(session, ADMIN_KEY)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            headers = {"X-API-Key": ADMIN_KEY}

            async def score(i: int) -> httpx.Response:
                # Distinct profiles, so none is answered from the cache.
                body = {"practices": {"nitrogen_kg_per_ha": i / 10, "workers": 1 + i % 7}}
                return await client.post("/v1/esg/score", json=body, headers=headers)

            # Big batches (a bulk scorer, say) keep the model busy while the flood arrives.
            flooding = True
            bulk = example(ESG, 200_000)

            async def bulk_scorer() -> None:
                while flooding:
                    with contextlib.suppress(TooManyRequests):
                        await app.state.pamtalk.predictor.infer("pamtalk-esg", bulk)
                    await asyncio.sleep(0)

            scorer = asyncio.create_task(bulk_scorer())
            await asyncio.sleep(0.01)
            flood = await asyncio.gather(*(score(i) for i in range(300)))
            flooding = False
            await scorer
            statuses = Counter(r.status_code for r in flood)
            assert set(statuses) <= {200, 429}, statuses
            assert statuses[429] > 0 and statuses[200] > 0
            refused = next(r for r in flood if r.status_code == 429)
            assert int(refused.headers["Retry-After"]) >= 1
            assert refused.json()["error"]["code"] == "too_many_requests"

            after = [await score(1000 + i) for i in range(5)]
            assert [r.status_code for r in after] == [200] * 5

            metrics = (await client.get("/metrics")).text
            for name in (
                'inference_rejected_total{model="pamtalk-esg",reason="queue_full"}',
                'inference_batch_size_count{model="pamtalk-esg",version="1"}',
                'inference_queue_seconds_count{model="pamtalk-esg",version="1"}',
                'inference_compute_seconds_count{model="pamtalk-esg",version="1"}',
                'model_version_info{device="cpu",model="pamtalk-esg"',
            ):
                assert name in metrics, name
