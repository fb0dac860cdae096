"""The demand model against its peers, as one training run measures them.

What it measures
    One ``train_demand`` run with the default config (the command ``pamtalk train demand``
    trains with): the network, the naive baselines and the peers of
    ``pamtalk/models/demand/peers.py`` (AutoETS, AutoTheta, a global LightGBM), all scored by
    ``evaluate.py`` on the same windows: the hold-out (the last 28 days of every series) and
    the mean over the rolling origins. For each: MASE, its ratio to the seasonal naive's,
    wQL and p10-p90 coverage; and how long the peers added to the run.

How to run
    From the repo root, with the ``forecast`` extra installed::

        .venv/bin/python bench/demand_peers.py [--data CSV | --synthetic] [--out DIR] [--write]
        .venv/bin/python bench/demand_peers.py --metrics DIR/metrics.json [--write]

    It trains (about 2-4 minutes on the Jeju data on 2 cores), or with ``--metrics`` renders an
    earlier run's metrics.json (``python -m pamtalk.training.demand`` writes one). It prints
    a Markdown table, and with ``--write`` puts it in docs/models.md between
    ``<!-- BEGIN bench/demand_peers.py -->`` and its END line.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
from collections.abc import Mapping
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # to import bench.*
from bench import docs, harness
from pamtalk.models.demand.data import JEJU_TRAIN, load_csv
from pamtalk.models.demand.peers import PEERS
from pamtalk.models.demand.synthetic import synthetic
from pamtalk.training.demand import DemandConfig, train_demand

SECTION = docs.section_name(__file__)
MODELS_DOC = harness.ROOT / "docs" / "models.md"
METHODS = ("model", *PEERS, "seasonal_naive", "moving_average")


def prefix(method: str, rolling: bool) -> str:
    """The metrics.json key prefix of ``method`` (the model's keys have none)."""
    own = "" if method == "model" else f"{method}_"
    return f"rolling_{own}" if rolling else own


def render(metrics: Mapping[str, float], data: str, command: str) -> str:
    def fmt(value: float, digits: int = 3) -> str:
        return f"{value:.{digits}f}" if math.isfinite(value) else "n/a"

    lines = [
        f"Command: `{command}`. Data: {data}. Machine: {harness.machine_line(harness.machine())}."
        f" Date: {dt.date.today().isoformat()}.",
        "",
        "| method | MASE | x seasonal naive | wQL | p10-p90 coverage "
        "| rolling MASE | x seasonal naive | rolling wQL | rolling coverage |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for method in METHODS:
        cells = []
        for rolling in (False, True):
            p = prefix(method, rolling)
            naive = metrics.get(f"{prefix('seasonal_naive', rolling)}mase", math.nan)
            mase = metrics.get(f"{p}mase", math.nan)
            cells += [
                fmt(mase),
                fmt(mase / naive if naive > 0 else math.nan),
                fmt(metrics.get(f"{p}wql", math.nan)),
                fmt(metrics.get(f"{p}coverage_p10_p90", math.nan)),
            ]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    seconds = metrics.get("peers_seconds", math.nan)
    total = metrics.get("train_seconds", math.nan)
    lines += [
        "",
        f"The peers added {fmt(seconds, 0)} s to a run of {fmt(total, 0)} s in all "
        "(training both networks, the peers at every origin, evaluation and plots).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--data", type=Path, help="a CSV of the Jeju shape (default: Jeju)")
    source.add_argument("--synthetic", action="store_true", help="generated data")
    source.add_argument("--metrics", type=Path, help="render an earlier run's metrics.json")
    parser.add_argument("--out", type=Path, default=Path("var/bench/demand_peers"))
    parser.add_argument("--write", action="store_true", help="update docs/models.md")
    args = parser.parse_args()
    if args.write:
        docs.check_section(SECTION, MODELS_DOC)
    command = harness.command_line(__file__)
    if args.metrics is not None:
        metrics = json.loads(args.metrics.read_text(encoding="utf-8"))
        data = f"the run of {args.metrics}"
    else:
        if args.synthetic:
            frame, data = synthetic(), "synthetic() (24 series x 3 years)"
        else:
            path = args.data or JEJU_TRAIN
            frame, data = load_csv(path), f"{path.name} ({path.parent.name})"
        config = DemandConfig(peers=True)
        metrics = train_demand(frame, config, args.out).metrics
    table = render(metrics, data, command)
    print(table)
    if args.write:
        docs.write_section(SECTION, table, MODELS_DOC)


if __name__ == "__main__":
    main()
