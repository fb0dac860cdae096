"""A started worker keeps its start-up heap out of the garbage collector's full collections
(pamtalk/api/heap.py), and gives it back when it stops."""

from __future__ import annotations

import gc

from pamtalk.api.app import create_app
from pamtalk.settings import Settings
from tests.conftest import running


async def test_a_started_worker_freezes_its_startup_heap_until_it_stops(
    settings: Settings,
) -> None:
    gc.unfreeze()
    app = create_app(settings)
    async with running(app):
        assert gc.get_freeze_count() > 10_000  # FastAPI, SQLAlchemy, the models, ...
        tracked_while_serving = len(gc.get_objects())
    assert gc.get_freeze_count() == 0
    assert len(gc.get_objects()) > tracked_while_serving  # all walked again
