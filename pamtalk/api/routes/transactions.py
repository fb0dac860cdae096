"""Produce transactions: idempotent creation, and listing by farm, buyer, crop and time."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Header, Query, Response, status
from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from pamtalk.api import links, pagination
from pamtalk.api.auth import Principal
from pamtalk.api.deps import (
    CurrentUser,
    DbDep,
    PathId,
    SettingsDep,
    TransactionWriter,
    WriteDbDep,
)
from pamtalk.api.responses import JSONResponse
from pamtalk.api.schemas.common import CropSlug, Moment, QueryId
from pamtalk.api.schemas.transactions import TransactionCreate, TransactionPage, TransactionPublic
from pamtalk.db.models import Farm, FarmStatus, Role, Transaction, User
from pamtalk.db.types import utcnow
from pamtalk.db.upsert import add_to_demand, insert_for
from pamtalk.domain import KST
from pamtalk.errors import Conflict, Forbidden, InvalidInput, NotFound
from pamtalk.ledger import anchors, chain, handover
from pamtalk.notify import outbox
from pamtalk.security import digest

router = APIRouter(prefix="/v1/transactions", tags=["transactions"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=128,
        pattern=r"^[\x21-\x7e]+$",
        description="retries with the same key return the original response",
    ),
]


def public(tx: Transaction) -> dict[str, object]:
    return TransactionPublic.model_validate(tx).model_dump(mode="json")


def total_krw(quantity_g: int, unit_price_krw: int) -> int:
    """Price is per kg; round half up to whole won."""
    return (quantity_g * unit_price_krw + 500) // 1000


async def _existing(db: AsyncSession, buyer_id: int, key: str) -> Transaction | None:
    return await db.scalar(
        select(Transaction).where(
            Transaction.buyer_id == buyer_id, Transaction.idempotency_key == key
        )
    )


def _replay(tx: Transaction, request_hash: str) -> Response:
    if tx.request_hash != request_hash:
        raise Conflict("Idempotency-Key was already used with a different request body")
    return JSONResponse(
        public(tx), status_code=status.HTTP_201_CREATED, headers={"Idempotent-Replayed": "true"}
    )


async def _buyer_for(body: TransactionCreate, user: TransactionWriter, db: AsyncSession) -> int:
    if body.buyer_id is None or body.buyer_id == user.id:
        if user.role != Role.buyer:
            raise InvalidInput("buyer_id is required when an admin records a transaction")
        return user.id
    if user.role != Role.admin:
        raise Forbidden("only an admin can record a transaction for another buyer")
    buyer = await db.get(User, body.buyer_id)
    if buyer is None or buyer.role != Role.buyer:
        raise InvalidInput(f"buyer_id {body.buyer_id} is not a buyer")
    return buyer.id


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=TransactionPublic,
    responses={
        201: {
            "links": {
                **links.to("/v1/transactions/{transaction_id}", "transaction_id", "get"),
                **links.to(
                    "/v1/ledger/transactions/{transaction_id}/proof", "transaction_id", "get"
                ),
            }
        },
        409: {"description": "Idempotency-Key reused with another body"},
    },
)
async def create_transaction(
    body: TransactionCreate,
    user: TransactionWriter,
    db: WriteDbDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Record a purchase. The server computes the total, adds it to the daily demand
    aggregate and appends it to the tamper-evident ledger in the same database transaction.
    Transactions are immutable: a correction is a new, compensating transaction."""
    buyer_id = await _buyer_for(body, user, db)
    request_hash = digest(
        orjson.dumps(body.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS).decode()
    )
    if idempotency_key and (earlier := await _existing(db, buyer_id, idempotency_key)):
        return _replay(earlier, request_hash)

    farm = await db.get(Farm, body.farm_id)
    if farm is None or farm.status == FarmStatus.deleted:
        raise NotFound(f"farm {body.farm_id} not found")
    if farm.status != FarmStatus.active:
        raise InvalidInput(f"farm {farm.id} is {farm.status} and cannot sell")
    if body.crop not in farm.crops:
        raise InvalidInput(
            f"farm {farm.id} does not grow {body.crop}; it grows: {', '.join(farm.crops)}"
        )

    quantity_g = int(body.quantity_kg * 1000)
    total = total_krw(quantity_g, body.unit_price_krw)
    now = utcnow()
    insert = insert_for(db, Transaction).values(
        farm_id=farm.id,
        buyer_id=buyer_id,
        crop=body.crop,
        region=farm.region,
        quantity_g=quantity_g,
        unit_price_krw=body.unit_price_krw,
        total_krw=total,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        created_at=now,
    )
    if idempotency_key:
        # A concurrent request with the same key may commit first: then this inserts nothing.
        insert = insert.on_conflict_do_nothing(index_elements=["buyer_id", "idempotency_key"])
    tx = (await db.scalars(insert.returning(Transaction))).one_or_none()
    if tx is None:
        await db.rollback()
        winner = await _existing(db, buyer_id, idempotency_key or "")
        if winner is None:  # cannot happen: the conflict proves the row exists
            raise Conflict("concurrent request with this Idempotency-Key; retry")
        return _replay(winner, request_hash)
    await db.execute(
        add_to_demand(
            db,
            [
                {
                    "crop": body.crop,
                    "region": farm.region,
                    "day": now.astimezone(KST).date(),
                    "quantity_g": quantity_g,
                    "value_krw": total,
                    "transactions": 1,
                }
            ],
        )
    )
    outbox.add(db, "transaction.created", public(tx), users=(farm.owner_id,))
    # Last before commit: the ledger append holds the chain head lock until then.
    sealed = await chain.append(db, tx, anchors.Policy.from_settings(settings), now)
    await db.commit()
    if sealed is not None:
        await handover.submit(db, settings)
    return JSONResponse(public(tx), status_code=status.HTTP_201_CREATED)


@router.get("", response_model=TransactionPage)
async def list_transactions(
    user: CurrentUser,
    db: DbDep,
    pages: pagination.PagesDep,
    farm_id: Annotated[QueryId | None, Query()] = None,
    buyer_id: Annotated[QueryId | None, Query()] = None,
    crop: Annotated[CropSlug | None, Query()] = None,
    since: Annotated[Moment | None, Query(description="inclusive; naive means UTC")] = None,
    until: Annotated[Moment | None, Query(description="exclusive; naive means UTC")] = None,
    limit: pagination.Limit = 50,
    cursor: pagination.Cursor = None,
) -> Response:
    """Newest first. Buyers see their purchases, farmers the sales of their farms, analysts
    and admins everything."""
    query = select(Transaction)
    if user.role == Role.buyer:
        if buyer_id not in (None, user.id):
            raise Forbidden("buyers can list only their own transactions")
        query = query.where(Transaction.buyer_id == user.id)
    elif user.role == Role.farmer:
        query = query.where(
            Transaction.farm_id.in_(select(Farm.id).where(Farm.owner_id == user.id))
        )
    if farm_id is not None:
        query = query.where(Transaction.farm_id == farm_id)
    if buyer_id is not None:
        query = query.where(Transaction.buyer_id == buyer_id)
    if crop is not None:
        query = query.where(Transaction.crop == crop)
    if since and until and since >= until:
        raise InvalidInput("since must be before until")
    # A cursor pages the query it came from: it carries these filters' hash.
    filters = {
        "farm_id": farm_id,
        "buyer_id": buyer_id,
        "crop": crop,
        "since": since,
        "until": until,
    }
    if since:
        query = query.where(Transaction.created_at >= since)
    if until:
        query = query.where(Transaction.created_at < until)
    if cursor:
        at, last_id = pages.decode(
            cursor, (pagination.timestamp, pagination.row_id), filters=filters
        )
        query = query.where(tuple_(Transaction.created_at, Transaction.id) < tuple_(at, last_id))
    query = query.order_by(Transaction.created_at.desc(), Transaction.id.desc()).limit(limit + 1)
    rows = list(await db.scalars(query))
    last = rows[limit - 1] if len(rows) > limit else None
    return JSONResponse(
        {
            "items": [public(tx) for tx in rows[:limit]],
            "next_cursor": pages.encode(last.created_at.isoformat(), last.id, filters=filters)
            if last
            else None,
        }
    )


@router.get("/{transaction_id}", response_model=TransactionPublic)
async def get_transaction(transaction_id: PathId, user: CurrentUser, db: DbDep) -> Response:
    tx = await db.get(Transaction, transaction_id)
    visible = tx is not None and (
        user.role in (Role.analyst, Role.admin) or await is_party(tx, user, db)
    )
    if tx is None or not visible:
        raise NotFound(f"transaction {transaction_id} not found")
    return JSONResponse(public(tx))


async def is_party(tx: Transaction, user: Principal, db: DbDep) -> bool:
    """Whether ``user`` is the transaction's buyer or the owner of its farm."""
    if tx.buyer_id == user.id:
        return True
    if user.role != Role.farmer:
        return False
    return await db.scalar(select(Farm.owner_id).where(Farm.id == tx.farm_id)) == user.id
