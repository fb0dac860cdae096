"""The ledger: a transaction's inclusion proof, for its buyer, its farm's owner and admins."""

from __future__ import annotations

from fastapi import APIRouter, Response

from pamtalk.api.deps import CurrentUser, DbDep, PathId, SettingsDep, WriteDbDep
from pamtalk.api.responses import JSONResponse
from pamtalk.api.routes.transactions import is_party
from pamtalk.api.schemas.ledger import LedgerProof
from pamtalk.db.models import Role, Transaction
from pamtalk.errors import NotFound
from pamtalk.ledger import anchors, handover, proof

router = APIRouter(prefix="/v1/ledger", tags=["ledger"])


@router.get(
    "/transactions/{transaction_id}/proof",
    response_model=LedgerProof,
    responses={409: {"description": "not anchored yet (code not_anchored), or not ledgered"}},
)
async def transaction_proof(
    transaction_id: PathId,
    user: CurrentUser,
    db: DbDep,
    seal: WriteDbDep,
    settings: SettingsDep,
) -> Response:
    """The transaction's ledger entry, its position and a Merkle inclusion proof up to its
    anchor; save it and check it offline with `pamtalk ledger verify-proof FILE`. An entry
    is anchored within PAMTALK_LEDGER_ANCHOR_EVERY entries or PAMTALK_LEDGER_ANCHOR_MINUTES
    minutes: before that the answer is 409 `not_anchored` (an overdue anchor is sealed by
    this request)."""
    tx = await db.get(Transaction, transaction_id)
    allowed = tx is not None and (user.role == Role.admin or await is_party(tx, user, db))
    if tx is None or not allowed:
        raise NotFound(f"transaction {transaction_id} not found")
    try:
        return JSONResponse(await proof.build(db, tx))
    except proof.NotAnchored:
        # Sealing writes: in the write session, with the read ended first (a commit, so
        # that ``tx`` stays loaded); the proof is then read again from a fresh snapshot.
        await db.commit()
        if await anchors.seal_due(seal, anchors.Policy.from_settings(settings)) is None:
            raise
    await handover.submit(seal, settings)
    return JSONResponse(await proof.build(db, tx))
