"""The dashboard summary."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from pamtalk.api.schemas.common import Schema


class Volume(Schema):
    days: int
    since: date
    transactions: int
    quantity_kg: Decimal
    value_krw: int


class CropVolume(Schema):
    crop: str
    transactions: int
    quantity_kg: Decimal
    value_krw: int


class FarmCounts(Schema):
    total: int
    by_region: dict[str, dict[str, int]]


class Dashboard(Schema):
    farms: FarmCounts
    volume: list[Volume]
    top_crops: list[CropVolume]
    generated_at: datetime
