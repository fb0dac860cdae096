"""What the registry holds, as /v1/models shows it: versions with their run's metrics and
aliases, and how a version fares against each promotion gate now."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from mlflow import MlflowClient

from pamtalk.registry import promote
from pamtalk.registry.digests import int8_servable
from pamtalk.registry.gates import GATES, GatePolicy, incomparable


@dataclass(frozen=True)
class VersionInfo:
    version: str
    aliases: list[str]
    run_id: str | None
    metrics: dict[str, float]
    int8: bool
    created_ms: int


def versions(client: MlflowClient, name: str) -> list[VersionInfo]:
    """Every registered version of ``name``, oldest first (NotFound for an unknown model)."""
    promote.contract_of(name)
    rows = promote.list_versions(client, name)
    return [describe(client, name, row.version) for row in rows]


def describe(client: MlflowClient, name: str, version: str) -> VersionInfo:
    promote.contract_of(name)
    mv = promote.version_of(client, name, version)
    run = client.get_run(mv.run_id) if mv.run_id else None
    aliases = [
        alias
        for alias, v in (client.get_registered_model(name).aliases or {}).items()
        if str(v) == str(version)
    ]
    return VersionInfo(
        version=str(mv.version),
        aliases=sorted(aliases),
        run_id=mv.run_id,
        # A metric the run could not compute (NaN: peers skipped, too little data for rolling
        # origins) is left out: JSON has no NaN, and "not measured" is what its absence says.
        metrics={k: v for k, v in run.data.metrics.items() if math.isfinite(v)} if run else {},
        int8=bool(run and int8_servable(run.data.tags)),
        created_ms=int(mv.creation_timestamp or 0),
    )


def gate_results(
    client: MlflowClient, name: str, version: str, policy: GatePolicy = GatePolicy()
) -> list[dict[str, Any]]:
    """Each promotion gate's verdict on ``version`` against the current champion."""
    promote.contract_of(name)
    mv = promote.version_of(client, name, version)
    review = promote.review_of(client, mv, promote.by_alias(client, name, promote.CHAMPION))
    results: list[dict[str, Any]] = []
    for gate, check in GATES:
        reason = check(review, policy)
        if gate == "metric" and (why := incomparable(review)) is not None:
            results.append({"gate": gate, "ok": None, "reason": why})
            continue
        results.append({"gate": gate, "ok": reason is None, "reason": reason})
    return results
