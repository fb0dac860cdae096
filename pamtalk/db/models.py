"""The relational schema. Used unchanged on PostgreSQL (asyncpg) and SQLite (aiosqlite).

Money is integer KRW; quantities are integer grams; timestamps are UTC.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy import Enum as SAEnum
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from pamtalk.db.types import BigId, UTCDateTime, utcnow

# Deterministic constraint names, so migrations are reproducible on both databases.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[str]: JSON(),
    }


def _enum(cls: type[StrEnum]) -> SAEnum:
    # Stored as plain strings with a CHECK-free column: adding a value needs no migration
    # of a native enum type on PostgreSQL.
    return SAEnum(
        cls,
        native_enum=False,
        create_constraint=False,
        length=16,
        values_callable=lambda e: [m.value for m in e],
    )


class Role(StrEnum):
    farmer = "farmer"
    buyer = "buyer"
    analyst = "analyst"
    admin = "admin"


class FarmStatus(StrEnum):
    active = "active"
    suspended = "suspended"
    deleted = "deleted"


class TransactionStatus(StrEnum):
    completed = "completed"
    cancelled = "cancelled"


class JobStatus(StrEnum):
    pending = "pending"
    running = "running"
    completed = "completed"
    failed = "failed"


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[Role] = mapped_column(_enum(Role))
    password_hash: Mapped[str | None] = mapped_column(String(200))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    """An app's credential; only a SHA-256 of the secret is kept (it has 256 bits of entropy,
    so a fast hash is enough; passwords get Argon2)."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    # What listings show: pamtalk.security.shown_prefix, at most 4 secret characters.
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    # PAMTALK_ADMIN_API_KEY's row: registering a new one revokes the others (rotation).
    bootstrap: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    user: Mapped[User] = relationship(lazy="joined")


class Farm(Base):
    __tablename__ = "farms"
    __table_args__ = (
        Index("ix_farms_location", "latitude", "longitude"),
        # The list pages by id (WHERE status [AND region] AND id > cursor ORDER BY id LIMIT n):
        # with id last, a page is an ordered range scan whatever the planner's statistics say
        # (stale ones made it scan and sort every farm of the filter).
        Index("ix_farms_status_id", "status", "id"),
        Index("ix_farms_region_status_id", "region", "status", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    region: Mapped[str] = mapped_column(String(16))
    address: Mapped[str | None] = mapped_column(String(200))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    area_m2: Mapped[int] = mapped_column(BigInteger)
    organic: Mapped[bool] = mapped_column(Boolean, default=False)
    certifications: Mapped[list[str]] = mapped_column(default=list)
    # Farming practice data the ESG model reads (schema: pamtalk.api.schemas.farms.Practices).
    practices: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[FarmStatus] = mapped_column(_enum(FarmStatus), default=FarmStatus.active)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    crop_rows: Mapped[list[FarmCrop]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", order_by="FarmCrop.crop"
    )

    @property
    def crops(self) -> list[str]:
        return [row.crop for row in self.crop_rows]

    def profile(self) -> dict[str, Any]:
        """What the ESG model and methodology read of a farm."""
        return {
            "crops": self.crops,
            "area_m2": self.area_m2,
            "organic": self.organic,
            "certifications": self.certifications,
            "practices": self.practices,
        }


class FarmCrop(Base):
    """What a farm grows; a table rather than a JSON list so that 'farms growing X' is an
    indexed lookup on both databases."""

    __tablename__ = "farm_crops"

    farm_id: Mapped[int] = mapped_column(
        ForeignKey("farms.id", ondelete="CASCADE"), primary_key=True
    )
    crop: Mapped[str] = mapped_column(String(32), primary_key=True, index=True)


class Transaction(Base):
    __tablename__ = "transactions"
    __table_args__ = (
        # One idempotency key per buyer; NULL keys never collide.
        UniqueConstraint("buyer_id", "idempotency_key"),
        Index("ix_transactions_created_at", "created_at"),
        Index("ix_transactions_farm_created", "farm_id", "created_at"),
        Index("ix_transactions_buyer_created", "buyer_id", "created_at"),
        Index("ix_transactions_crop_created", "crop", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    farm_id: Mapped[int] = mapped_column(ForeignKey("farms.id"))
    buyer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    crop: Mapped[str] = mapped_column(String(32))
    region: Mapped[str] = mapped_column(String(16))
    quantity_g: Mapped[int] = mapped_column(BigInteger)
    unit_price_krw: Mapped[int] = mapped_column(BigInteger)  # per kg
    total_krw: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[TransactionStatus] = mapped_column(
        _enum(TransactionStatus), default=TransactionStatus.completed
    )
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DemandDaily(Base):
    """Completed transactions summed per crop x region x day (Asia/Seoul calendar day),
    kept current by every transaction write: the demand model's input."""

    __tablename__ = "demand_daily"

    crop: Mapped[str] = mapped_column(String(32), primary_key=True)
    region: Mapped[str] = mapped_column(String(16), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True, index=True)
    quantity_g: Mapped[int] = mapped_column(BigInteger, default=0)
    value_krw: Mapped[int] = mapped_column(BigInteger, default=0)
    transactions: Mapped[int] = mapped_column(Integer, default=0)


class DemandForecast(Base):
    __tablename__ = "demand_forecasts"
    __table_args__ = (
        UniqueConstraint("run_date", "crop", "region", "target_date", "model_version"),
        Index("ix_demand_forecasts_crop", "crop", "region", "target_date"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_date: Mapped[date] = mapped_column(Date)
    crop: Mapped[str] = mapped_column(String(32))
    region: Mapped[str] = mapped_column(String(16))
    target_date: Mapped[date] = mapped_column(Date)
    p10_kg: Mapped[float] = mapped_column(Float)
    p50_kg: Mapped[float] = mapped_column(Float)
    p90_kg: Mapped[float] = mapped_column(Float)
    model_name: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(32))
    batch_job_id: Mapped[int | None] = mapped_column(ForeignKey("batch_jobs.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class EsgAssessment(Base):
    __tablename__ = "esg_assessments"
    __table_args__ = (
        Index("ix_esg_assessments_farm", "farm_id", "created_at"),
        # Batch scoring writes one row per (run date, farm, model version), however often a
        # chunk runs; online scores (no job) are a log and may repeat.
        Index(
            "uq_esg_assessments_batch",
            "run_date",
            "farm_id",
            "model_version",
            unique=True,
            postgresql_where=text("batch_job_id IS NOT NULL"),
            sqlite_where=text("batch_job_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    farm_id: Mapped[int | None] = mapped_column(ForeignKey("farms.id"))
    run_date: Mapped[date | None] = mapped_column(Date)
    overall: Mapped[float] = mapped_column(Float)
    environmental: Mapped[float] = mapped_column(Float)
    social: Mapped[float] = mapped_column(Float)
    governance: Mapped[float] = mapped_column(Float)
    grade: Mapped[str] = mapped_column(String(16))
    breakdown: Mapped[dict[str, Any]] = mapped_column(default=dict)
    model_name: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(32))
    batch_job_id: Mapped[int | None] = mapped_column(ForeignKey("batch_jobs.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class BatchJob(Base):
    __tablename__ = "batch_jobs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    run_date: Mapped[date | None] = mapped_column(Date)
    status: Mapped[JobStatus] = mapped_column(_enum(JobStatus), default=JobStatus.pending)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    chunks_total: Mapped[int] = mapped_column(Integer, default=0)
    chunks_done: Mapped[int] = mapped_column(Integer, default=0)
    rows_written: Mapped[int] = mapped_column(BigInteger, default=0)
    error: Mapped[str | None] = mapped_column(String(2000))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class BatchChunk(Base):
    """One unit of a job's work. Its row is written in the same transaction as its results,
    so a chunk that runs twice (a redelivered task) is counted once."""

    __tablename__ = "batch_chunks"

    job_id: Mapped[int] = mapped_column(ForeignKey("batch_jobs.id"), primary_key=True)
    index: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    items: Mapped[list[Any]] = mapped_column(JSON(), default=list)
    status: Mapped[JobStatus] = mapped_column(_enum(JobStatus), default=JobStatus.pending)
    rows_written: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(2000))
    finished_at: Mapped[datetime | None]


class ModelEvent(Base):
    """The audit trail of model management: every promote, rollback, canary change and
    rollout step, who did it and why."""

    __tablename__ = "model_events"
    __table_args__ = (Index("ix_model_events_model", "model", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    model: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))  # promote, rollback, canary, ...
    from_version: Mapped[str | None] = mapped_column(String(32))
    to_version: Mapped[str | None] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(128))  # "user:7 (admin)", "cli:root", "rollout:3"
    reason: Mapped[str | None] = mapped_column(String(2000))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RolloutState(StrEnum):
    running = "running"
    paused = "paused"
    promoted = "promoted"
    rolled_back = "rolled_back"
    aborted = "aborted"


class Rollout(Base):
    """An automatic progressive rollout: canary steps gated on live metrics. Steps advance by
    a conditional update on ``step``, so concurrent drivers never double-step."""

    __tablename__ = "rollouts"
    __table_args__ = (Index("ix_rollouts_model", "model", "state"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    model: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(32))
    champion: Mapped[str] = mapped_column(String(32))  # the champion it started against
    state: Mapped[RolloutState] = mapped_column(_enum(RolloutState))
    steps: Mapped[list[int]] = mapped_column(JSON())
    step: Mapped[int] = mapped_column(Integer, default=0)  # index into steps
    step_started_at: Mapped[datetime] = mapped_column(default=utcnow)
    step_seconds: Mapped[float] = mapped_column(Float)
    min_requests: Mapped[int] = mapped_column(Integer)
    gates: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Per step: the counters at its start and the gate readings at its end.
    readings: Mapped[list[Any]] = mapped_column(JSON(), default=list)
    reason: Mapped[str | None] = mapped_column(String(2000))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ServingCounter(Base):
    """Live per-version serving counters, one row per (model, version, process, counter),
    added to by each API worker: summed over workers they are what rollout gates read."""

    __tablename__ = "serving_counters"

    model: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[str] = mapped_column(String(32), primary_key=True)
    worker: Mapped[str] = mapped_column(String(64), primary_key=True)
    counter: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[float] = mapped_column(Float, default=0.0)


class LedgerHead(Base):
    """The ledger's chain head: one row (id 1). Every append locks it (``SELECT ... FOR
    UPDATE`` on PostgreSQL; SQLite has one writer), so entries get consecutive positions and
    each links to the one before: no gaps, no forks."""

    __tablename__ = "ledger_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)  # position of the last entry; 0 when empty
    hash: Mapped[str] = mapped_column(String(64))  # its hash (hex); 64 zeros when empty
    anchored_seq: Mapped[int] = mapped_column(BigInteger)  # last position under an anchor
    pending_since: Mapped[datetime | None]  # when the first unanchored entry was appended


class LedgerEntry(Base):
    """One transaction in the hash chain (pamtalk.ledger.record says what is hashed)."""

    __tablename__ = "ledger_entries"

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    transaction_id: Mapped[int] = mapped_column(ForeignKey("transactions.id"), unique=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LedgerAnchor(Base):
    """A Merkle root over the entries ``first..last`` and what the anchor sink answered."""

    __tablename__ = "ledger_anchors"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    first: Mapped[int] = mapped_column(BigInteger)
    last: Mapped[int] = mapped_column(BigInteger, unique=True)
    root: Mapped[str] = mapped_column(String(64))
    sealed_at: Mapped[datetime] = mapped_column(default=utcnow)
    sink: Mapped[str | None] = mapped_column(String(32))
    receipt: Mapped[dict[str, Any] | None] = mapped_column(JSON())
    submitted_at: Mapped[datetime | None]


class OutboxEvent(Base):
    """A notification event, written in the same transaction as the change it reports; the
    relay (pamtalk.notify.relay) fans it out to notifications and webhook deliveries and only
    then sets ``published_at``. ``audience``: ``{"users": [ids], "roles": [roles]}``."""

    __tablename__ = "outbox_events"
    __table_args__ = (Index("ix_outbox_events_unpublished", "published_at", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # a UUID: the event id
    type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    audience: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_at: Mapped[datetime | None]

    @classmethod
    def new(
        cls,
        type: str,
        payload: dict[str, Any],
        *,
        users: tuple[int, ...] = (),
        roles: tuple[Role, ...] = (),
        event_id: str | None = None,
    ) -> OutboxEvent:
        return cls(
            id=event_id or str(uuid.uuid4()),
            type=type,
            payload=payload,
            audience={"users": list(users), "roles": [str(r) for r in roles]},
            created_at=utcnow(),
        )


class Notification(Base):
    """An in-app notification: one per recipient of an event (redelivery adds none)."""

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("user_id", "event_id"),
        Index("ix_notifications_user", "user_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(36))
    type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    read_at: Mapped[datetime | None]


class Webhook(Base):
    """A user's webhook endpoint: it gets the events of ``events`` that the user is an
    audience of. The secret signs deliveries (it is shown once, at creation); it is kept
    encrypted (pamtalk.secretbox, pamtalk.notify.webhooks.secret_box)."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[str]] = mapped_column(JSON())
    secret_encrypted: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[datetime | None]


class DeliveryStatus(StrEnum):
    pending = "pending"
    delivered = "delivered"
    dead = "dead"  # retried for 24 h, or its webhook was deleted


class WebhookDelivery(Base):
    """One event to one webhook: its exact body (every retry sends the same bytes), attempts
    and when the next is due."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("webhook_id", "event_id"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(36))
    event_type: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[DeliveryStatus] = mapped_column(
        _enum(DeliveryStatus), default=DeliveryStatus.pending
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
