"""`pamtalk init` starts the ledger on a database from before it; verify then holds."""

from __future__ import annotations

from pathlib import Path

from pamtalk.db.manage import open_session
from pamtalk.db.migrate import upgrade
from pamtalk.db.seed import SeedSize, seed
from pamtalk.db.session import create_engine
from pamtalk.settings import Settings
from tests.ledger.conftest import pamtalk


async def test_init_ledgers_the_transactions_of_a_database_from_before_the_ledger(
    tmp_path: Path,
) -> None:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/old.db")
    engine = create_engine(settings)
    await upgrade(engine, "0003")  # the schema before the ledger
    await engine.dispose()
    async with open_session(settings) as session:
        await seed(session, SeedSize(farms=5, buyers=3, transactions=40))

    init = await pamtalk("init", "--no-models", database_url=settings.database_url, cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    assert "ledger started: 40 existing transactions ledgered" in init.stdout
    again = await pamtalk("init", "--no-models", database_url=settings.database_url, cwd=tmp_path)
    assert again.returncode == 0 and "ledger started" not in again.stdout
    verify = await pamtalk("ledger", "verify", database_url=settings.database_url, cwd=tmp_path)
    assert verify.returncode == 0 and "entries 1..40" in verify.stdout, verify.stderr
