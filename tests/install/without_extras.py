"""Run as a program by test_lean_install.py: the modules of every extra made unimportable
first (as if only ``pip install pamtalk`` had run), then one of two things:

    python -m tests.install.without_extras serve REGISTRY_URI DB_PATH
        migrate, start the API on a registry trained elsewhere, ask one demand forecast and
        print {"status", "body", "loaded"} as JSON
    python -m tests.install.without_extras cli ARGS...
        run ``pamtalk ARGS`` (its exit status is this program's)
"""

from __future__ import annotations

import sys

# The extras' top-level modules (pamtalk.extras.EXTRAS): None in sys.modules makes their
# import fail with ModuleNotFoundError, as when they are not installed.
BLOCKED = ("torch", "onnxscript", "matplotlib", "ray", "celery", "kombu", "locust", "gevent")
# The tracing extra's exporters and instrumentations (the API and the SDK come with the base).
BLOCKED += ("opentelemetry.exporter.otlp", "opentelemetry.instrumentation")
# What the full MLflow adds to mlflow-skinny (its server and flavours' dependencies): the
# base package has the client only.
MLFLOW_SERVER = ("flask", "gunicorn", "graphene", "sklearn", "scipy", "pyarrow", "docker")
for _name in BLOCKED + MLFLOW_SERVER:
    sys.modules[_name] = None  # type: ignore[assignment]

import asyncio  # noqa: E402
import json  # noqa: E402
from datetime import date, timedelta  # noqa: E402

import httpx  # noqa: E402
from asgi_lifespan import LifespanManager  # noqa: E402

ADMIN_KEY = "lean-install-admin-key-" + "x" * 24
AS_OF = date(2026, 3, 31)


async def serve(registry_uri: str, db_path: str) -> dict[str, object]:
    from pamtalk.api.app import create_app
    from pamtalk.db import manage
    from pamtalk.settings import Settings

    settings = Settings(
        env="test",
        database_url=f"sqlite+aiosqlite:///{db_path}",
        mlflow_tracking_uri=registry_uri,
        admin_api_key=ADMIN_KEY,
        model_watch_interval=0,
    )
    await manage.upgrade_database(settings)
    await manage.register_admin_key(settings)
    app = create_app(settings)
    history = [
        {"quantity_kg": 200.0 + 30 * (day.weekday() < 5), "price_krw_per_kg": 3000.0}
        for day in (AS_OF - timedelta(days=55 - i) for i in range(56))
    ]
    body = {
        "crop": "cabbage",
        "region": "jeju",
        "as_of": AS_OF.isoformat(),
        "horizon_days": 7,
        "history": history,
    }
    async with (
        LifespanManager(app, startup_timeout=120, shutdown_timeout=60),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        answer = await client.post(
            "/v1/predictions/demand", json=body, headers={"X-API-Key": ADMIN_KEY}
        )
    loaded = sorted(name for name in BLOCKED if sys.modules.get(name) is not None)
    return {"status": answer.status_code, "body": answer.json(), "loaded": loaded}


def main(argv: list[str]) -> int:
    if argv[0] == "serve":
        print(json.dumps(asyncio.run(serve(argv[1], argv[2]))))
        return 0
    from pamtalk.cli import app

    app(argv[1:], prog_name="pamtalk")
    return 0  # typer exits by itself


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
