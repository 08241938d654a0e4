"""Playout: emergency sessions (who triggered and stopped them), interruptions in proof of play.

Revision ID: playout_2
Revises: upstream_1
Create Date: 2026-11-26 18:55:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "playout_2"
down_revision: str | None = "upstream_1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("play_sessions") as batch:
        batch.add_column(
            sa.Column("kind", sa.String(length=16), nullable=False, server_default="scheduled")
        )
        batch.add_column(sa.Column("priority", sa.Integer(), nullable=False, server_default="40"))
        batch.add_column(sa.Column("volume", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("triggered_by", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("stopped_by", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("bridges", sa.JSON(), nullable=False, server_default="{}"))
    with op.batch_alter_table("play_records") as batch:
        batch.add_column(sa.Column("interrupted_by", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("play_records") as batch:
        batch.drop_column("interrupted_by")
    with op.batch_alter_table("play_sessions") as batch:
        for name in (
            "bridges",
            "stopped_by",
            "stopped_at",
            "triggered_by",
            "volume",
            "priority",
            "kind",
        ):
            batch.drop_column(name)
