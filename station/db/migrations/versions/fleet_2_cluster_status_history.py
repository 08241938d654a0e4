"""Fleet: cluster status history (lifecycle and availability changes).

Revision ID: fleet_2
Revises: accounts_2
Create Date: 2026-11-26 21:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "fleet_2"
down_revision: str | None = "accounts_2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATUSES = ("registered", "provisioned", "online", "offline", "faulty", "retired")


def _status(name: str) -> sa.Enum:
    return sa.Enum(*_STATUSES, name=name, native_enum=False, create_constraint=True, length=16)


def upgrade() -> None:
    op.create_table(
        "cluster_status_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cluster_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("from_status", _status("from_status"), nullable=True),
        sa.Column("to_status", _status("to_status"), nullable=False),
        sa.Column("online", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["cluster_id"],
            ["clusters.id"],
            name=op.f("fk_cluster_status_changes_cluster_id_clusters"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cluster_status_changes")),
    )
    with op.batch_alter_table("cluster_status_changes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_cluster_status_changes_cluster_at", ["cluster_id", "at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("cluster_status_changes", schema=None) as batch_op:
        batch_op.drop_index("ix_cluster_status_changes_cluster_at")
    op.drop_table("cluster_status_changes")
