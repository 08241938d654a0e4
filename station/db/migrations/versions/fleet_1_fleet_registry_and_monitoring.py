"""Fleet: villages, zones, registry fields of clusters, alerts, telemetry and data use.

Revision ID: fleet_1
Revises: 0001
Create Date: 2026-11-26 17:57:45.362054
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "fleet_1"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "villages",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("households", sa.Integer(), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("note", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_villages")),
    )
    op.create_table(
        "zones",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_zones")),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cluster_id", sa.String(length=64), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "offline",
                "fault",
                "clock",
                "low_cache",
                "flapping",
                name="alert_kind",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.String(), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["cluster_id"],
            ["clusters.id"],
            name=op.f("fk_alerts_cluster_id_clusters"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_alerts_open", ["cluster_id", "kind", "code", "cleared_at"], unique=False
        )

    op.create_table(
        "cluster_telemetry",
        sa.Column("cluster_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=True),
        sa.Column("volume", sa.Integer(), nullable=True),
        sa.Column("signal_dbm", sa.Integer(), nullable=True),
        sa.Column("network", sa.String(length=16), nullable=True),
        sa.Column("power_source", sa.String(length=16), nullable=True),
        sa.Column("uptime_s", sa.BigInteger(), nullable=True),
        sa.Column("clock_offset_ms", sa.Integer(), nullable=True),
        sa.Column("free_cache_bytes", sa.BigInteger(), nullable=True),
        sa.Column("bytes_counter", sa.BigInteger(), nullable=True),
        sa.Column("faults", sa.JSON(), nullable=False),
        sa.Column("interval_s", sa.Float(), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["cluster_id"],
            ["clusters.id"],
            name=op.f("fk_cluster_telemetry_cluster_id_clusters"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("cluster_id", name=op.f("pk_cluster_telemetry")),
    )
    op.create_table(
        "cluster_zones",
        sa.Column("zone_id", sa.String(length=64), nullable=False),
        sa.Column("cluster_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["cluster_id"],
            ["clusters.id"],
            name=op.f("fk_cluster_zones_cluster_id_clusters"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["zone_id"],
            ["zones.id"],
            name=op.f("fk_cluster_zones_zone_id_zones"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("zone_id", "cluster_id", name=op.f("pk_cluster_zones")),
    )
    with op.batch_alter_table("cluster_zones", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_cluster_zones_cluster_id"), ["cluster_id"], unique=False
        )

    op.create_table(
        "data_use",
        sa.Column("cluster_id", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cluster_id"],
            ["clusters.id"],
            name=op.f("fk_data_use_cluster_id_clusters"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("cluster_id", "day", name=op.f("pk_data_use")),
    )
    with op.batch_alter_table("clusters", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lat", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("lon", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("bridge_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("zone_code", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("serial", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("imei", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("iccid", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("installed_on", sa.Date(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "installed_as",
                sa.Enum(
                    "new_station",
                    "replacement",
                    "extension",
                    name="installed_as",
                    native_enum=False,
                    create_constraint=True,
                    length=16,
                ),
                nullable=True,
            )
        )
        batch_op.add_column(sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("replaces", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("replaced_by", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("credential_hash", sa.String(length=256), nullable=True))
        batch_op.add_column(sa.Column("note", sa.String(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("clusters", schema=None) as batch_op:
        batch_op.drop_column("note")
        batch_op.drop_column("credential_hash")
        batch_op.drop_column("replaced_by")
        batch_op.drop_column("replaces")
        batch_op.drop_column("retired_at")
        batch_op.drop_column("installed_as")
        batch_op.drop_column("installed_on")
        batch_op.drop_column("iccid")
        batch_op.drop_column("imei")
        batch_op.drop_column("serial")
        batch_op.drop_column("zone_code")
        batch_op.drop_column("bridge_id")
        batch_op.drop_column("lon")
        batch_op.drop_column("lat")

    op.drop_table("data_use")
    with op.batch_alter_table("cluster_zones", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cluster_zones_cluster_id"))

    op.drop_table("cluster_zones")
    op.drop_table("cluster_telemetry")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_alerts_open")

    op.drop_table("alerts")
    op.drop_table("zones")
    op.drop_table("villages")
