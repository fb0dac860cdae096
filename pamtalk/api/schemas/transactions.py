"""Transaction schemas. Quantities are exact decimals in kg (stored as integer grams); money is
integer KRW; the server computes totals."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import Field, Strict, computed_field

from pamtalk.api.schemas.common import CropSlug, Id, Schema
from pamtalk.db.models import TransactionStatus

QuantityKg = Annotated[Decimal, Field(gt=0, le=1_000_000, decimal_places=3)]  # up to 1,000 t
UnitPrice = Annotated[int, Strict(), Field(gt=0, le=10_000_000)]  # KRW per kg


class TransactionCreate(Schema):
    farm_id: Id
    crop: CropSlug
    quantity_kg: QuantityKg
    unit_price_krw: UnitPrice = Field(description="price per kg in KRW")
    buyer_id: Id | None = Field(default=None, description="admin only: record for this buyer")


class TransactionPublic(Schema):
    id: int
    farm_id: int
    buyer_id: int
    crop: str
    region: str
    quantity_g: int
    unit_price_krw: int
    total_krw: int
    status: TransactionStatus
    created_at: datetime

    @computed_field  # type: ignore[prop-decorator]
    @property
    def quantity_kg(self) -> Decimal:
        return Decimal(self.quantity_g) / 1000


class TransactionPage(Schema):
    items: list[TransactionPublic]
    next_cursor: str | None
