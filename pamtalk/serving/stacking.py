"""Many callers' rows into one model call and back: the dynamic batcher and the Ray
replicas both stack requests this way."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def stack(requests: Sequence[Sequence[np.ndarray]]) -> list[np.ndarray]:
    """The requests' inputs stacked along the batch axis, input by input."""
    if len(requests) == 1:
        return list(requests[0])
    return [np.concatenate(parts) for parts in zip(*requests, strict=True)]


def unstack(outputs: Sequence[np.ndarray], sizes: Sequence[int]) -> list[list[np.ndarray]]:
    """Each request's rows of every output, for requests of ``sizes`` rows in stack order.
    RuntimeError if the model returned another number of rows than it was given."""
    total = sum(sizes)
    wrong = [o.shape[0] if o.ndim else 0 for o in outputs if o.ndim == 0 or o.shape[0] != total]
    if wrong:
        raise RuntimeError(f"the model returned {wrong[0]} rows for {total}")
    parts, start = [], 0
    for size in sizes:
        parts.append([output[start : start + size] for output in outputs])
        start += size
    return parts
