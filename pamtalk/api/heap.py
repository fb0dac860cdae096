"""The start-up heap kept out of the garbage collector's way.

A full (generation 2) collection walks every object the collector tracks, and holds the event
loop while it does. After start-up a worker tracks ~345k objects (FastAPI, SQLAlchemy, MLflow,
ONNX Runtime's Python side, the models' metadata); CPython runs a full collection whenever the
survivors since the last one reach a quarter of that heap, so every so often all of a worker's
requests stood still at once (bench/gc_pause.py measures the pause). ``gc.freeze()`` moves the
start-up heap to a permanent generation the collector never walks: what requests allocate is
still collected, and a full collection costs only what the requests' own objects cost.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Freezes what start-up left. The young generations are collected first; the old one is
    not (a full collection costs the pause this avoids, and it finds ~2k objects of garbage
    there after start-up, which stay frozen)."""
    gc.collect(1)
    gc.freeze()


def thaw() -> None:
    """Gives the frozen objects back to the collector (shutdown; tests start many apps)."""
    gc.unfreeze()
