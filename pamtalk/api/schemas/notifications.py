"""Webhooks and in-app notifications: WebhookCreate / WebhookPublic / WebhookCreated (with
the secret, shown once), DeliveryPublic, NotificationPublic and their pages."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import Field, StringConstraints, WithJsonSchema

from pamtalk.api.schemas.common import Schema, one_of
from pamtalk.notify.outbox import EVENT_TYPES

EventType = Annotated[
    str,
    StringConstraints(max_length=64, strip_whitespace=True),
    one_of("event type", EVENT_TYPES),
    WithJsonSchema({"type": "string", "enum": list(EVENT_TYPES)}),
]


class WebhookCreate(Schema):
    url: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
    events: list[EventType] = Field(min_length=1, max_length=len(EVENT_TYPES))


class WebhookPublic(Schema):
    id: int
    url: str
    events: list[str]
    created_at: datetime


class WebhookCreated(WebhookPublic):
    secret: str = Field(description="signs each delivery; shown only in this response")


class DeliveryPublic(Schema):
    id: int
    event_id: str
    event_type: str
    status: str = Field(description="pending, delivered or dead (retried for 24 h)")
    attempts: int
    next_attempt_at: datetime
    last_status: int | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None


class DeliveryPage(Schema):
    items: list[DeliveryPublic]
    next_cursor: str | None


class NotificationPublic(Schema):
    id: int
    event_id: str
    type: str
    payload: dict[str, Any]
    created_at: datetime
    read_at: datetime | None


class NotificationPage(Schema):
    items: list[NotificationPublic]
    next_cursor: str | None
