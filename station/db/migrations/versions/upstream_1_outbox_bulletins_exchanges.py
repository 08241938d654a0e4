"""Upstream (Source Information System): outbox, exchanges, bulletins, cursors.

Revision ID: upstream_1
Revises: accounts_1
Create Date: 2026-11-26 18:06:26.270246
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "upstream_1"
down_revision: str | None = "accounts_1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "upstream_cursors",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_upstream_cursors")),
    )
    op.create_table(
        "upstream_exchanges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_upstream_exchanges")),
    )
    with op.batch_alter_table("upstream_exchanges", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_upstream_exchanges_at"), ["at"], unique=False)

    op.create_table(
        "upstream_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "sent",
                "failed",
                name="outbox_status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.String(), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_upstream_outbox")),
        sa.UniqueConstraint("key", name=op.f("uq_upstream_outbox_key")),
    )
    with op.batch_alter_table("upstream_outbox", schema=None) as batch_op:
        batch_op.create_index("ix_upstream_outbox_status_id", ["status", "id"], unique=False)

    op.create_table(
        "upstream_bulletins",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("upstream_id", sa.String(length=200), nullable=False),
        sa.Column(
            "bulletin_class",
            sa.Enum(
                "normal",
                "priority",
                "emergency",
                name="bulletin_class",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "inbox",
                "proposed",
                "confirm_needed",
                "confirmed",
                "triggered",
                "scheduled",
                "dismissed",
                name="bulletin_status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("title", sa.String(), nullable=False),
        sa.Column("text", sa.String(), nullable=False),
        sa.Column("audio_url", sa.String(length=2000), nullable=True),
        sa.Column("media_id", sa.Integer(), nullable=True),
        sa.Column("audio_error", sa.String(), nullable=False),
        sa.Column("audio_attempts", sa.Integer(), nullable=False),
        sa.Column("villages", sa.JSON(), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("valid_to", sa.DateTime(timezone=True), nullable=True),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("issuer", sa.String(), nullable=False),
        sa.Column("received_via", sa.String(length=16), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(
            ["media_id"],
            ["media_items.id"],
            name=op.f("fk_upstream_bulletins_media_id_media_items"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_upstream_bulletins")),
        sa.UniqueConstraint("upstream_id", name=op.f("uq_upstream_bulletins_upstream_id")),
    )
    with op.batch_alter_table("upstream_bulletins", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_upstream_bulletins_media_id"), ["media_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_upstream_bulletins_received_at"), ["received_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("upstream_bulletins", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_upstream_bulletins_received_at"))
        batch_op.drop_index(batch_op.f("ix_upstream_bulletins_media_id"))

    op.drop_table("upstream_bulletins")
    with op.batch_alter_table("upstream_outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_upstream_outbox_status_id")

    op.drop_table("upstream_outbox")
    with op.batch_alter_table("upstream_exchanges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_upstream_exchanges_at"))

    op.drop_table("upstream_exchanges")
    op.drop_table("upstream_cursors")
