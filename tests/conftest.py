"""Fixtures: every API test runs on two stacks, the embedded defaults (SQLite + in-process
cache) and the production services (PostgreSQL + Redis)."""

from __future__ import annotations

import asyncio
import itertools
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy import text

from pamtalk.api.app import create_app
from pamtalk.db.migrate import upgrade
from pamtalk.db.models import ApiKey, Base, Role, User
from pamtalk.db.seed import ensure_admin_api_key
from pamtalk.db.session import create_engine
from pamtalk.registry import defaults, store
from pamtalk.security import digest, hash_password_sync, new_api_key, shown_prefix
from pamtalk.settings import Settings
from tests import services
from tests.services import RedisProcess

ADMIN_KEY = "test-admin-key-" + "x" * 24
TEST_LIMITS: dict[str, Any] = {
    "rate_limit_auth": "100000/minute",
    "rate_limit_principal": "100000/second",
    "rate_limit_predictions": "100000/second",
    "password_hash_wait_s": 60.0,
}
PASSWORD = "correct horse battery"
_PASSWORD_HASH = hash_password_sync(PASSWORD)


@dataclass(frozen=True)
class Stack:
    name: str
    database_url: str
    redis_url: str | None


async def finished(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> Any:
    """The job at ``url`` once it has ended (completed or failed)."""
    for _ in range(500):
        job = (await client.get(url, headers=headers)).json()
        if job["status"] in ("completed", "failed"):
            return job
        await asyncio.sleep(0.02)
    raise AssertionError(f"job did not finish: {job}")


def running(app: FastAPI) -> LifespanManager:
    """The app started and stopped as a server does it. Generous timeouts: MLflow creating
    its tables on a loaded 2-core box can take longer than asgi-lifespan's default 5 s."""
    return LifespanManager(app, startup_timeout=60, shutdown_timeout=60)


@pytest.fixture
def redis_process() -> Iterator[RedisProcess]:
    """A private redis-server the test may stop and start (never the machine's)."""
    redis = RedisProcess()
    redis.start()
    yield redis
    redis.stop()


@pytest.fixture(scope="session", params=["embedded", "services"])
async def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    """A migrated, empty database (and cache) per stack for the whole run."""
    if request.param == "embedded":
        path = Path(tmp_path_factory.mktemp("sqlite")) / "pamtalk.db"
        url, redis_url = f"sqlite+aiosqlite:///{path}", None
    else:
        url = await services.create_database()
        services.need(services.REDIS_URL, 6379, "Redis")
        redis_url = services.REDIS_URL
    engine = create_engine(Settings(database_url=url))
    await upgrade(engine)
    await engine.dispose()
    yield Stack(request.param, url, redis_url)
    if request.param == "services":
        await services.drop_database(url)


@dataclass(frozen=True)
class ModelStore:
    """A trained store kept pristine; tests that change aliases copy it first."""

    folder: Path

    def copy(self, to: Path) -> str:
        shutil.copytree(self.folder, to)
        return f"sqlite:///{to}/mlflow.db"


@pytest.fixture(scope="session")
def model_store(tmp_path_factory: pytest.TempPathFactory) -> ModelStore:
    folder = tmp_path_factory.mktemp("models") / "store"
    settings = Settings(mlflow_tracking_uri=f"sqlite:///{folder}/mlflow.db")
    client = store.connect(settings)
    defaults.ensure_champions(client, settings, folder / "train", say=lambda _: None, tiny=True)
    return ModelStore(folder)


@pytest.fixture(scope="session")
def empty_registry(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An MLflow store with no models: API tests that do not predict start no model."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"


@pytest.fixture
def serving_registry(empty_registry: str) -> str:
    """The MLflow store the app serves from; tests/serving overrides it with trained models."""
    return empty_registry


@pytest.fixture
def settings(stack: Stack, serving_registry: str) -> Settings:
    return Settings(
        env="test",
        database_url=stack.database_url,
        redis_url=stack.redis_url,
        admin_api_key=ADMIN_KEY,
        mlflow_tracking_uri=serving_registry,
        model_watch_interval=0,
        # The suite sends many requests quickly from one address and user: limits counted
        # but out of reach, and Argon2 that waits for a slot. tests/security sets low ones.
        **TEST_LIMITS,
    )


async def _reset(settings: Settings) -> None:
    """Empty every table and the cache so each test starts clean."""
    engine = create_engine(settings)
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    async with engine.begin() as conn:
        if settings.is_sqlite:
            for table in tables:
                await conn.execute(text(f"DELETE FROM {table}"))
        else:
            await conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    await engine.dispose()
    if settings.redis_url:
        redis = Redis.from_url(settings.redis_url)
        await redis.flushdb()
        await redis.aclose()


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    await _reset(settings)
    application = create_app(settings)
    async with running(application):
        async with application.state.pamtalk.sessions.write() as session:
            await ensure_admin_api_key(session, ADMIN_KEY)
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


@dataclass(frozen=True)
class Actor:
    id: int
    role: Role
    email: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.key}


_emails = itertools.count(1)
ActorFactory = Callable[[Role], Awaitable[Actor]]


@pytest.fixture
def new_actor(app: FastAPI) -> ActorFactory:
    """Make a user of a role with an API key, straight in the database (fast)."""

    async def make(role: Role) -> Actor:
        email = f"{role}{next(_emails)}@example.kr"
        key = new_api_key()
        async with app.state.pamtalk.sessions.write() as session:
            user = User(email=email, name=f"test {role}", role=role, password_hash=_PASSWORD_HASH)
            session.add(user)
            await session.flush()
            session.add(
                ApiKey(user_id=user.id, name="test", prefix=shown_prefix(key), key_hash=digest(key))
            )
            await session.commit()
            return Actor(user.id, role, email, key)

    return make


@pytest.fixture
async def actors(new_actor: ActorFactory) -> dict[Role, Actor]:
    return {role: await new_actor(role) for role in Role}


def farm_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "한라 감귤 농장",
        "region": "jeju",
        "latitude": 33.38,
        "longitude": 126.55,
        "area_m2": 12000,
        "crops": ["tangerine", "cabbage"],
        "organic": True,
        "certifications": ["organic"],
        "practices": {"nitrogen_kg_per_ha": 20.5, "workers": 4, "fair_wage": True},
    }
    body.update(overrides)
    return body


async def create_farm(client: httpx.AsyncClient, owner: Actor, **overrides: Any) -> dict[str, Any]:
    response = await client.post("/v1/farms", json=farm_body(**overrides), headers=owner.headers)
    assert response.status_code == 201, response.text
    farm: dict[str, Any] = response.json()
    return farm
