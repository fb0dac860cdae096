"""Promotion by alias: ``champion`` is what serving loads, ``challenger`` what a canary or
shadow tries. Promotion runs the gates first; rollback returns to the previous champion,
whose history is kept in a tag of the registered model.

    from pamtalk.registry import promote
    client = store.connect(Settings())
    promote.promote(client, "pamtalk-demand", "3")     # raises PromotionRefused naming the gate
    promote.rollback(client, "pamtalk-demand")
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from pamtalk.errors import Conflict, NotFound, ServiceUnavailable
from pamtalk.models.contract import CONTRACTS, ModelContract
from pamtalk.registry.digests import (
    FP32_DIGEST_TAG,
    INT8_ARTIFACT,
    INT8_DIGEST_TAG,
    file_digest,
    int8_servable,
)
from pamtalk.registry.gates import GatePolicy, Review, first_failure

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
HISTORY_TAG = "champion_history"  # JSON list of versions, oldest first


class RegistryUnavailable(ServiceUnavailable):
    code = "registry_unavailable"


# What MLflow answers when it could not answer (its server down, unreachable, or overloaded),
# as opposed to "no such model or version".
_OUTAGE_CODES = frozenset(
    {
        "INTERNAL_ERROR",
        "TEMPORARILY_UNAVAILABLE",
        "SERVICE_UNDER_MAINTENANCE",
        "REQUEST_LIMIT_EXCEEDED",
    }
)


def unless_outage(exc: MlflowException) -> None:
    """Raise RegistryUnavailable when ``exc`` is MLflow being unreachable: reading an outage
    as "absent" would make serving drop its champion and gates judge without one."""
    if exc.error_code in _OUTAGE_CODES:
        # MLflow's message may name hosts and paths: the log has it, the caller does not.
        log.warning("model registry unavailable: %s", exc.message[:500])
        raise RegistryUnavailable("the model registry is unavailable; retry shortly") from exc


class PromotionRefused(Conflict):
    code = "promotion_refused"

    def __init__(self, gate: str, message: str) -> None:
        super().__init__(message, details={"gate": gate})
        self.gate = gate


@dataclass(frozen=True)
class Resolved:
    name: str
    version: str
    fp32: Path
    int8: Path | None


def contract_of(name: str) -> ModelContract:
    if name not in CONTRACTS:
        raise NotFound(f"unknown model {name!r}; models: {', '.join(CONTRACTS)}")
    return CONTRACTS[name]


def version_of(client: MlflowClient, name: str, version: str) -> ModelVersion:
    try:
        return client.get_model_version(name, version)
    except MlflowException as exc:
        unless_outage(exc)
        raise NotFound(f"{name} has no version {version}") from exc


def by_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        unless_outage(exc)
        return None


def _run(client: MlflowClient, mv: ModelVersion) -> Run:
    if not mv.run_id:
        raise NotFound(f"{mv.name} version {mv.version} has no training run")
    return client.get_run(mv.run_id)


class ArtifactCorrupt(Conflict):
    code = "artifact_corrupt"


def download(client: MlflowClient, mv: ModelVersion) -> Resolved:
    """Local copies of a version's ONNX files, checked against the digests recorded when it
    was registered (versions registered before digests were recorded are not checked); the
    int8 file only where serving may use it (digests.int8_servable)."""
    model_dir = Path(mlflow.artifacts.download_artifacts(f"models:/{mv.name}/{mv.version}"))
    fp32 = model_dir / "model.onnx"
    _check_digest(mv, fp32, (mv.tags or {}).get(FP32_DIGEST_TAG))
    int8: Path | None = None
    run_tags = _run(client, mv).data.tags
    if int8_servable(run_tags):
        int8 = Path(
            mlflow.artifacts.download_artifacts(run_id=mv.run_id, artifact_path=INT8_ARTIFACT)
        )
        _check_digest(mv, int8, run_tags.get(INT8_DIGEST_TAG))
    return Resolved(mv.name, str(mv.version), fp32, int8)


def _check_digest(mv: ModelVersion, path: Path, expected: str | None) -> None:
    if expected is not None and (found := file_digest(path)) != expected:
        raise ArtifactCorrupt(
            f"{mv.name} v{mv.version}: {path.name} has SHA-256 {found[:12]}..., "
            f"registered as {expected[:12]}...; the stored file is corrupt or was replaced"
        )


def resolve(client: MlflowClient, name: str, alias: str = CHAMPION) -> Resolved | None:
    """Local paths of the version behind ``alias``, or None if the alias is unset."""
    mv = by_alias(client, name, alias)
    return download(client, mv) if mv is not None else None


def review_of(client: MlflowClient, mv: ModelVersion, champion: ModelVersion | None) -> Review:
    """What the gates look at for ``mv``, against ``champion`` (None: judged on its own)."""
    run = _run(client, mv)
    against = _run(client, champion) if champion is not None else None
    return Review(
        contract=contract_of(mv.name),
        onnx_path=download(client, mv).fp32,
        metrics=run.data.metrics,
        champion_metrics=against.data.metrics if against else None,
        fingerprint=run.data.tags.get("fingerprint"),
        champion_fingerprint=against.data.tags.get("fingerprint") if against else None,
    )


def _history(client: MlflowClient, name: str) -> list[str]:
    try:
        raw = client.get_registered_model(name).tags.get(HISTORY_TAG)
    except MlflowException as exc:
        unless_outage(exc)
        raise NotFound(f"{name} has no registered versions yet") from exc
    return list(json.loads(raw)) if raw else []


def promote(
    client: MlflowClient, name: str, version: str, policy: GatePolicy = GatePolicy()
) -> None:
    contract_of(name)
    mv = version_of(client, name, version)
    champion = by_alias(client, name, CHAMPION)
    if champion is not None and str(champion.version) == str(version):
        return
    review = review_of(client, mv, champion)
    if (failure := first_failure(review, policy)) is not None:
        gate, reason = failure
        raise PromotionRefused(
            gate, f"{name} version {version} refused by the {gate} gate: {reason}"
        )
    client.set_registered_model_alias(name, CHAMPION, str(version))
    history = [v for v in _history(client, name) if v != str(version)]
    if champion is not None and (not history or history[-1] != str(champion.version)):
        history.append(str(champion.version))
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps([*history, str(version)]))
    challenger = by_alias(client, name, CHALLENGER)
    if challenger is not None and str(challenger.version) == str(version):
        end_canary(client, name)  # the rollout is complete


def rollback(client: MlflowClient, name: str) -> str:
    """Move ``champion`` back to the previous champion; returns that version."""
    contract_of(name)
    history = _history(client, name)
    if len(history) < 2:
        raise Conflict(f"{name} has no previous champion to roll back to")
    previous = history[-2]
    client.set_registered_model_alias(name, CHAMPION, previous)
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history[:-1]))
    return previous


@dataclass(frozen=True)
class VersionRow:
    name: str
    version: str
    aliases: tuple[str, ...]
    metric: float | None
    created: int
    int8: bool


def list_versions(client: MlflowClient, name: str | None = None) -> list[VersionRow]:
    rows = []
    for model in [contract_of(name)] if name else list(CONTRACTS.values()):
        try:
            registered = client.get_registered_model(model.registered_name)
        except MlflowException as exc:
            unless_outage(exc)
            continue  # never registered
        aliases: dict[str, list[str]] = {}
        for alias, version in (registered.aliases or {}).items():
            aliases.setdefault(str(version), []).append(alias)
        for mv in client.search_model_versions(f"name='{model.registered_name}'"):
            run = _run(client, mv)
            rows.append(
                VersionRow(
                    mv.name,
                    str(mv.version),
                    tuple(sorted(aliases.get(str(mv.version), []))),
                    run.data.metrics.get(model.main_metric),
                    int(mv.creation_timestamp or 0),
                    int8_servable(run.data.tags),
                )
            )
    return sorted(rows, key=lambda r: (r.name, int(r.version)))


# Canary and shadow: the challenger alias plus the rollout, kept as tags of the registered
# model so that every serving process (and Ray replica front) reads the same plan.
CANARY_PERCENT_TAG = "canary_percent"
CANARY_MODE_TAG = "canary_mode"  # "split" (challenger answers P %) or "shadow" (scores a copy)


@dataclass(frozen=True)
class Rollout:
    champion: str | None
    challenger: str | None
    percent: int
    mode: str


def rollout(client: MlflowClient, name: str) -> Rollout:
    """What serving should run for ``name``: champion, challenger and the split."""
    try:
        registered = client.get_registered_model(name)
    except MlflowException as exc:
        unless_outage(exc)
        return Rollout(None, None, 0, "split")
    aliases = registered.aliases or {}
    champion, challenger = aliases.get(CHAMPION), aliases.get(CHALLENGER)
    tags = registered.tags or {}
    return Rollout(
        str(champion) if champion is not None else None,
        str(challenger) if challenger is not None else None,
        int(tags.get(CANARY_PERCENT_TAG, "0")) if challenger is not None else 0,
        tags.get(CANARY_MODE_TAG, "split"),
    )


def canary(
    client: MlflowClient,
    name: str,
    version: str,
    percent: int,
    shadow: bool = False,
    policy: GatePolicy = GatePolicy(),
) -> None:
    """Make ``version`` the challenger taking ``percent`` % of traffic (sticky per request
    key), or, with ``shadow``, scoring a copy of ``percent`` % while the champion answers.
    The challenger passes every gate but the metric one: a canary is how that is judged live."""
    contract_of(name)
    if not 0 <= percent <= 100:
        raise Conflict(f"--percent must be 0-100, got {percent}")
    mv = version_of(client, name, version)
    champion = by_alias(client, name, CHAMPION)
    if champion is not None and str(champion.version) == str(version):
        raise Conflict(f"{name} version {version} is already the champion")
    review = review_of(client, mv, None)
    if (failure := first_failure(review, policy)) is not None:
        gate, reason = failure
        raise PromotionRefused(
            gate, f"{name} version {version} refused by the {gate} gate: {reason}"
        )
    client.set_registered_model_tag(name, CANARY_PERCENT_TAG, str(percent))
    client.set_registered_model_tag(name, CANARY_MODE_TAG, "shadow" if shadow else "split")
    client.set_registered_model_alias(name, CHALLENGER, str(version))


def end_canary(client: MlflowClient, name: str) -> None:
    contract_of(name)
    if by_alias(client, name, CHALLENGER) is not None:
        client.delete_registered_model_alias(name, CHALLENGER)
    client.set_registered_model_tag(name, CANARY_PERCENT_TAG, "0")


def set_canary_percent(client: MlflowClient, name: str, percent: int) -> None:
    """Change the running canary's share (a rollout's next step): no gates, the challenger
    stays as it is."""
    contract_of(name)
    if by_alias(client, name, CHALLENGER) is None:
        raise Conflict(f"{name} has no challenger to give {percent} % of traffic")
    client.set_registered_model_tag(name, CANARY_PERCENT_TAG, str(percent))
