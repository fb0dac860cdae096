"""Prod mode at startup (PAMTALK_ENV=prod), in each worker's lifespan: refuse a database where
the seed's demo accounts still log in, and register PAMTALK_ADMIN_API_KEY, revoking the
bootstrap key it replaces (changing the setting and restarting rotates the key). The settings
themselves (key strength, PAMTALK_SECRET_KEY) are refused earlier, in Settings.
docs/security.md, "Prod mode" and "Key rotation"."""

from __future__ import annotations

import logging

from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from pamtalk.api import auth
from pamtalk.api.state import AppState
from pamtalk.db import seed
from pamtalk.db.migrate import current_revision, head_revision
from pamtalk.db.session import create_engine, create_session_factory
from pamtalk.settings import Settings

log = logging.getLogger(__name__)

DEMO_FIX = (
    "a production database holds no demo data: start from an empty one (`pamtalk init` seeds "
    "nothing in prod), or take the demo passwords away: UPDATE users SET password_hash = NULL "
    "WHERE email LIKE '%@pamtalk.local'"
)


class UnsafeProdSetup(RuntimeError):
    """Prod refuses to start like this; the message says what to change."""


async def refuse_demo_logins(engine: AsyncEngine) -> None:
    """Raise UnsafeProdSetup while any of the seed's accounts logs in with the demo password.
    Needs the database: prod does not start without one, as it could not tell."""
    async with engine.connect() as conn:
        if not await conn.run_sync(lambda c: inspect(c).has_table("users")):
            return  # not migrated yet: no accounts at all
    async with create_session_factory(engine).read() as session:
        demo = await seed.demo_logins(session)
    if demo:
        shown = ", ".join(demo[:3]) + (f" and {len(demo) - 3} more" if len(demo) > 3 else "")
        raise UnsafeProdSetup(
            f"PAMTALK_ENV=prod refuses to start: {len(demo)} demo accounts log in with the "
            f"demo password ({shown}); {DEMO_FIX}"
        )


async def check_database(settings: Settings) -> None:
    """The database check for ``pamtalk serve``, before any worker starts: a refusal is then
    one line and exit status 2, not a traceback per worker."""
    engine = create_engine(settings)
    try:
        await refuse_demo_logins(engine)
    finally:
        await engine.dispose()


async def prepare(state: AppState) -> None:
    """In each worker's startup: refuse demo logins (whatever started the app), then register
    the bootstrap key. Raises UnsafeProdSetup."""
    await refuse_demo_logins(state.engine)
    async with state.engine.connect() as conn:
        revision = await conn.run_sync(current_revision)
    key = state.settings.admin_api_key
    if key is None:
        return
    if revision != head_revision():
        log.warning(
            "PAMTALK_ADMIN_API_KEY not registered: the database schema is at %s, not %s; "
            "run `pamtalk db upgrade` (or `pamtalk init`) and restart",
            revision,
            head_revision(),
        )
        return
    async with state.sessions.write() as session:
        rotation = await seed.rotate_admin_api_key(session, key)
    if not rotation.usable:
        log.error(
            "PAMTALK_ADMIN_API_KEY was revoked earlier (rotated out or revoked by an admin) "
            "and stays revoked; set a new one (openssl rand -hex 32)"
        )
    for key_hash in rotation.revoked:
        await auth.forget_api_key(state.cache, key_hash)
    if rotation.revoked:
        log.warning(
            "PAMTALK_ADMIN_API_KEY rotated: %d earlier bootstrap key(s) revoked",
            len(rotation.revoked),
        )
