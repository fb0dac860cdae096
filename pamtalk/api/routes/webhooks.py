"""Webhooks: register an endpoint for event types (its secret shown once), list, delete,
and see its deliveries. Each delivery is signed (README: receiving a webhook)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from pamtalk.api import pagination
from pamtalk.api.auth import Principal
from pamtalk.api.deps import CurrentUser, DbDep, PathId, SettingsDep, WriteDbDep
from pamtalk.api.responses import JSONResponse
from pamtalk.api.schemas.notifications import (
    DeliveryPage,
    DeliveryPublic,
    WebhookCreate,
    WebhookCreated,
    WebhookPublic,
)
from pamtalk.db.models import Role
from pamtalk.notify import webhooks

router = APIRouter(prefix="/v1/webhooks", tags=["notifications"])


def _owner(user: Principal) -> int | None:
    """Whose webhooks the caller may see: its own; an admin's, anyone's."""
    return None if user.role == Role.admin else user.id


@router.post("", status_code=status.HTTP_201_CREATED, response_model=WebhookCreated)
async def create_webhook(
    body: WebhookCreate, user: CurrentUser, db: WriteDbDep, settings: SettingsDep
) -> Response:
    """Register a URL for event types; it gets those whose audience includes the caller.
    The answer holds the signing secret: it is not shown again. URLs on private, loopback
    or reserved addresses are refused (PAMTALK_WEBHOOK_ALLOW_PRIVATE=1 allows them)."""
    hook, secret = await webhooks.create(db, user.id, body.url, list(body.events), settings)
    public = WebhookPublic.model_validate(hook).model_dump(mode="json")
    created = WebhookCreated.model_validate({**public, "secret": secret})
    return JSONResponse(created.model_dump(mode="json"), status_code=status.HTTP_201_CREATED)


@router.get("", response_model=list[WebhookPublic])
async def list_webhooks(user: CurrentUser, db: DbDep) -> Response:
    """The caller's webhooks (secrets are not shown)."""
    hooks = await webhooks.mine(db, user.id)
    return JSONResponse([WebhookPublic.model_validate(h).model_dump(mode="json") for h in hooks])


@router.delete("/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_webhook(webhook_id: PathId, user: CurrentUser, db: WriteDbDep) -> Response:
    """Stop sending to it (its owner or an admin); pending deliveries are dropped."""
    await webhooks.delete(db, await webhooks.get(db, webhook_id, _owner(user)))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{webhook_id}/deliveries", response_model=DeliveryPage)
async def list_deliveries(
    webhook_id: PathId,
    user: CurrentUser,
    db: DbDep,
    pages: pagination.PagesDep,
    limit: pagination.Limit = 50,
    cursor: pagination.Cursor = None,
) -> Response:
    """The webhook's deliveries, newest first: status, attempts, the receiver's last answer."""
    hook = await webhooks.get(db, webhook_id, _owner(user))
    filters = {"webhook": hook.id}
    before = pages.decode(cursor, (pagination.row_id,), filters=filters)[0] if cursor else None
    rows = await webhooks.deliveries(db, hook.id, before, limit + 1)
    more = len(rows) > limit
    items = [DeliveryPublic.model_validate(d).model_dump(mode="json") for d in rows[:limit]]
    return JSONResponse(
        {
            "items": items,
            "next_cursor": pages.encode(rows[limit - 1].id, filters=filters) if more else None,
        }
    )
