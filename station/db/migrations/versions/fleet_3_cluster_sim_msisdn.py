"""Fleet: a cluster's SIM subscriber number [số thuê bao], for data top-ups.

One nullable column, ``clusters.sim_msisdn``, in the national form ``0xxxxxxxxx`` (the registry
normalises +84/84 prefixes before it is stored). Existing clusters have none.

Revision ID: fleet_3
Revises: upstream_3
Create Date: 2026-11-27 00:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "fleet_3"
down_revision: str | None = "upstream_3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("clusters") as batch:
        batch.add_column(sa.Column("sim_msisdn", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("clusters") as batch:
        batch.drop_column("sim_msisdn")
