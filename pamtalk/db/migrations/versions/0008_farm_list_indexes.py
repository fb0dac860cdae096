"""farms: the list's indexes end in id, so a page is an ordered index range at any table size

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 22:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_farms_status_id", "farms", ["status", "id"])
    op.drop_index("ix_farms_region_status", table_name="farms")
    op.create_index("ix_farms_region_status_id", "farms", ["region", "status", "id"])


def downgrade() -> None:
    op.drop_index("ix_farms_region_status_id", table_name="farms")
    op.create_index("ix_farms_region_status", "farms", ["region", "status"])
    op.drop_index("ix_farms_status_id", table_name="farms")
