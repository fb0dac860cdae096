"""Service level objectives for a load test: the seed's, ours (stricter), and the verdict.

The seed's, for every scenario: p50 < 500 ms, p95 < 2 s, p99 < 5 s, error rate < 0.1 %, and
the target rate reached (at least 95 % of it over the steady phase, after the ramp). Ours add
p99 < 100 ms for basic and peak, p99 < 250 ms and no error at all for the spike.

Latency percentiles and errors are over every request of the run, ramp included (a spike is
held only if its ramp is); the rate is over the steady phase. A TOML file overrides any of it::

    [seed]
    p95_ms = 1500

    [ours.spike]
    p99_ms = 300
    max_errors = 0
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Targets:
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    max_error_rate: float | None = None  # failures / requests, whole run
    max_errors: int | None = None  # failures, whole run
    min_rps_ratio: float | None = None  # achieved / target rate, steady phase


SEED = Targets(p50_ms=500, p95_ms=2_000, p99_ms=5_000, max_error_rate=0.001, min_rps_ratio=0.95)
OURS: dict[str, Targets] = {
    "basic": Targets(p99_ms=100),
    "peak": Targets(p99_ms=100),
    "spike": Targets(p99_ms=250, max_errors=0),
}


@dataclass(frozen=True)
class Check:
    source: str  # "seed" or "ours"
    metric: str
    limit: float
    value: float
    passed: bool

    @property
    def rule(self) -> str:
        if self.metric.endswith("_ms"):
            return f"{self.metric.removesuffix('_ms')} < {self.limit:g} ms"
        if self.metric == "max_error_rate":
            return f"error rate < {self.limit * 100:g} %"
        if self.metric == "max_errors":
            return f"errors <= {self.limit:g}"
        return f"steady req/s >= {self.limit * 100:g} % of target"

    @property
    def shown(self) -> str:
        if self.metric.endswith("_ms"):
            return f"{self.value:.1f} ms"
        if self.metric == "max_error_rate":
            return f"{self.value * 100:.3f} %"
        if self.metric == "max_errors":
            return f"{self.value:g}"
        return f"{self.value * 100:.1f} %"


def targets(scenario: str, path: Path | None = None) -> dict[str, Targets]:
    """``{"seed": ..., "ours": ...}`` for the scenario, with the file's overrides."""
    chosen = {"seed": SEED, "ours": OURS.get(scenario, Targets())}
    if path is None:
        return chosen
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"cannot read the SLO file {path}: {exc}") from exc
    unknown = set(data) - {"seed", "ours"}
    if unknown:
        raise ValueError(f"{path}: unknown tables {sorted(unknown)}; use [seed] and [ours.NAME]")
    chosen["seed"] = _override(chosen["seed"], data.get("seed", {}), f"{path} [seed]")
    ours = data.get("ours", {}).get(scenario, {})
    chosen["ours"] = _override(chosen["ours"], ours, f"{path} [ours.{scenario}]")
    return chosen


def _override(base: Targets, values: dict[str, Any], where: str) -> Targets:
    names = {f.name for f in fields(Targets)}
    unknown = set(values) - names
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(names)}")
    for key, value in values.items():
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{where}: {key} must be a non-negative number, got {value!r}")
    return replace(base, **values)


def evaluate(summary: dict[str, Any], chosen: dict[str, Targets]) -> list[Check]:
    """Every set limit against the summary of :func:`pamtalk.loadtest.report.summarize`."""
    overall, steady = summary["overall"], summary["steady"]
    observed = {
        "p50_ms": overall["p50_ms"],
        "p95_ms": overall["p95_ms"],
        "p99_ms": overall["p99_ms"],
        "max_error_rate": overall["error_rate"],
        "max_errors": overall["failures"],
        "min_rps_ratio": steady["rps_ratio"],
    }
    checks = []
    for source, limits in chosen.items():
        for f in fields(Targets):
            limit = getattr(limits, f.name)
            if limit is None:
                continue
            value = float(observed[f.name])
            if math.isnan(value):
                passed = False
            elif f.name == "min_rps_ratio":
                passed = value >= limit
            elif f.name == "max_errors":
                passed = value <= limit
            else:
                passed = value < limit
            checks.append(Check(source, f.name, float(limit), value, passed))
    return checks
