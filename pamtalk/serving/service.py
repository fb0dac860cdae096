"""The predictor service: the one data plane behind REST, the Open Inference Protocol and
batch scoring. It owns which versions are up (following the MLflow aliases), routing between
them, and per-version metrics.

    service = PredictorService(settings)
    await service.start()                 # loads each champion (and challenger), then watches
    result = await service.infer("pamtalk-esg", [practices, mask], key="user-7")
    result.version, result.outputs[0]
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from pamtalk import extras
from pamtalk.errors import NotFound, PamtalkError, ServiceUnavailable
from pamtalk.gpu.providers import CPU, choose
from pamtalk.models.contract import CONTRACTS, ModelContract
from pamtalk.registry import promote, store
from pamtalk.registry.promote import RegistryUnavailable
from pamtalk.serving.deployment import Backend, Deployment, LocalBackend
from pamtalk.serving.live import LiveCounters
from pamtalk.serving.metrics import (
    MODEL_REFUSED,
    MODEL_REGISTRY_UP,
    MODEL_VERSION_INFO,
    PREDICTIONS,
    SHADOW_DIVERGENCE,
)
from pamtalk.serving.router import Role, VersionRouter
from pamtalk.serving.runtime import Artifact, check_inputs
from pamtalk.settings import Settings

log = logging.getLogger(__name__)

REFUSED_RETRY_S = 600.0  # a refused version is tried again after this long


@dataclass(frozen=True)
class Inference:
    model: str
    version: str
    role: Role
    outputs: list[np.ndarray]


@dataclass(frozen=True)
class ModelInfo:
    """A model's tensors and the versions being served (champion, then challenger)."""

    contract: ModelContract
    versions: list[str]


@dataclass(frozen=True)
class Served:
    model: str
    version: str
    role: str
    precision: str
    device: str


def make_backend(settings: Settings) -> Backend:
    if settings.serving_backend == "ray":
        with extras.needs("ray", "PAMTALK_SERVING_BACKEND=ray"):
            from pamtalk.serving.ray_backend import RayBackend  # Ray is heavy: only when asked

        backend: Backend = RayBackend(settings)
        return backend
    return LocalBackend(settings)


def fetch(client: MlflowClient, settings: Settings, name: str, version: str) -> Artifact:
    """Download ``version`` at the configured precision, digests checked. ``int8`` (the
    default) serves the version's static int8 file where its run passed the int8 gate and
    the model runs on the CPU: calibrated scales keep a row's answer independent of its
    batch, and it is faster there from batch 1 up (docs/benchmarks.md, bench/int8.py). Its
    ops have no GPU kernels, and versions quantized dynamically (before static int8) are
    batch-dependent: those serve fp32. The choice is logged, and shown as ``precision`` in
    /v1/models and the model_version_info metric."""
    resolved = promote.download(client, promote.version_of(client, name, version))
    on_cpu = choose(settings.device)[0][0] == CPU
    if settings.serving_precision == "int8" and on_cpu and resolved.int8 is not None:
        artifact = Artifact(name, version, resolved.int8, "int8")
        why = "static int8 passed its gate; CPU"
    else:
        artifact = Artifact(name, version, resolved.fp32, "fp32")
        why = (
            "PAMTALK_SERVING_PRECISION=fp32"
            if settings.serving_precision == "fp32"
            else "no servable int8 file (gate failed, or quantized dynamically)"
            if resolved.int8 is None
            else "int8 runs on the CPU only"
        )
    log.info("%s v%s: serving %s (%s)", name, version, artifact.precision, why)
    return artifact


class Lease:
    """The deployments a request picked, held until it finishes so that a swap retires them
    only afterwards. A canary in shadow mode scores a copy on the challenger in the
    background; its result is only measured."""

    def __init__(
        self,
        deployment: Deployment,
        role: Role,
        shadow: Deployment | None,
        spawn: Callable[[Coroutine[Any, Any, None]], None],
        live: LiveCounters,
    ) -> None:
        self.deployment, self.role, self.shadow = deployment, role, shadow
        self._spawn, self._live = spawn, live

    @property
    def version(self) -> str:
        return self.deployment.version

    async def infer(self, inputs: Sequence[np.ndarray]) -> Inference:
        deployment = self.deployment
        rows = check_inputs(deployment.contract, inputs)
        outputs = await self._timed(deployment, inputs, rows)
        PREDICTIONS.labels(deployment.name, deployment.version, self.role).inc()
        if self.shadow is not None:
            self._score_shadow(self.shadow, inputs, rows, outputs)
        return Inference(deployment.name, deployment.version, self.role, outputs)

    async def _timed(
        self, deployment: Deployment, inputs: Sequence[np.ndarray], rows: int
    ) -> list[np.ndarray]:
        """Infer, counting the version's latency and server-side failures (what rollout
        gates judge; a 429 is back-pressure, not the model's fault)."""
        started = time.perf_counter()
        try:
            outputs = await deployment.infer(inputs, rows)
        except Exception as exc:
            if not isinstance(exc, PamtalkError) or exc.status_code >= 500:
                self._live.observe(deployment.name, deployment.version, 0.0, failed=True)
            raise
        elapsed = time.perf_counter() - started
        self._live.observe(deployment.name, deployment.version, elapsed, failed=False)
        return outputs

    def _score_shadow(
        self,
        shadow: Deployment,
        inputs: Sequence[np.ndarray],
        rows: int,
        answered: list[np.ndarray],
    ) -> None:
        shadow.hold()

        async def run() -> None:
            try:
                outputs = await self._timed(shadow, inputs, rows)
                PREDICTIONS.labels(shadow.name, shadow.version, "shadow").inc()
                divergence = float(np.mean(np.abs(outputs[0] - answered[0])))
                self._live.divergence(shadow.name, shadow.version, divergence)
                SHADOW_DIVERGENCE.labels(shadow.name, self.version, shadow.version).observe(
                    divergence
                )
            except Exception as exc:  # the champion already answered; log and move on
                log.warning("shadow %s v%s failed: %s", shadow.name, shadow.version, exc)
            finally:
                shadow.let_go()

        self._spawn(run())


class PredictorService:
    def __init__(self, settings: Settings, backend: Backend | None = None) -> None:
        self.settings = settings
        self.backend = backend or make_backend(settings)
        self.routers = {name: VersionRouter() for name in CONTRACTS}
        self.live = LiveCounters()  # per-version figures for rollout gates
        # Pinned (model, version) -> the jobs holding it; retired when the last lets go.
        self._pins: dict[tuple[str, str], set[str]] = {}
        self._client: MlflowClient | None = None
        self._sync_lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()
        self._watcher: asyncio.Task[None] | None = None
        self._registry_down_since: float | None = None
        self._registry_misses = 0  # failed syncs in a row
        # Versions whose files failed their check, load or warm-up -> when to try again.
        self._refused: dict[tuple[str, str], float] = {}

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        await self.sync_all()
        if self.settings.model_watch_interval > 0:
            self._watcher = asyncio.create_task(self._watch())

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        for router in self.routers.values():
            for deployment in {*router.live(), *router.pinned.values()}:
                await deployment.retire()
            router.champion = router.challenger = None
            router.pinned.clear()
        self._pins.clear()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.backend.close()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._next_check_s())
            await self.sync_all()

    def _next_check_s(self) -> float:
        """The watch interval; while the registry is down, doubling up to 16 intervals (or
        5 min): serving goes on with what is loaded, and the registry is not hammered."""
        interval = self.settings.model_watch_interval
        if self._registry_misses == 0:
            return interval
        return min(interval * (1 << min(self._registry_misses, 4)), max(interval, 300.0))

    async def sync_all(self) -> None:
        for name in self.routers:
            try:
                await self.sync(name)
            except RegistryUnavailable as exc:
                self._registry_unavailable(exc)
                return
            except Exception:
                # Anything else must not take serving down either: keep what runs.
                log.exception("could not sync %s with the registry", name)
        self._registry_available()

    def _registry_unavailable(self, exc: Exception) -> None:
        """Logged once per outage, not once per try."""
        MODEL_REGISTRY_UP.set(0)
        self._registry_misses += 1
        if self._registry_down_since is None:
            self._registry_down_since = time.monotonic()
            log.warning(
                "model registry unreachable (%s); serving the loaded versions, retrying with "
                "backoff",
                exc,
            )

    def _registry_available(self) -> None:
        MODEL_REGISTRY_UP.set(1)
        self._registry_misses = 0
        if self._registry_down_since is not None:
            down = time.monotonic() - self._registry_down_since
            self._registry_down_since = None
            log.info("model registry reachable again after %.0f s", down)

    async def sync(self, name: str) -> None:
        """Bring ``name``'s deployments in line with its aliases: a new version is loaded and
        warmed up before it is swapped in; the old one retires after its last request
        (unless a batch job pins it)."""
        async with self._sync_lock:
            client = await self.registry()
            plan = await asyncio.to_thread(promote.rollout, client, name)
            router = self.routers[name]
            before = set(router.live())
            for role, want in (("champion", plan.champion), ("challenger", plan.challenger)):
                have: Deployment | None = getattr(router, role)
                if (have.version if have else None) == want:
                    continue
                new = None
                if want is not None:
                    new = router.version(want) or await self._deploy_or_refuse(client, name, want)
                    if new is None:
                        continue  # refused: what serves this role now goes on serving
                    log.info("serving %s v%s as %s", name, want, role)
                setattr(router, role, new)
            router.percent, router.mode = plan.percent, plan.mode
            after = set(router.live())
            for retired in before - after - set(router.pinned.values()):
                log.info("retiring %s v%s", name, retired.version)
                self._spawn(retired.retire())
            self._publish_versions(name, before | after)

    async def pin(self, name: str, version: str, holder: str) -> None:
        """Keep ``version`` loaded for ``holder`` (a batch job) so that ``infer(...,
        version=)`` reaches it whatever the aliases do meanwhile, until ``release(holder)``."""
        self.contract(name)
        async with self._sync_lock:
            router = self.routers[name]
            if version not in router.pinned:
                client = await self.registry()
                deployment = router.version(version) or await self._deploy(client, name, version)
                router.pinned[version] = deployment
            self._pins.setdefault((name, version), set()).add(holder)

    async def release(self, holder: str) -> None:
        """Let go of what ``holder`` pinned: a version no one else pins and the aliases do
        not route to retires (a Ray app is deleted) after its last request."""
        async with self._sync_lock:
            for (name, version), holders in list(self._pins.items()):
                holders.discard(holder)
                if holders:
                    continue
                del self._pins[(name, version)]
                router = self.routers[name]
                deployment = router.pinned.pop(version)
                if deployment not in router.live():
                    log.info("retiring pinned %s v%s", name, version)
                    self._spawn(deployment.retire())

    def holders(self) -> set[str]:
        """Who pins a version now (batch jobs)."""
        return set().union(*self._pins.values())

    async def _deploy(self, client: MlflowClient, name: str, version: str) -> Deployment:
        try:
            artifact = await asyncio.to_thread(fetch, client, self.settings, name, version)
        except MlflowException as exc:
            promote.unless_outage(exc)
            raise
        except OSError as exc:  # the artifact store (or the network to it) failed
            log.warning("could not download %s v%s: %s", name, version, exc)
            raise RegistryUnavailable(f"could not download {name} v{version}") from exc
        return await self.backend.deploy(artifact, CONTRACTS[name])

    async def _deploy_or_refuse(
        self, client: MlflowClient, name: str, version: str
    ) -> Deployment | None:
        """A version whose file is corrupt, or fails to load or warm up, is refused: the
        swap does not happen, and it is tried again only after REFUSED_RETRY_S (a Ray
        cluster that could not place it may have room by then)."""
        if time.monotonic() < self._refused.get((name, version), 0.0):
            return None
        try:
            deployment = await self._deploy(client, name, version)
        except RegistryUnavailable:
            raise
        except Exception as exc:
            reason = "corrupt" if isinstance(exc, promote.ArtifactCorrupt) else "load_failed"
            MODEL_REFUSED.labels(name, version, reason).inc()
            self._refused[(name, version)] = time.monotonic() + REFUSED_RETRY_S
            log.error(
                "refusing %s v%s (%s: %s); still serving %s",
                name,
                version,
                reason,
                exc,
                ", ".join(f"v{d.version}" for d in self.routers[name].live()) or "nothing",
            )
            return None
        self._refused.pop((name, version), None)
        return deployment

    async def registry(self) -> MlflowClient:
        """The MLflow client this process uses (made on first use)."""
        if self._client is None:
            self._client = await asyncio.to_thread(store.connect, self.settings)
        return self._client

    def _publish_versions(self, name: str, deployments: set[Deployment]) -> None:
        router = self.routers[name]
        for deployment in deployments:
            role = (
                "champion"
                if deployment is router.champion
                else "challenger"
                if deployment is router.challenger
                else None
            )
            for r in ("champion", "challenger"):
                labels = (name, deployment.version, r, deployment.artifact.precision)
                MODEL_VERSION_INFO.labels(*labels, deployment.device).set(1 if r == role else 0)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- the data plane (after MLServer's DataPlane) ---------------------------------------

    def models(self) -> list[str]:
        return list(self.routers)

    def ready(self) -> bool:
        """Every model has a champion loaded."""
        return all(router.champion is not None for router in self.routers.values())

    def model_ready(self, name: str, version: str | None = None) -> bool:
        """``name``'s champion (or ``version``) is being served; NotFound for an unknown
        model."""
        self.contract(name)
        router = self.routers[name]
        return (router.champion if version is None else router.version(version)) is not None

    def metadata(self, name: str, version: str | None = None) -> ModelInfo:
        """The model's tensors and its served versions (or ``version`` alone, NotFound if it
        is not served)."""
        contract = self.contract(name)
        if version is not None:
            return ModelInfo(contract, [self.deployment(name, version).version])
        return ModelInfo(contract, [d.version for d in self.routers[name].live()])

    def contract(self, name: str) -> ModelContract:
        if name not in self.routers:
            raise NotFound(f"unknown model {name!r}; models: {', '.join(self.routers)}")
        return CONTRACTS[name]

    def deployment(self, name: str, version: str | None = None) -> Deployment:
        """The champion (or the given version) if it is being served; NotFound/503 otherwise."""
        self.contract(name)
        router = self.routers[name]
        if version is None:
            if router.champion is None:
                raise ServiceUnavailable(
                    f"{name} has no champion loaded yet: train and promote one "
                    f"(pamtalk train, pamtalk models promote)"
                )
            return router.champion
        found = router.version(version)
        if found is None:
            served = [d.version for d in router.live()]
            raise NotFound(
                f"{name} version {version} is not being served "
                f"(serving: {', '.join(served) or 'none'})"
            )
        return found

    @contextlib.asynccontextmanager
    async def lease(
        self, name: str, key: str | None = None, version: str | None = None
    ) -> AsyncIterator[Lease]:
        """Pick the version that answers (sticky per ``key``) and hold it for the request."""
        shadow: Deployment | None = None
        role: Role = "pinned"
        if version is not None:
            deployment = self.deployment(name, version)
        else:
            self.deployment(name)  # raises if nothing is served
            picked, role, shadow = self.routers[name].pick(key)
            assert picked is not None
            deployment = picked
        deployment.hold()
        try:
            yield Lease(deployment, role, shadow, self._spawn, self.live)
        finally:
            deployment.let_go()

    async def infer(
        self,
        name: str,
        inputs: Sequence[np.ndarray],
        key: str | None = None,
        version: str | None = None,
    ) -> Inference:
        async with self.lease(name, key, version) as lease:
            return await lease.infer(inputs)

    def served(self) -> list[Served]:
        return [
            Served(name, d.version, role, d.artifact.precision, d.device)
            for name, router in self.routers.items()
            for role, d in (("champion", router.champion), ("challenger", router.challenger))
            if d is not None
        ]
