"""Playout: programme items of several kinds, topics and language, recurring schedules.

Revision ID: playout_1
Revises: media_1
Create Date: 2026-11-26 18:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "playout_1"
down_revision: str | None = "media_1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_STATUS = ("pending", "dispatched", "done", "missed", "cancelled")
_NEW_STATUS = (*_OLD_STATUS, "active")


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=16)


def upgrade() -> None:
    # Server defaults fill the rows that already exist.
    with op.batch_alter_table("programmes") as batch:
        batch.add_column(sa.Column("topics", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(
            sa.Column("language", sa.String(length=16), nullable=False, server_default="vi")
        )
        batch.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
    with op.batch_alter_table("programme_items") as batch:
        batch.alter_column("media_id", existing_type=sa.Integer(), nullable=True)
        batch.add_column(
            sa.Column(
                "kind",
                _enum("programme_item_kind", "media", "relay", "live", "silence", "jingle"),
                nullable=False,
                server_default="media",
            )
        )
        batch.add_column(sa.Column("duration_ms", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("url", sa.String(length=2000), nullable=True))
        batch.add_column(sa.Column("title", sa.String(), nullable=False, server_default=""))
    with op.batch_alter_table("schedules") as batch:
        batch.alter_column(
            "status",
            existing_type=_enum("schedule_status", *_OLD_STATUS),
            type_=_enum("schedule_status", *_NEW_STATUS),
            existing_nullable=False,
        )
        batch.add_column(
            sa.Column(
                "recurrence",
                _enum("recurrence_kind", "once", "daily", "weekly", "monthly"),
                nullable=False,
                server_default="once",
            )
        )
        batch.add_column(sa.Column("time_of_day", sa.Time(), nullable=True))
        batch.add_column(
            sa.Column("weekdays", sa.String(length=32), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("day_of_month", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("valid_from", sa.Date(), nullable=True))
        batch.add_column(sa.Column("valid_to", sa.Date(), nullable=True))
        batch.add_column(sa.Column("exceptions", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(
            sa.Column(
                "timezone",
                sa.String(length=64),
                nullable=False,
                server_default="Asia/Ho_Chi_Minh",
            )
        )
        batch.add_column(
            sa.Column("priority", sa.String(length=32), nullable=False, server_default="scheduled")
        )
        batch.add_column(sa.Column("rank", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("volume", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("misfire_grace_s", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("note", sa.String(), nullable=False, server_default=""))


def downgrade() -> None:
    op.execute("DELETE FROM schedules WHERE recurrence <> 'once' OR status = 'active'")
    op.execute("DELETE FROM programme_items WHERE media_id IS NULL")
    # SQLite's batch copy would keep the CHECK constraints of dropped enum columns: drop them.
    with op.batch_alter_table("schedules") as batch:
        batch.drop_constraint(op.f("ck_schedules_recurrence_kind"), type_="check")
        for name in (
            "note",
            "misfire_grace_s",
            "volume",
            "rank",
            "priority",
            "timezone",
            "exceptions",
            "valid_to",
            "valid_from",
            "day_of_month",
            "weekdays",
            "time_of_day",
            "recurrence",
        ):
            batch.drop_column(name)
        batch.alter_column(
            "status",
            existing_type=_enum("schedule_status", *_NEW_STATUS),
            type_=_enum("schedule_status", *_OLD_STATUS),
            existing_nullable=False,
        )
    with op.batch_alter_table("programme_items") as batch:
        batch.drop_constraint(op.f("ck_programme_items_programme_item_kind"), type_="check")
        for name in ("title", "url", "duration_ms", "kind"):
            batch.drop_column(name)
        batch.alter_column("media_id", existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table("programmes") as batch:
        batch.drop_column("version")
        batch.drop_column("language")
        batch.drop_column("topics")
