"""In-app notifications: the caller's, newest first, and marking one read."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy import select

from pamtalk.api import pagination
from pamtalk.api.deps import CurrentUser, DbDep, PathId, WriteDbDep
from pamtalk.api.responses import JSONResponse
from pamtalk.api.schemas.notifications import NotificationPage, NotificationPublic
from pamtalk.db.models import Notification
from pamtalk.db.types import utcnow
from pamtalk.errors import NotFound

router = APIRouter(prefix="/v1/notifications", tags=["notifications"])


def public(note: Notification) -> dict[str, object]:
    return NotificationPublic.model_validate(note).model_dump(mode="json")


@router.get("", response_model=NotificationPage)
async def list_notifications(
    user: CurrentUser,
    db: DbDep,
    pages: pagination.PagesDep,
    unread: Annotated[bool, Query(description="only those not read yet")] = False,
    limit: pagination.Limit = 50,
    cursor: pagination.Cursor = None,
) -> Response:
    """The caller's notifications, newest first."""
    filters = {"unread": unread}
    query = select(Notification).where(Notification.user_id == user.id)
    if unread:
        query = query.where(Notification.read_at.is_(None))
    if cursor:
        before = pages.decode(cursor, (pagination.row_id,), filters=filters)[0]
        query = query.where(Notification.id < before)
    rows = list(await db.scalars(query.order_by(Notification.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    return JSONResponse(
        {
            "items": [public(n) for n in rows[:limit]],
            "next_cursor": pages.encode(rows[limit - 1].id, filters=filters) if more else None,
        }
    )


@router.post("/{notification_id}/read", response_model=NotificationPublic)
async def mark_read(notification_id: PathId, user: CurrentUser, db: WriteDbDep) -> Response:
    """Mark one of the caller's notifications read (again is a no-op)."""
    note = await db.get(Notification, notification_id)
    if note is None or note.user_id != user.id:
        raise NotFound(f"notification {notification_id} not found")
    if note.read_at is None:
        note.read_at = utcnow()
        await db.commit()
    return JSONResponse(public(note))
