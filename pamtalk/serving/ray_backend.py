"""The Ray Serve backend (PAMTALK_SERVING_BACKEND=ray): each model version is one Serve
application, ``pamtalk-esg-v3``, of autoscaled ONNX Runtime replicas, with no HTTP route:
the FastAPI front calls it through a DeploymentHandle.

The front's DynamicBatcher still batches, and sends each micro-batch as one handle call (not
one Ray call per request); a replica merges the micro-batches that reach it together, from
every front process, into one ONNX Runtime call (``@serve.batch``, counted in rows).
Replicas get the model as bytes, so a node of a cluster needs neither MLflow nor a shared
filesystem.

    PAMTALK_SERVING_BACKEND=ray pamtalk serve          # a local Ray, or RAY_ADDRESS's cluster
    pamtalk scale pamtalk-esg --replicas 4             # pin the replica count, live
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import ray
from ray import serve
from ray.exceptions import RayActorError
from ray.serve.exceptions import BackPressureError, ReplicaUnavailableError

from pamtalk.errors import BadRequest, NotFound, ServiceUnavailable, TooManyRequests
from pamtalk.gpu.providers import Device
from pamtalk.models.contract import CONTRACTS, ModelContract
from pamtalk.serving.batcher import DynamicBatcher
from pamtalk.serving.deployment import Deployment, batch_policy, warmup_batches
from pamtalk.serving.runtime import Artifact, load_runtime
from pamtalk.serving.stacking import stack, unstack
from pamtalk.settings import Settings

log = logging.getLogger(__name__)

REPLICA = "OnnxReplica"  # the deployment's name inside each application
LOCAL_OBJECT_STORE_BYTES = 256 * 1024**2  # micro-batches are small; Ray's default is 30 % of RAM
# A replica gone with a call in flight (killed, out of memory, its node lost): ActorDiedError,
# ActorUnavailableError (both RayActorError), or Serve's ReplicaUnavailableError.
REPLICA_LOST = (RayActorError, ReplicaUnavailableError)


def app_name(model: str, version: str) -> str:
    return f"{model}-v{version}"


@dataclass(frozen=True)
class ReplicaSpec:
    """A replica's constructor arguments besides the model's bytes."""

    name: str
    version: str
    precision: str
    device: Device
    threads: int
    warmup_batches: tuple[int, ...]
    max_batch_rows: int
    batch_wait_s: float

    @classmethod
    def of(cls, artifact: Artifact, settings: Settings) -> ReplicaSpec:
        return cls(
            name=artifact.name,
            version=artifact.version,
            precision=artifact.precision,
            device=settings.device,
            threads=settings.serving_threads,
            warmup_batches=tuple(warmup_batches(settings)),
            max_batch_rows=settings.serving_max_batch_size,
            batch_wait_s=settings.serving_max_wait_ms / 1000,
        )


def _rows(calls: list[list[np.ndarray]]) -> int:
    return sum(call[0].shape[0] for call in calls)


class OnnxReplica:
    """One model runtime (pamtalk.serving.runtime, as in-process serving) in a Ray actor.
    Each call is a micro-batch: a list of input arrays of N rows."""

    def __init__(self, spec: ReplicaSpec, onnx: bytes) -> None:
        with tempfile.TemporaryDirectory(prefix="pamtalk-replica-") as folder:
            path = Path(folder) / "model.onnx"
            path.write_bytes(onnx)
            artifact = Artifact(spec.name, spec.version, path, spec.precision)
            # ONNX Runtime has read the file once loaded: the copy can go.
            self.model = load_runtime(
                artifact, CONTRACTS[spec.name], spec.device, spec.threads, spec.warmup_batches
            )
        self.max_rows = spec.max_batch_rows
        # The decorator's values are only defaults; these come from the settings.
        self.batch.set_max_batch_size(spec.max_batch_rows)  # type: ignore[attr-defined]
        self.batch.set_batch_wait_timeout_s(spec.batch_wait_s)  # type: ignore[attr-defined]

    def describe(self) -> dict[str, str]:
        return {
            "device": self.model.device,
            "replica": serve.get_replica_context().replica_id.unique_id,
        }

    async def __call__(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        if inputs[0].shape[0] >= self.max_rows:
            # A full batch on its own waits for no company (and serve.batch refuses an item
            # larger than its max batch size).
            return await asyncio.to_thread(self.model.predict, inputs)
        outputs: list[np.ndarray] = await self.batch(inputs)
        return outputs

    @serve.batch(batch_size_fn=_rows)
    async def batch(self, calls: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
        # In a thread, so that the replica keeps taking calls meanwhile: the next batch.
        outputs = await asyncio.to_thread(self.model.predict, stack(calls))
        return unstack(outputs, [call[0].shape[0] for call in calls])


# Decorated here rather than with @: mypy would take the decorated class for a plain class.
REPLICAS = serve.deployment(name=REPLICA)(OnnxReplica)


def _example(contract: ModelContract) -> list[np.ndarray]:
    return [
        np.zeros((1, *(d or 1 for d in spec.shape[1:])), np.dtype(spec.dtype))
        for spec in contract.inputs
    ]


def _model_apps(model: str) -> dict[str, int]:
    """``model``'s Serve applications -> their RUNNING replicas, oldest version first."""
    pattern = re.compile(rf"{re.escape(model)}-v(\d+)")
    apps = {}
    for name, app in serve.status().applications.items():
        match = pattern.fullmatch(name)
        if match and REPLICA in app.deployments:
            states = app.deployments[REPLICA].replica_states
            running = sum(n for state, n in states.items() if state == "RUNNING")
            apps[name] = (int(match[1]), running)
    return {name: running for name, (_, running) in sorted(apps.items(), key=lambda a: a[1])}


def _deployed(app: str) -> Any:
    """The controller's record of an app's replica deployment: config, constructor args and
    code version (the Python API has no public read-back of these)."""
    from ray.serve.context import _get_global_client

    client = _get_global_client()
    assert client is not None  # serve.status() connected
    info, _ = client.get_deployment_info(REPLICA, app)
    return info


def _self_contained(path: Path) -> bytes:
    """The model as one ONNX protobuf: an fp32 export keeps its weights in a side file
    (external data), which a replica on another node would not have."""
    return bytes(onnx.load(path).SerializeToString())


class RayBackend:
    """Deploys versions as Serve applications; implements serving.deployment.Backend."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._owns_ray = False
        self._apps: set[str] = set()
        self._lock = asyncio.Lock()

    def _connect(self) -> None:
        if not ray.is_initialized():
            address = os.environ.get("RAY_ADDRESS")
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(
                    address="local",
                    num_cpus=os.cpu_count(),
                    object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                    include_dashboard=False,
                    log_to_driver=False,
                )
                self._owns_ray = True
        # Only DeploymentHandles call our apps: no HTTP proxy. On a cluster where Serve
        # already runs this connects to it, proxies and all.
        serve.start(proxy_location="Disabled")

    def _scaling(self, model: str, app: str) -> dict[str, Any]:
        """Start as the running version of the same model does: pinned to its count after
        `pamtalk scale`, else autoscaled from its current count, so a swap keeps the scale."""
        s = self.settings
        autoscaling: dict[str, Any] = {
            "min_replicas": s.ray_min_replicas,
            "max_replicas": s.ray_max_replicas,
            "target_ongoing_requests": s.ray_target_ongoing_requests,
        }
        others = _model_apps(model)
        others.pop(app, None)
        if others:
            previous, running = list(others.items())[-1]
            config = _deployed(previous).deployment_config
            if config.autoscaling_config is None:
                return {"num_replicas": config.num_replicas}
            autoscaling["initial_replicas"] = min(
                max(running, s.ray_min_replicas), s.ray_max_replicas
            )
        return {"autoscaling_config": autoscaling}

    def _run(self, artifact: Artifact, app: str) -> tuple[Any, bool]:
        """Deploy ``app`` (blocking until its replicas are up): its handle, and whether this
        process put it up (False: it shares another process's app)."""
        self._connect()
        running = serve.status().applications.get(app)
        if running is not None and running.status == "RUNNING":
            # Another front process (an API worker, a batch worker) put this version up
            # already: share it rather than redeploy, which would restart its replicas.
            log.info("%s is already up on Ray Serve: sharing it", app)
            return serve.get_app_handle(app), False
        s = self.settings
        spec = ReplicaSpec.of(artifact, s)
        scaling = self._scaling(artifact.name, app)
        log.info("deploying %s on Ray Serve: %s", app, scaling)
        replicas = REPLICAS.options(
            **scaling,
            max_ongoing_requests=s.ray_max_ongoing_requests,
            max_queued_requests=s.ray_max_queued_requests,
            ray_actor_options={"num_cpus": s.ray_num_cpus, "num_gpus": s.ray_num_gpus},
        )
        handle = serve.run(
            replicas.bind(spec, _self_contained(artifact.path)), name=app, route_prefix=None
        )
        return handle, True

    async def deploy(self, artifact: Artifact, contract: ModelContract) -> Deployment:
        app = app_name(artifact.name, artifact.version)
        async with self._lock:  # one deploy at a time: each may start Ray and Serve
            handle, owned = await asyncio.to_thread(self._run, artifact, app)
            if owned:
                self._apps.add(app)
        about: dict[str, str] = await handle.describe.remote()
        await handle.remote(_example(contract))  # the handle finds its replicas now

        async def call(inputs: list[np.ndarray]) -> list[np.ndarray]:
            try:
                outputs: list[np.ndarray] = await handle.remote(inputs)
            except BackPressureError as exc:
                retry = math.ceil(exc.retry_after_s or 1)
                raise TooManyRequests(
                    f"{app} is at capacity (Ray Serve queue full); retry shortly",
                    headers={"Retry-After": str(max(1, retry))},
                ) from exc
            return outputs

        async def run(inputs: list[np.ndarray]) -> list[np.ndarray]:
            try:
                return await call(inputs)
            except REPLICA_LOST as exc:
                # Ray's router has struck the dead replica off already, and inference has no
                # side effects: the micro-batch goes once more, to another replica.
                log.warning(
                    "%s lost a replica mid-call (%s); retrying once", app, type(exc).__name__
                )
            try:
                return await call(inputs)
            except REPLICA_LOST as exc:
                raise ServiceUnavailable(
                    f"{app} lost its replicas mid-request; retry shortly",
                    headers={"Retry-After": "1"},
                ) from exc

        async def release() -> None:
            # A shared app stays up for the process that put it there (the batch worker
            # retiring a pinned version must not take the API's champion down).
            if app in self._apps:
                self._apps.discard(app)
                await asyncio.to_thread(serve.delete, app)

        # Enough micro-batches in flight for every replica the autoscaler may start to reach
        # its target load; with fewer, the autoscaler would never see the load to scale up.
        policy = batch_policy(self.settings)
        wanted = math.ceil(
            self.settings.ray_max_replicas * self.settings.ray_target_ongoing_requests
        )
        policy = dataclasses.replace(policy, parallelism=max(policy.parallelism, wanted))
        batcher = DynamicBatcher(run, artifact.name, artifact.version, policy)
        return Deployment(artifact, contract, batcher, about["device"], release)

    async def close(self) -> None:
        if not ray.is_initialized():
            return
        if self._owns_ray:
            await asyncio.to_thread(serve.shutdown)
            await asyncio.to_thread(ray.shutdown)
            self._owns_ray = False
        else:  # someone else's cluster: take down only what this process put up
            for app in sorted(self._apps):
                await asyncio.to_thread(serve.delete, app)
        self._apps.clear()


def scale(model: str, replicas: int) -> list[str]:
    """Pin every Serve application of ``model`` to ``replicas`` replicas, live: the same code
    version with a new replica count is a config-only update, so running replicas stay up and
    keep serving. Returns the applications changed. Ray's address comes from RAY_ADDRESS
    (else the local cluster), the rest from the running apps."""
    if model not in CONTRACTS:
        raise NotFound(f"unknown model {model!r}; models: {', '.join(CONTRACTS)}")
    if replicas < 1:
        raise BadRequest("replicas must be at least 1")
    if not ray.is_initialized():
        try:
            ray.init(address=os.environ.get("RAY_ADDRESS") or "auto", log_to_driver=False)
        except ConnectionError as exc:
            raise ServiceUnavailable(f"no running Ray cluster to scale on ({exc})") from exc
    apps = list(_model_apps(model))
    if not apps:
        raise NotFound(
            f"{model} has no Serve application on this Ray cluster; is the API serving it "
            f"with PAMTALK_SERVING_BACKEND=ray?"
        )
    for app in apps:
        info = _deployed(app)
        config = info.deployment_config
        pinned = REPLICAS.options(
            num_replicas=replicas,
            autoscaling_config=None,
            max_ongoing_requests=config.max_ongoing_requests,
            max_queued_requests=config.max_queued_requests,
            ray_actor_options=info.replica_config.ray_actor_options,
        ).options(version=info.version, _internal=True)  # same code: no replica restarts
        serve.run(
            pinned.bind(*info.replica_config.init_args),
            name=app,
            route_prefix=None,
        )
    return apps
