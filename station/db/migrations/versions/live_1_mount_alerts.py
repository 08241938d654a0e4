"""Live: alerts of live mounts go into ``alerts`` beside the clusters' (they were in memory).

An alert's subject is a cluster or a live mount: ``cluster_id`` becomes nullable, a new
``mount`` column names the mount, and a CHECK keeps exactly one of the two set. The kinds of
mount alerts join the ``alert_kind`` CHECK (a VARCHAR(16) on every backend, no native enum:
batch mode rebuilds the table on SQLite, PostgreSQL drops and adds the constraint). An index
on (mount, kind, cleared_at) finds a mount's open alerts. Existing rows are clusters' alerts
and stay as they are.

Revision ID: live_1
Revises: fleet_3
Create Date: 2026-11-27 01:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "live_1"
down_revision: str | None = "fleet_3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD = ("offline", "fault", "clock", "low_cache", "flapping")
_NEW = (*_OLD, "dead", "silence", "not_audio", "auth", "no_source")


def _kind(*values: str) -> sa.Enum:
    return sa.Enum(*values, name="alert_kind", native_enum=False, create_constraint=True, length=16)


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("mount", sa.String(length=32), nullable=True))
        batch.alter_column("cluster_id", existing_type=sa.String(length=64), nullable=True)
        batch.alter_column(
            "kind", existing_type=_kind(*_OLD), type_=_kind(*_NEW), existing_nullable=False
        )
        batch.create_check_constraint(
            op.f("ck_alerts_subject"), "(cluster_id IS NULL) <> (mount IS NULL)"
        )
        batch.create_index("ix_alerts_mount_open", ["mount", "kind", "cleared_at"], unique=False)


def downgrade() -> None:
    # The older schema has no place for a mount's alert: they go.
    op.execute(sa.text("DELETE FROM alerts WHERE mount IS NOT NULL"))
    with op.batch_alter_table("alerts") as batch:
        batch.drop_index("ix_alerts_mount_open")
        batch.drop_constraint(op.f("ck_alerts_subject"), type_="check")
        batch.alter_column(
            "kind", existing_type=_kind(*_NEW), type_=_kind(*_OLD), existing_nullable=False
        )
        batch.alter_column("cluster_id", existing_type=sa.String(length=64), nullable=False)
        batch.drop_column("mount")
