"""`ledger verify` names the first bad entry for each kind of tampering, on both databases."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from pamtalk.db.models import Role, Transaction
from pamtalk.ledger.record import canonical, entry_hash
from pamtalk.settings import Settings
from tests.conftest import Actor
from tests.ledger.conftest import check, pamtalk, sales


async def sql(app: FastAPI, *statements: str) -> None:
    async with app.state.pamtalk.sessions.write() as session:
        for statement in statements:
            await session.execute(text(statement))
        await session.commit()


async def entry(app: FastAPI, seq: int) -> tuple[int, str]:
    async with app.state.pamtalk.sessions.write() as session:
        row = (
            await session.execute(
                text("SELECT transaction_id, hash FROM ledger_entries WHERE seq = :s"), {"s": seq}
            )
        ).one()
    return row.transaction_id, row.hash


async def test_an_untouched_ledger_verifies(
    app: FastAPI, client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    await sales(client, actors, 12)
    report = await check(app)
    assert report.ok, report.problem
    assert (report.start, report.entries, report.anchors) == (1, 12, 2)
    partial = await check(app, start=8)
    assert partial.ok and partial.start == 6  # from the first entry of 8's anchor
    assert (await check(app, start=11)).start == 11  # not anchored yet: from 11 itself


async def test_an_altered_transaction(
    app: FastAPI, client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    _, txs = await sales(client, actors, 12)
    await sql(app, f"UPDATE transactions SET total_krw = total_krw + 1 WHERE id = {txs[6]['id']}")
    report = await check(app)
    assert report.problem == (
        f"entry 7 (transaction {txs[6]['id']}): "
        "its hash does not match the transaction as it is now"
    )


async def test_an_altered_entry_hash_and_a_recomputed_chain_break_the_anchor(
    app: FastAPI, client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    _, txs = await sales(client, actors, 10)
    await sql(app, f"UPDATE transactions SET quantity_g = 1 WHERE id = {txs[1]['id']}")
    # A thorough forger re-hashes every entry from the altered one to the head: the chain
    # holds again, but the anchor over entries 1..5 does not.
    async with app.state.pamtalk.sessions.write() as session:  # one session: SQLite has one writer
        rows = (
            await session.execute(
                text("SELECT seq, transaction_id, hash FROM ledger_entries ORDER BY seq")
            )
        ).all()
        prev = rows[0].hash
        for row in rows[1:]:
            tx = await session.get(Transaction, row.transaction_id)
            assert tx is not None
            digest = entry_hash(prev, canonical(tx))
            await session.execute(
                text("UPDATE ledger_entries SET prev_hash = :p, hash = :h WHERE seq = :s"),
                {"p": prev, "h": digest, "s": row.seq},
            )
            prev = digest
        await session.execute(text("UPDATE ledger_head SET hash = :h"), {"h": prev})
        await session.commit()
    report = await check(app)
    assert report.problem is not None
    assert report.problem.startswith("anchor ") and "(entries 1..5)" in report.problem
    assert report.problem.endswith("its root does not match its entries")


@pytest.mark.parametrize(
    ("seq", "problem"),
    [
        (4, "entry 4 is missing (the next entry is 5)"),
        (12, "entry 12 is missing: the chain head is at entry 12"),
    ],
)
async def test_a_deleted_entry(
    app: FastAPI, client: httpx.AsyncClient, actors: dict[Role, Actor], seq: int, problem: str
) -> None:
    _, txs = await sales(client, actors, 12)
    await sql(
        app,
        f"DELETE FROM ledger_entries WHERE seq = {seq}",
        f"DELETE FROM transactions WHERE id = {txs[seq - 1]['id']}",
    )
    assert (await check(app)).problem == problem


async def test_an_inserted_transaction(
    app: FastAPI, client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    _, txs = await sales(client, actors, 6)
    await sql(
        app,
        "INSERT INTO transactions (farm_id, buyer_id, crop, region, quantity_g, "
        "unit_price_krw, total_krw, status, created_at) SELECT farm_id, buyer_id, crop, region, "
        "quantity_g, unit_price_krw, total_krw, status, created_at FROM transactions "
        f"WHERE id = {txs[0]['id']}",
    )
    problem = (await check(app)).problem
    assert problem is not None and problem.endswith("is in no ledger entry: inserted")


async def test_an_inserted_entry(
    app: FastAPI, client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    await sales(client, actors, 12)
    tx_id, _ = await entry(app, 6)
    await sql(
        app,
        # Make room at 6 (in two steps: no primary key collides on the way), then forge an
        # entry there that links to entry 5 and hashes correctly.
        "UPDATE ledger_entries SET seq = seq + 1000 WHERE seq >= 6",
        "UPDATE ledger_entries SET seq = seq - 999 WHERE seq >= 1000",
        "UPDATE ledger_head SET seq = seq + 1",
    )
    _, prev = await entry(app, 5)
    async with app.state.pamtalk.sessions.write() as session:
        await session.execute(
            text(
                "INSERT INTO transactions (farm_id, buyer_id, crop, region, quantity_g, "
                "unit_price_krw, total_krw, status, created_at) SELECT farm_id, buyer_id, crop, "
                "region, 1, unit_price_krw, 1, status, created_at FROM transactions "
                f"WHERE id = {tx_id}"
            )
        )
        new_id = await session.scalar(text("SELECT max(id) FROM transactions"))
        tx = await session.get(Transaction, new_id)
        assert tx is not None
        await session.execute(
            text(
                "INSERT INTO ledger_entries (seq, transaction_id, prev_hash, hash, created_at) "
                "VALUES (6, :t, :p, :h, CURRENT_TIMESTAMP)"
            ),
            {"t": new_id, "p": prev, "h": entry_hash(prev, canonical(tx))},
        )
        await session.commit()
    assert (await check(app)).problem == (
        f"entry 7 (transaction {tx_id}) does not link to entry 6: entries inserted or reordered"
    )


async def test_reordered_entries(
    app: FastAPI, client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    await sales(client, actors, 12)
    third, _ = await entry(app, 3)
    fourth, _ = await entry(app, 4)
    await sql(
        app,
        "UPDATE ledger_entries SET seq = 1000 WHERE seq = 3",
        "UPDATE ledger_entries SET seq = 3 WHERE seq = 4",
        "UPDATE ledger_entries SET seq = 4 WHERE seq = 1000",
    )
    assert (await check(app)).problem == (
        f"entry 3 (transaction {fourth}) does not link to entry 2: entries inserted or reordered"
    )
    assert third != fourth


async def test_the_command_exits_1_naming_the_entry(
    app: FastAPI, client: httpx.AsyncClient, actors: dict[Role, Actor], settings: Settings
) -> None:
    _, txs = await sales(client, actors, 3)
    ok = await pamtalk("ledger", "verify", database_url=settings.database_url)
    assert ok.returncode == 0 and "ledger ok: entries 1..3" in ok.stdout, ok.stderr
    await sql(app, f"UPDATE transactions SET crop = 'cabbage' WHERE id = {txs[1]['id']}")
    bad = await pamtalk("ledger", "verify", "--from", "2", database_url=settings.database_url)
    assert bad.returncode == 1
    assert f"entry 2 (transaction {txs[1]['id']})" in bad.stderr
