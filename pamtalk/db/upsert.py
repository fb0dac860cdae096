"""INSERT ... ON CONFLICT for whichever database the session is on (both support it)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from pamtalk.db.models import DemandDaily


def insert_for(session: AsyncSession, entity: Any) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(entity)


def add_to_demand(session: AsyncSession, rows: list[dict[str, Any]]) -> Any:
    """Statement adding rows of (crop, region, day, quantity_g, value_krw, transactions) to the
    daily demand aggregate."""
    stmt = insert_for(session, DemandDaily).values(rows)
    return stmt.on_conflict_do_update(
        index_elements=["crop", "region", "day"],
        set_={
            "quantity_g": DemandDaily.quantity_g + stmt.excluded.quantity_g,
            "value_krw": DemandDaily.value_krw + stmt.excluded.value_krw,
            "transactions": DemandDaily.transactions + stmt.excluded.transactions,
        },
    )
