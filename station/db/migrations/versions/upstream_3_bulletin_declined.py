"""Upstream: a declined bulletin gets its own status, ``declined`` (it was ``dismissed``).

The status is a VARCHAR(16) with a CHECK constraint on every backend (``_types.enum_column``:
no native PostgreSQL enum), so adding a value rewrites the CHECK (batch mode rebuilds the table
on SQLite; PostgreSQL drops and adds the constraint).

Existing rows: before this revision the operator's decline was the only code path that wrote
``dismissed``, and it wrote, in the same transaction, an audit entry ``bulletin.declined`` on
``bulletin:<upstream_id>`` and an outbox message ``bulletin:<upstream_id>:declined``. A
``dismissed`` row with either record is a decline and becomes ``declined``. A ``dismissed`` row
with neither (set by hand in the database) cannot be told apart and stays ``dismissed``.

Revision ID: upstream_3
Revises: fleet_2
Create Date: 2026-11-27 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "upstream_3"
down_revision: str | None = "fleet_2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD = ("inbox", "proposed", "confirm_needed", "confirmed", "triggered", "scheduled", "dismissed")
_NEW = (*_OLD, "declined")

# Both markers are written by the decline itself; audit targets are cut at 200 characters.
# (``\:`` keeps sa.text from reading ``:declined`` as a bind parameter.)
_PROVEN_DECLINE = sa.text(
    r"""
    UPDATE upstream_bulletins SET status = 'declined'
    WHERE status = 'dismissed' AND (
        EXISTS (
            SELECT 1 FROM audit_log
            WHERE audit_log.action = 'bulletin.declined'
              AND audit_log.target = substr('bulletin:' || upstream_bulletins.upstream_id, 1, 200)
        )
        OR EXISTS (
            SELECT 1 FROM upstream_outbox
            WHERE upstream_outbox.key
                = 'bulletin:' || upstream_bulletins.upstream_id || '\:declined'
        )
    )
    """
)


def _status(*values: str) -> sa.Enum:
    return sa.Enum(
        *values, name="bulletin_status", native_enum=False, create_constraint=True, length=16
    )


def _retype(old: tuple[str, ...], new: tuple[str, ...]) -> None:
    with op.batch_alter_table("upstream_bulletins") as batch:
        batch.alter_column(
            "status", existing_type=_status(*old), type_=_status(*new), existing_nullable=False
        )


def upgrade() -> None:
    _retype(_OLD, _NEW)
    op.execute(_PROVEN_DECLINE)


def downgrade() -> None:
    # The older schema knows declines only as ``dismissed``.
    op.execute(
        sa.text("UPDATE upstream_bulletins SET status = 'dismissed' WHERE status = 'declined'")
    )
    _retype(_NEW, _OLD)
