"""``pamtalk loadtest``: the seed's load scenarios on Locust (run in a subprocess)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pamtalk import extras
from pamtalk.cli.common import refuse
from pamtalk.db.seed import DEMO_PASSWORD


def loadtest(
    scenario: Annotated[str, typer.Option(help="basic, peak or spike")],
    users: Annotated[
        int | None, typer.Option(min=1, help="simulated users (basic 1000, peak 5000, spike 10000)")
    ] = None,
    rps: Annotated[
        float | None, typer.Option(min=0.01, help="target req/s (basic 20, peak 100, spike 500)")
    ] = None,
    duration: Annotated[
        float | None, typer.Option(min=1, help="seconds in all, ramp included")
    ] = None,
    ramp: Annotated[float | None, typer.Option(min=0, help="seconds to full load")] = None,
    target: Annotated[str, typer.Option(help="the server's base URL")] = "http://127.0.0.1:8000",
    report: Annotated[
        Path | None, typer.Option(help="report folder (default var/loadtest/SCENARIO)")
    ] = None,
    greenlets: Annotated[
        int | None,
        typer.Option(min=1, help="Locust users carrying the load (default: one per req/s)"),
    ] = None,
    arrivals: Annotated[
        str, typer.Option(help="paced (fixed gaps, random phase) or poisson (bursty)")
    ] = "paced",
    identities: Annotated[
        int, typer.Option(min=1, help="demo buyers and farmers to send as (API keys)")
    ] = 20,
    slo: Annotated[
        Path | None,
        typer.Option(help=r"TOML file overriding the SLOs (tables \[seed] and \[ours.SCENARIO])"),
    ] = None,
    password: Annotated[str, typer.Option(help="the demo users' password")] = DEMO_PASSWORD,
) -> None:
    """The seed's load test on Locust (headless): the 70/20/10 read/write/AI mix as demo
    buyers and farmers, judged against the seed's SLOs and ours. Writes summary.json,
    latency.png and Locust's HTML report; exits 0 when every SLO passed, 1 when one failed."""
    try:
        extras.require("loadtest", "pamtalk loadtest")
    except extras.MissingExtra as exc:
        refuse(exc, 2)
    from pamtalk.loadtest import run as loadtest_run  # Locust itself runs in a subprocess
    from pamtalk.loadtest.prepare import SetupError

    options = loadtest_run.Options(
        scenario=scenario,
        target=target.rstrip("/"),
        report_dir=report or Path("var/loadtest") / scenario,
        users=users,
        rps=rps,
        duration=duration,
        ramp=ramp,
        greenlets=greenlets,
        arrivals=arrivals,
        identities=identities,
        password=password,
        slo_file=slo,
    )
    try:
        code = loadtest_run.run(options, say=typer.echo)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    except (SetupError, RuntimeError) as exc:
        typer.echo(f"load test could not run: {exc}", err=True)
        raise typer.Exit(2) from exc
    raise typer.Exit(code)
