"""Upstream: operator decisions on proposed bulletins; topic validity dates.

Revision ID: upstream_2
Revises: playout_2
Create Date: 2026-11-26 21:15:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "upstream_2"
down_revision: str | None = "playout_2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("upstream_bulletins") as batch:
        batch.add_column(
            sa.Column("decided_by", sa.String(length=64), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("schedule_ids", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("programme_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_upstream_bulletins_programme_id_programmes"),
            "programmes",
            ["programme_id"],
            ["id"],
            ondelete="SET NULL",
        )
    with op.batch_alter_table("topics") as batch:
        batch.add_column(sa.Column("valid_from", sa.Date(), nullable=True))
        batch.add_column(sa.Column("valid_to", sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("topics") as batch:
        batch.drop_column("valid_to")
        batch.drop_column("valid_from")
    with op.batch_alter_table("upstream_bulletins") as batch:
        batch.drop_constraint(
            op.f("fk_upstream_bulletins_programme_id_programmes"), type_="foreignkey"
        )
        batch.drop_column("programme_id")
        batch.drop_column("schedule_ids")
        batch.drop_column("decided_at")
        batch.drop_column("decided_by")
