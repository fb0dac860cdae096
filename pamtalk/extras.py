"""The optional parts of the install. The base package serves (API, ONNX Runtime, the MLflow
client); each other feature comes with an extra, and using one whose extra is missing fails
with a message that names it, instead of an ImportError from deep inside:

    with extras.needs("train", "pamtalk train"):
        from pamtalk.training.pipeline import build_candidate
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from pamtalk.errors import ServiceUnavailable

# The top-level modules each extra brings (pyproject.toml's [project.optional-dependencies]).
EXTRAS: dict[str, tuple[str, ...]] = {
    "train": ("torch", "onnxscript", "matplotlib"),
    # the demand model's peers in its evaluation (pamtalk.models.demand.peers)
    "forecast": ("statsforecast", "mlforecast", "lightgbm", "sklearn"),
    "ray": ("ray",),
    # "gpu" (onnxruntime-gpu) installs the same module as the base's onnxruntime: what it
    # adds is a provider, which pamtalk.gpu.providers asks for by name.
    "batch": ("celery", "kombu"),
    "loadtest": ("locust", "gevent", "matplotlib"),
    # The OTLP exporters and the instrumentations (the SDK itself also comes with MLflow's
    # client); pamtalk.tracing checks these before it turns traces on.
    "tracing": (
        "opentelemetry.sdk",
        "opentelemetry.exporter.otlp.proto.http",
        "opentelemetry.exporter.otlp.proto.grpc",
        "opentelemetry.instrumentation.fastapi",
        "opentelemetry.instrumentation.sqlalchemy",
        "opentelemetry.instrumentation.redis",
        "opentelemetry.instrumentation.celery",
    ),
}


class MissingExtra(ServiceUnavailable):
    code = "missing_extra"

    def __init__(self, extra: str, feature: str, module: str) -> None:
        super().__init__(
            f"{feature} needs the '{extra}' extra ({module} is not installed): "
            f"pip install 'pamtalk[{extra}]'"
        )
        self.extra, self.module = extra, module


def _installed(module: str) -> bool:
    if module in sys.modules:
        return sys.modules[module] is not None  # None: import blocked
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(extra: str, feature: str) -> None:
    """Raise MissingExtra unless every module of ``extra`` can be imported (without
    importing them: a check before starting something that imports them later)."""
    for module in EXTRAS[extra]:
        if not _installed(module):
            raise MissingExtra(extra, feature, module)


@contextmanager
def needs(extra: str, feature: str) -> Iterator[None]:
    """Turn the failed import of one of ``extra``'s modules inside the block into
    MissingExtra; any other ImportError (a real bug) passes as it is."""
    try:
        yield
    except ModuleNotFoundError as exc:
        top = (exc.name or "").partition(".")[0]
        if top not in EXTRAS[extra]:
            raise
        raise MissingExtra(extra, feature, top) from exc
