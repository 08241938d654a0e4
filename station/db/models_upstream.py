"""Tables of the Source Information System adapter [Hệ thống thông tin nguồn]: the durable
outbox (up), the received bulletins (down), the log of every exchange, and pull cursors.

Same conventions as ``models``: aware UTC datetimes, StrEnum columns with CHECK constraints, no
ORM relationships. Schema owned by migrations ``upstream_1`` .. ``upstream_3``. See
docs/upstream.md.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field

from ._types import UTCDateTime, enum_column, utcnow
from .models import TableBase

__all__ = [
    "BulletinClass",
    "BulletinStatus",
    "OutboxMessage",
    "OutboxStatus",
    "UpstreamBulletin",
    "UpstreamCursor",
    "UpstreamExchange",
]

KEY_MAX = 200


class OutboxStatus(StrEnum):
    PENDING = "pending"  # waiting for (re)delivery
    SENT = "sent"  # acknowledged by the upstream system (or refused there as a duplicate)
    FAILED = "failed"  # refused (4xx): kept, visible, retried only by an operator


class OutboxMessage(TableBase, table=True):
    """One message for the upstream system; delivered in ``id`` order, kept until acknowledged."""

    __tablename__ = "upstream_outbox"
    __table_args__ = (sa.Index("ix_upstream_outbox_status_id", "status", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32)  # schedule | proof_of_play | cluster_status | report
    key: str = Field(max_length=KEY_MAX, unique=True)  # idempotency key, sent upstream
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON())
    status: OutboxStatus = Field(
        default=OutboxStatus.PENDING, sa_type=enum_column(OutboxStatus, "outbox_status")
    )
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_error: str = ""
    http_status: int | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class UpstreamExchange(TableBase, table=True):
    """One exchange with the upstream system, either way, whatever its outcome."""

    __tablename__ = "upstream_exchanges"

    id: int | None = Field(default=None, primary_key=True)
    direction: str = Field(max_length=8)  # up | down
    kind: str = Field(max_length=32)
    key: str = Field(default="", max_length=KEY_MAX)
    # ok | retry | failed | duplicate | rejected | expired | ignored | waiting
    status: str = Field(max_length=16)
    http_status: int | None = None
    attempt: int = 0
    error: str = ""
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)


class BulletinClass(StrEnum):
    NORMAL = "normal"  # thông thường: the operator decides
    PRIORITY = "priority"  # ưu tiên: ahead of other items in the next programme
    EMERGENCY = "emergency"  # khẩn cấp: immediately


class BulletinStatus(StrEnum):
    INBOX = "inbox"  # normal: waiting for the operator
    PROPOSED = "proposed"  # priority: the operator places it (upstream/_placement) or declines
    CONFIRM_NEEDED = "confirm_needed"  # emergency: an operator must confirm first
    CONFIRMED = "confirmed"  # emergency: confirmed, the station triggers it on its next tick
    TRIGGERED = "triggered"  # emergency: handed to the station's EmergencyTrigger
    SCHEDULED = "scheduled"  # taken into a programme by the operator / Playout
    # Set aside without an operator's decline on record. Before migration upstream_3 a decline
    # was stored here too; the declines it could prove (audit entry or outbox message) moved to
    # DECLINED, so the rows left here are not declines anyone can vouch for.
    DISMISSED = "dismissed"
    DECLINED = "declined"  # the operator declined to air it (reported upstream as "declined")


class UpstreamBulletin(TableBase, table=True):
    """A bulletin [bản tin] received from the upstream system; ``upstream_id`` is unique."""

    __tablename__ = "upstream_bulletins"

    id: int | None = Field(default=None, primary_key=True)
    upstream_id: str = Field(max_length=KEY_MAX, unique=True)
    bulletin_class: BulletinClass = Field(sa_type=enum_column(BulletinClass, "bulletin_class"))
    status: BulletinStatus = Field(sa_type=enum_column(BulletinStatus, "bulletin_status"))
    title: str = ""
    text: str = ""
    audio_url: str | None = Field(default=None, max_length=2000)
    media_id: int | None = Field(
        default=None, foreign_key="media_items.id", ondelete="SET NULL", index=True
    )
    audio_error: str = ""
    audio_attempts: int = 0
    villages: list[str] = Field(default_factory=list, sa_type=sa.JSON())  # [] = every village
    valid_from: datetime | None = Field(default=None, sa_type=UTCDateTime)
    valid_to: datetime | None = Field(default=None, sa_type=UTCDateTime)
    issued_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    issuer: str = ""
    received_via: str = Field(max_length=16)  # pull | webhook
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    note: str = ""
    # -- operator decision on a proposed (priority) bulletin (migration upstream_2) --
    decided_by: str = Field(default="", max_length=64)
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    schedule_ids: list[int] = Field(default_factory=list, sa_type=sa.JSON())  # reassign to change
    programme_id: int | None = Field(default=None, foreign_key="programmes.id", ondelete="SET NULL")

    @property
    def needs_recording(self) -> bool:
        """Text only: it waits for a recording (or a text-to-speech engine, a later issue)."""
        return self.audio_url is None and self.media_id is None


class UpstreamCursor(TableBase, table=True):
    """Opaque positions handed out by the upstream system (e.g. the bulletin feed)."""

    __tablename__ = "upstream_cursors"

    name: str = Field(primary_key=True, max_length=32)
    value: str = Field(default="", max_length=KEY_MAX)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
