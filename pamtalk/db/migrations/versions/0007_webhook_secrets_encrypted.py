"""webhook secrets encrypted at rest (pamtalk.secretbox)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 17:50:00.000000

Encrypts every webhook's secret under the key PAMTALK_SECRET_KEY derives for webhook
secrets (the migrating process's settings: ``pamtalk init`` / ``pamtalk db upgrade``); the
downgrade decrypts them (with PAMTALK_SECRET_KEY_PREVIOUS too, if set).
"""

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import context, op

from pamtalk.secretbox import SecretBox
from pamtalk.settings import Settings

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PURPOSE = "webhook-secrets"  # pamtalk.notify.webhooks.SECRET_PURPOSE, as of this revision


def _box() -> SecretBox:
    settings = context.config.attributes.get("settings") or Settings()
    return SecretBox(settings.signing_keys(PURPOSE))


def _rewrite(source: str, target: str, convert: Callable[[str], str]) -> None:
    webhooks = sa.table(
        "webhooks", sa.column("id", sa.BigInteger), sa.column(source), sa.column(target)
    )
    bind = op.get_bind()
    rows = bind.execute(sa.select(webhooks.c.id, webhooks.c[source])).all()
    for webhook_id, value in rows:
        bind.execute(
            webhooks.update().where(webhooks.c.id == webhook_id).values({target: convert(value)})
        )


def upgrade() -> None:
    with op.batch_alter_table("webhooks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("secret_encrypted", sa.String(length=255), nullable=True))
    _rewrite("secret", "secret_encrypted", _box().seal)
    with op.batch_alter_table("webhooks", schema=None) as batch_op:
        batch_op.alter_column(
            "secret_encrypted", existing_type=sa.String(length=255), nullable=False
        )
        batch_op.drop_column("secret")


def downgrade() -> None:
    with op.batch_alter_table("webhooks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("secret", sa.String(length=80), nullable=True))
    _rewrite("secret_encrypted", "secret", _box().open)
    with op.batch_alter_table("webhooks", schema=None) as batch_op:
        batch_op.alter_column("secret", existing_type=sa.String(length=80), nullable=False)
        batch_op.drop_column("secret_encrypted")
