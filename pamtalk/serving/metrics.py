"""Inference metrics (DESIGN.md names), labelled by model and version so that a canary's
versions can be compared side by side."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_FAST = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)

INFERENCE_BATCH_SIZE = Histogram(
    "inference_batch_size",
    "Rows per batch sent to a model",
    ["model", "version"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096),
)
INFERENCE_QUEUE_SECONDS = Histogram(
    "inference_queue_seconds",
    "Time a request waited in the batcher's queue",
    ["model", "version"],
    buckets=_FAST,
)
INFERENCE_COMPUTE_SECONDS = Histogram(
    "inference_compute_seconds",
    "Model time per batch",
    ["model", "version"],
    buckets=_FAST,
)
PREDICTIONS = Counter(
    "predictions",
    "Requests answered by a model version, by its role (champion, challenger, shadow, pinned)",
    ["model", "version", "role"],
)
INFERENCE_REJECTED = Counter(
    "inference_rejected",
    "Requests refused before inference, by reason (queue_full, timeout, failed)",
    ["model", "reason"],
)
SHADOW_DIVERGENCE = Histogram(
    "shadow_divergence",
    "Mean |challenger - champion| over a shadowed request's outputs",
    ["model", "champion", "challenger"],
    buckets=(0.001, 0.01, 0.1, 0.5, 1, 5, 10, 50, 100, 1000, 10000),
)
MODEL_VERSION_INFO = Gauge(
    "model_version_info",
    "1 for each model version being served, with its role, precision and device",
    ["model", "version", "role", "precision", "device"],
    multiprocess_mode="max",
)
MODEL_REGISTRY_UP = Gauge(
    "model_registry_up",
    "1 while the model registry (MLflow) answered this process's last sync, 0 while it is "
    "unreachable (serving goes on with the loaded versions)",
    multiprocess_mode="min",
)
MODEL_REFUSED = Counter(
    "model_refused",
    "Versions the aliases pointed to that serving refused to swap in, by reason (corrupt: "
    "the file differs from its registered digest; load_failed: it did not load or warm up)",
    ["model", "version", "reason"],
)
