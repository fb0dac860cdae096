"""api keys: listed prefixes cut to 4 secret characters; bootstrap keys marked for rotation

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 17:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The name ensure_admin_api_key gave PAMTALK_ADMIN_API_KEY's row before the flag existed.
BOOTSTRAP_NAME = "bootstrap (PAMTALK_ADMIN_API_KEY)"
ADMIN_EMAIL = "admin@pamtalk.local"

api_keys = sa.table(
    "api_keys",
    sa.column("user_id", sa.BigInteger),
    sa.column("name", sa.String),
    sa.column("prefix", sa.String),
    sa.column("bootstrap", sa.Boolean),
)
users = sa.table("users", sa.column("id", sa.BigInteger), sa.column("email", sa.String))


def upgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("bootstrap", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    admin = sa.select(users.c.id).where(users.c.email == ADMIN_EMAIL).scalar_subquery()
    op.execute(
        api_keys.update()
        .where(api_keys.c.name == BOOTSTRAP_NAME, api_keys.c.user_id == admin)
        .values(bootstrap=True)
    )
    # Listings showed 10 characters (the pt_ marker and 7 secret ones); keep at most 4.
    marked = sa.func.substr(api_keys.c.prefix, 1, 3) == "pt_"
    op.execute(
        api_keys.update().where(marked).values(prefix=sa.func.substr(api_keys.c.prefix, 1, 7))
    )
    op.execute(
        api_keys.update()
        .where(sa.not_(marked))
        .values(prefix=sa.func.substr(api_keys.c.prefix, 1, 4))
    )


def downgrade() -> None:
    # The cut prefixes stay cut: the characters are gone (only the keys' hashes are kept).
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("bootstrap")
