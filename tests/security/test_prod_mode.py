"""Finding 7: prod mode (PAMTALK_ENV=prod) refuses unsafe setups, each with a message that
names the fix: a guessable bootstrap key, no signing secret, demo logins in the database. It
serves no /docs or /openapi.json, /metrics only on PAMTALK_METRICS_PORT; a new bootstrap key
revokes the one it replaces; listings show at most 4 characters of a key."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr, ValidationError
from sqlalchemy import select, text

from pamtalk.api.app import create_app
from pamtalk.api.prod import UnsafeProdSetup
from pamtalk.db import seed
from pamtalk.db.migrate import upgrade
from pamtalk.db.models import ApiKey
from pamtalk.db.session import create_engine
from pamtalk.settings import Settings, estimated_entropy_bits
from tests import services
from tests.conftest import ADMIN_KEY, running

PAMTALK = str(Path(sys.executable).parent / "pamtalk")
SECRET = secrets.token_hex(32)
TINY_SEED = seed.SeedSize(farms=3, buyers=2, analysts=1, transactions=10, days=3)


def prod(settings: Settings, admin_api_key: str | None = None) -> Settings:
    """The test stack's settings in prod mode, validated as the environment's would be (the
    fixtures' admin key is too weak for prod: a prod app gets its own, or none)."""
    values = settings.model_dump() | {"env": "prod", "secret_key": SecretStr(SECRET)}
    return Settings(**values | {"admin_api_key": admin_api_key})


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    application = create_app(settings)
    async with running(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


@pytest.mark.parametrize("key", ["a" * 32, "ab" * 16, "abcdefgh" * 4, "short-but-random-9f"])
def test_prod_refuses_a_guessable_bootstrap_key(key: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(env="prod", secret_key=SECRET, admin_api_key=key)
    message = str(refused.value)
    assert "PAMTALK_ADMIN_API_KEY must be at least 32 characters in prod and look random" in message
    assert "openssl rand -hex 32" in message
    assert key not in message  # a refused secret is not echoed into logs


def test_prod_takes_generated_keys() -> None:
    for key in (secrets.token_hex(32), secrets.token_urlsafe(32), secrets.token_urlsafe(24)):
        assert Settings(env="prod", secret_key=SECRET, admin_api_key=key).admin_api_key == key
    assert estimated_entropy_bits("a" * 32) == 0
    assert estimated_entropy_bits("ab" * 16) == 32


def test_prod_refuses_to_start_without_a_signing_secret() -> None:
    with pytest.raises(ValidationError, match="PAMTALK_SECRET_KEY is required in prod"):
        Settings(env="prod")
    with pytest.raises(ValidationError, match="PAMTALK_SECRET_KEY is the public development key"):
        Settings(env="prod", secret_key="pamtalk-development-secret-not-for-production")
    with pytest.raises(ValidationError, match="PAMTALK_SECRET_KEY must be at least 32"):
        Settings(env="prod", secret_key="x" * 64)
    assert Settings(env="dev").secret_key is None  # dev and tests run on the public key


def embedded(tmp_path: Path, **env: str) -> dict[str, str]:
    """The environment of a `pamtalk` command on the embedded defaults in ``tmp_path``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("PAMTALK_")}
    return {
        **base,
        "PAMTALK_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/pamtalk.db",
        "PAMTALK_MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db",
        "PAMTALK_MODEL_WATCH_INTERVAL": "0",
        **env,
    }


def run_serve(tmp_path: Path, log: Path, *args: str, **env: str) -> subprocess.Popen[bytes]:
    """`pamtalk serve ARGS` on the embedded defaults in ``tmp_path``, its output in ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [PAMTALK, "serve", *args],
            env=embedded(tmp_path, **env),
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def refusal(tmp_path: Path, *args: str, **env: str) -> str:
    """What `pamtalk serve ARGS` says when it refuses to start (exit status 2)."""
    log = tmp_path / "serve.log"
    process = run_serve(tmp_path, log, *args, **env)
    try:
        process.wait(timeout=60)  # the old code served instead
    finally:
        process.kill()
    output = log.read_text()
    assert process.returncode == 2, output
    assert "Traceback" not in output
    return output


def test_serve_refuses_an_unsafe_prod_setup_and_says_how_to_fix_it(tmp_path: Path) -> None:
    weak = "a" * 32
    output = refusal(tmp_path, PAMTALK_ENV="prod", PAMTALK_ADMIN_API_KEY=weak)
    assert "PAMTALK_ADMIN_API_KEY must be at least 32 characters in prod" in output
    assert "PAMTALK_SECRET_KEY is required in prod" in output
    assert "openssl rand -hex 32" in output and weak not in output


def test_serve_refuses_a_database_with_demo_logins(tmp_path: Path) -> None:
    for command in (["db", "upgrade"], ["db", "seed", "--farms", "2", "--transactions", "5"]):
        subprocess.run(
            [PAMTALK, *command], env=embedded(tmp_path), cwd=tmp_path, check=True, timeout=120
        )
    output = refusal(tmp_path, "--workers", "2", PAMTALK_ENV="prod", PAMTALK_SECRET_KEY=SECRET)
    assert "PAMTALK_ENV=prod refuses to start: " in output
    assert "demo accounts log in with the demo password (admin@pamtalk.local, " in output
    assert "UPDATE users SET password_hash = NULL WHERE email LIKE '%@pamtalk.local'" in output


async def test_prod_refuses_demo_logins_until_their_passwords_are_gone(
    app: FastAPI, settings: Settings
) -> None:
    async with app.state.pamtalk.sessions.write() as session:
        await seed.seed(session, TINY_SEED)
    with pytest.raises(UnsafeProdSetup) as refused:
        async with serving(prod(settings)):
            pass
    message = str(refused.value)
    assert "refuses to start: 6 demo accounts log in with the demo password" in message
    assert "analyst1@pamtalk.local, buyer1@pamtalk.local, buyer2@pamtalk.local and 3 more" in (
        message
    )
    fix = message.split("take the demo passwords away: ")[1]
    async with app.state.pamtalk.sessions.write() as session:
        await session.execute(text(fix))
        await session.commit()
    async with serving(prod(settings)) as client:
        assert (await client.get("/healthz")).status_code == 200
        demo = {"email": "farmer2@pamtalk.local", "password": seed.DEMO_PASSWORD}
        assert (await client.post("/v1/auth/login", json=demo)).status_code == 401


async def test_prod_serves_no_api_description_and_no_metrics_on_the_api_port(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    assert (await client.get("/metrics")).status_code == 200  # dev and tests: unchanged
    assert (await client.get("/openapi.json")).status_code == 200
    async with serving(prod(settings)) as prod_client:
        for path in ("/docs", "/docs/static/swagger-ui.css", "/redoc", "/openapi.json"):
            assert (await prod_client.get(path)).status_code == 404, path
        assert (await prod_client.get("/metrics")).status_code == 404
        assert (await prod_client.get("/healthz")).status_code == 200


async def list_keys(client: httpx.AsyncClient, key: str) -> httpx.Response:
    return await client.get("/v1/auth/api-keys", headers={"X-API-Key": key})


async def test_a_new_bootstrap_key_revokes_the_previous_one(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    assert (await list_keys(client, ADMIN_KEY)).status_code == 200  # the fixture's; now cached
    second, third = secrets.token_urlsafe(32), secrets.token_hex(32)
    async with serving(prod(settings, admin_api_key=second)) as prod_client:
        listed = await list_keys(prod_client, second)
        assert listed.status_code == 200
        assert (await list_keys(prod_client, ADMIN_KEY)).status_code == 401
    keys = {item["prefix"]: item for item in listed.json()}
    assert set(keys) == {ADMIN_KEY[:4], second[:4]}
    assert keys[ADMIN_KEY[:4]]["revoked_at"] is not None
    assert keys[second[:4]]["revoked_at"] is None
    async with serving(prod(settings, admin_api_key=third)) as prod_client:
        assert (await list_keys(prod_client, second)).status_code == 401
    # Set back, a rotated-out key stays revoked (it may be why it was rotated), and the key
    # in use stays valid.
    async with serving(prod(settings, admin_api_key=second)) as prod_client:
        assert (await list_keys(prod_client, second)).status_code == 401
        assert (await list_keys(prod_client, third)).status_code == 200


async def test_key_listings_show_at_most_four_secret_characters(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    admin = {"X-API-Key": ADMIN_KEY}
    created = await client.post("/v1/auth/api-keys", json={"name": "app"}, headers=admin)
    assert created.status_code == 201
    key = created.json()["key"]
    listed = await client.get("/v1/auth/api-keys", headers=admin)
    prefixes = [item["prefix"] for item in listed.json()]
    assert prefixes == [ADMIN_KEY[:4], key[:7]]  # pt_ and 4 characters of the secret
    async with app.state.pamtalk.sessions.write() as session:
        stored = list(await session.scalars(select(ApiKey.prefix).order_by(ApiKey.id)))
    assert stored == prefixes


def test_prod_serves_metrics_on_their_own_port_only(tmp_path: Path) -> None:
    """`pamtalk serve` with two workers: /metrics is 404 on the API port and served, merged
    across the workers, on PAMTALK_METRICS_PORT."""
    port, metrics_port, log = services.free_port(), services.free_port(), tmp_path / "serve.log"
    env = {"PAMTALK_ENV": "prod", "PAMTALK_SECRET_KEY": SECRET}
    env["PAMTALK_METRICS_PORT"] = str(metrics_port)
    process = run_serve(tmp_path, log, "--port", str(port), "--workers", "2", **env)
    api = f"http://127.0.0.1:{port}"
    try:
        services.wait_until_up(f"{api}/healthz", process, log, timeout=120)
        assert httpx.get(f"{api}/metrics").status_code == 404
        for _ in range(20):  # spread over both workers
            assert httpx.get(f"{api}/healthz", headers={"Connection": "close"}).is_success
        scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert scraped.status_code == 200
        sample = re.search(
            r'request_total\{method="GET",route="/healthz",status="200"\} (\S+)', scraped.text
        )
        assert sample and float(sample[1]) >= 21, scraped.text  # every worker's requests
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(params=["sqlite", "postgresql"])
async def unmigrated(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
        return
    url = await services.create_database()
    yield url
    await services.drop_database(url)


async def test_the_migration_cuts_stored_prefixes_and_marks_the_bootstrap_key(
    unmigrated: str,
) -> None:
    engine = create_engine(Settings(database_url=unmigrated))
    try:
        await upgrade(engine, "0005")
        async with engine.begin() as conn:
            for id_, email in ((1, seed.ADMIN_EMAIL), (2, "kim@farm.kr")):
                await conn.execute(
                    text(
                        "INSERT INTO users (id, email, name, role, is_active, created_at) "
                        "VALUES (:id, :email, 'x', 'admin', true, CURRENT_TIMESTAMP)"
                    ),
                    {"id": id_, "email": email},
                )
            rows = [  # (owner, name, prefix as earlier versions stored it)
                (1, seed.BOOTSTRAP_KEY_NAME, "k3Yq81Zx0b"),
                (2, seed.BOOTSTRAP_KEY_NAME, "pt_Ab12Cd3"),  # a user's key, named alike
                (2, "app", "pt_Zz98Yy7"),
            ]
            for i, (user_id, name, prefix) in enumerate(rows):
                await conn.execute(
                    text(
                        "INSERT INTO api_keys (user_id, name, prefix, key_hash, created_at) "
                        "VALUES (:user_id, :name, :prefix, :hash, CURRENT_TIMESTAMP)"
                    ),
                    {"user_id": user_id, "name": name, "prefix": prefix, "hash": f"{i:064d}"},
                )
        await upgrade(engine, "0006")
        async with engine.connect() as conn:
            result = await conn.execute(
                text("SELECT prefix, bootstrap FROM api_keys ORDER BY key_hash")
            )
            assert [tuple(row) for row in result] == [
                ("k3Yq", True),
                ("pt_Ab12", False),
                ("pt_Zz98", False),
            ]
    finally:
        await engine.dispose()
