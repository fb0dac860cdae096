"""Inclusion proofs: who may fetch one, 'not anchored yet', and the offline check, which
fails when any byte of the proof changes."""

from __future__ import annotations

import contextlib
import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from pamtalk.db.models import LedgerHead, Role
from pamtalk.ledger import merkle, proof
from tests.conftest import Actor, ActorFactory
from tests.ledger.conftest import ANCHOR_EVERY, pamtalk, sales


def url(tx: dict[str, Any]) -> str:
    return f"/v1/ledger/transactions/{tx['id']}/proof"


async def test_the_buyer_the_owner_and_admins_get_it_others_do_not(
    client: httpx.AsyncClient, actors: dict[Role, Actor], new_actor: ActorFactory
) -> None:
    _, txs = await sales(client, actors, ANCHOR_EVERY)
    tx = txs[2]
    for allowed in (actors[Role.buyer], actors[Role.farmer], actors[Role.admin]):
        response = await client.get(url(tx), headers=allowed.headers)
        assert response.status_code == 200, (allowed.role, response.text)
        assert response.json()["transaction_id"] == tx["id"]
    others = [actors[Role.analyst], await new_actor(Role.buyer), await new_actor(Role.farmer)]
    for other in others:
        response = await client.get(url(tx), headers=other.headers)
        assert response.status_code == 404, (other.role, response.text)
        assert response.json()["error"]["message"] == f"transaction {tx['id']} not found"
    missing = await client.get("/v1/ledger/transactions/999999/proof", headers=others[0].headers)
    assert missing.status_code == 404
    assert (await client.get(url(tx))).status_code == 401


async def test_not_anchored_yet_then_anchored_when_overdue(
    app: FastAPI, client: httpx.AsyncClient, actors: dict[Role, Actor]
) -> None:
    _, txs = await sales(client, actors, ANCHOR_EVERY + 2)
    buyer = actors[Role.buyer]
    response = await client.get(url(txs[-1]), headers=buyer.headers)
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "not_anchored" and error["details"] == {"position": 7}
    async with app.state.pamtalk.sessions.write() as session:  # the oldest pending entry ages
        await session.execute(
            update(LedgerHead).values(pending_since=datetime(2020, 1, 1, tzinfo=UTC))
        )
        await session.commit()
    response = await client.get(url(txs[-1]), headers=buyer.headers)
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["position"] == 7
    assert (document["anchor"]["first"], document["anchor"]["last"]) == (6, 7)
    assert proof.check(response.content).position == 7


async def test_a_proof_checks_offline_and_fails_when_any_byte_changes(
    client: httpx.AsyncClient, actors: dict[Role, Actor], tmp_path: Path
) -> None:
    _, txs = await sales(client, actors, 3 * ANCHOR_EVERY)
    response = await client.get(url(txs[7]), headers=actors[Role.buyer].headers)
    assert response.status_code == 200, response.text
    saved = response.content
    checked = proof.check(saved)
    assert (checked.transaction_id, checked.position) == (txs[7]["id"], 8)
    assert checked.receipt is not None and checked.receipt["sink"] == "local"
    assert len(response.json()["path"]) == 3  # leaf 2 of a tree of 5

    for at in range(len(saved)):
        for flip in (0x01, 0x20):
            changed = saved[:at] + bytes([saved[at] ^ flip]) + saved[at + 1 :]
            with pytest.raises(proof.InvalidProof):
                proof.check(changed)

    good, bad = tmp_path / "proof.json", tmp_path / "tampered.json"
    good.write_bytes(saved)
    bad.write_bytes(saved.replace(b'"position":8', b'"position":9'))
    ok = await pamtalk("ledger", "verify-proof", str(good))
    assert ok.returncode == 0 and f"transaction {txs[7]['id']} is entry 8" in ok.stdout
    failed = await pamtalk("ledger", "verify-proof", str(bad))
    assert failed.returncode == 1 and "proof does not hold" in failed.stderr


def test_audit_paths_lead_to_the_root_from_their_leaf_only() -> None:
    for size in range(1, 20):
        leaves = [bytes([i]) * 32 for i in range(size)]
        root = merkle.root(leaves)
        for index, leaf in enumerate(leaves):
            path = merkle.path(index, leaves)
            assert merkle.root_from_path(index, size, leaf, path) == root
            for other in range(size):
                if other != index:
                    with contextlib.suppress(ValueError):  # a path that cannot fit
                        assert merkle.root_from_path(other, size, leaf, path) != root
    # RFC 6962 domain separation: a one-leaf tree's root is not its leaf's plain SHA-256.
    leaf = b"x" * 32
    assert merkle.root([leaf]) == hashlib.sha256(b"\x00" + leaf).digest()
