"""/docs rendered offline in headless Chromium, with a screenshot (issue 19 item 4).

Runbook::

    apt-get install -y chromium            # Debian's package (once; run as root)
    .venv/bin/python bench/docs_screenshot.py [--out var/docs/docs.png]

Starts ``pamtalk serve`` on a free port with a scratch SQLite database and an empty model
registry (the page needs no model), then loads /docs in ``chromium --headless --no-sandbox
--disable-gpu`` with every host but 127.0.0.1 unresolvable (as on a machine without
internet). It fails unless Swagger UI rendered the API (its operations are in the DOM) and
writes the screenshot. tests/api/test_docs.py runs it when chromium is installed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import harness

OFFLINE = "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"  # no DNS for anything but this machine
RENDERED = ("PAM-TALK serving", "opblock", "/v1/predictions/demand", "pamtalk-demo")


def chromium() -> str | None:
    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)


def browse(browser: str, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--host-resolver-rules={OFFLINE}",
        "--virtual-time-budget=15000",  # let Swagger UI fetch /openapi.json and render
        "--window-size=1280,1800",
        *extra,
        url,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def render(out: Path) -> None:
    browser = chromium()
    if browser is None:
        raise SystemExit("chromium is not installed: apt-get install -y chromium")
    with tempfile.TemporaryDirectory(prefix="pamtalk-docs-") as scratch:
        env = {
            **os.environ,
            "PAMTALK_DATABASE_URL": f"sqlite+aiosqlite:///{scratch}/pamtalk.db",
            "PAMTALK_MLFLOW_TRACKING_URI": f"sqlite:///{scratch}/mlflow.db",
            "PAMTALK_MODEL_WATCH_INTERVAL": "0",
        }
        env.pop("PAMTALK_REDIS_URL", None)
        harness.run_step("pamtalk db upgrade", [str(harness.BIN / "pamtalk"), "db", "upgrade"], env)
        with harness.pamtalk_serve(env, Path(scratch) / "serve.log") as (url, _):
            dom = browse(browser, f"{url}/docs", "--dump-dom")
            missing = [text for text in RENDERED if text not in dom.stdout]
            if dom.returncode != 0 or missing:
                raise SystemExit(
                    f"/docs did not render offline (missing {missing}):\n{dom.stderr[-2000:]}"
                )
            out.parent.mkdir(parents=True, exist_ok=True)
            shot = browse(browser, f"{url}/docs", f"--screenshot={out.resolve()}")
            if shot.returncode != 0 or not out.exists():
                raise SystemExit(f"no screenshot:\n{shot.stderr[-2000:]}")
    harness.say(f"/docs rendered offline; screenshot: {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("var/docs/docs.png"))
    render(parser.parse_args().out)


if __name__ == "__main__":
    sys.exit(main())
