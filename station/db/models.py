"""Tables of the station database.

Conventions:
- Every datetime is aware, stored as UTC, returned in UTC (``UTCDateTime``); naive ones are refused
  at flush time.
- ``table=True`` models are NOT validated by pydantic on construction: validate input with a
  separate (non-table) model before building rows.
- Statuses and kinds are ``StrEnum`` members stored as short strings with a CHECK constraint;
  plain strings with a valid value are accepted too, and rows read back hold enum members.
- No ORM relationships: lazy loading does not work under asyncio; query with explicit joins.
- The schema is owned by the Alembic migrations in ``migrations/``; a test checks they match.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, time
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from ._types import UTCDateTime, enum_column, json_dict, utcnow

__all__ = [
    "Cluster",
    "ClusterKind",
    "ClusterStatus",
    "InstalledAs",
    "MediaItem",
    "PlayRecord",
    "PlayRecordStatus",
    "PlaySession",
    "PlaySessionStatus",
    "Programme",
    "ProgrammeItem",
    "ProgrammeItemKind",
    "RecurrenceKind",
    "Schedule",
    "ScheduleStatus",
    "Station",
    "TableBase",
    "metadata",
]

# Deterministic constraint names on every backend (Alembic batch mode on SQLite needs names).
metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class TableBase(SQLModel, registry=registry(metadata=metadata)):
    """Base of loaxa tables: its own MetaData, so only these tables are migrated."""


ID_MAX = 64


class ClusterKind(StrEnum):
    ICT = "ict"  # loaxa IP receiver
    BRIDGE = "bridge"  # legacy equipment behind a bridge
    FM = "fm"  # FM transmitter feed
    WIRED = "wired"  # wired loudspeaker line


class ClusterStatus(StrEnum):
    REGISTERED = "registered"
    PROVISIONED = "provisioned"
    ONLINE = "online"
    OFFLINE = "offline"
    FAULTY = "faulty"
    RETIRED = "retired"


class InstalledAs(StrEnum):
    """How a cluster came to be (the seed's three kinds of cluster work)."""

    NEW_STATION = "new_station"  # thiết lập mới
    REPLACEMENT = "replacement"  # thay thế
    EXTENSION = "extension"  # mở rộng


class ScheduleStatus(StrEnum):
    PENDING = "pending"
    # A recurring schedule: a rule that stays on until cancelled or past valid_to. Its
    # occurrences, not the row, are what gets dispatched (the one-off dispatcher skips it).
    ACTIVE = "active"
    DISPATCHED = "dispatched"
    DONE = "done"
    MISSED = "missed"
    CANCELLED = "cancelled"


class PlaySessionStatus(StrEnum):
    PENDING = "pending"
    DISPATCHED = "dispatched"
    DONE = "done"
    FAILED = "failed"


class PlayRecordStatus(StrEnum):
    SENT = "sent"
    ACKED = "acked"
    NACKED = "nacked"
    STARTED = "started"
    FINISHED = "finished"
    INTERRUPTED = "interrupted"
    FAILED = "failed"


def _created() -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime)


def _updated() -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, sa_column_kwargs={"onupdate": utcnow})


class Station(TableBase, table=True):
    __tablename__ = "stations"

    id: str = Field(primary_key=True, max_length=ID_MAX)
    name: str
    timezone: str = Field(max_length=64)
    created_at: datetime = _created()


class Cluster(TableBase, table=True):
    """A receiver cluster [cụm loa]: one device on the network, one or more loudspeakers."""

    __tablename__ = "clusters"

    id: str = Field(primary_key=True, max_length=ID_MAX)
    name: str = ""
    kind: ClusterKind = Field(
        default=ClusterKind.ICT, sa_type=enum_column(ClusterKind, "cluster_kind")
    )
    village_id: str | None = Field(default=None, max_length=ID_MAX)
    status: ClusterStatus = Field(
        default=ClusterStatus.REGISTERED, sa_type=enum_column(ClusterStatus, "cluster_status")
    )
    online: bool = False
    firmware: str | None = Field(default=None, max_length=64)
    model: str | None = Field(default=None, max_length=64)
    capabilities: dict[str, Any] = Field(default_factory=dict, sa_type=json_dict())
    last_seen_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = _created()
    # -- registry (migration fleet_1) --
    lat: float | None = None
    lon: float | None = None
    # fm/wired clusters report nothing themselves: they are reached through this bridge
    bridge_id: str | None = Field(default=None, max_length=ID_MAX)
    # DTMF/RDS zone selection code that switches a legacy FM/wired set on
    zone_code: str | None = Field(default=None, max_length=32)
    serial: str | None = Field(default=None, max_length=64)
    imei: str | None = Field(default=None, max_length=32)
    iccid: str | None = Field(default=None, max_length=32)
    # -- SIM subscriber number [số thuê bao] for data top-ups (migration fleet_3) --
    sim_msisdn: str | None = Field(default=None, max_length=16)  # national form, 0xxxxxxxxx
    installed_on: date | None = None
    installed_as: InstalledAs | None = Field(
        default=None, sa_type=enum_column(InstalledAs, "installed_as")
    )
    retired_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    replaces: str | None = Field(default=None, max_length=ID_MAX)
    replaced_by: str | None = Field(default=None, max_length=ID_MAX)
    # MQTT password hash, Mosquitto's $7$ (PBKDF2-SHA512) format; the password is never stored
    credential_hash: str | None = Field(default=None, max_length=256)
    note: str = ""


class MediaItem(TableBase, table=True):
    """One audio item of the library [thư viện].

    ``sha256``/``codec``/``size_bytes`` describe the primary delivery rendition; every
    rendition (Opus, MP3) is a ``MediaRendition`` row and topics are ``MediaTopic`` rows
    (``models_media``, migration media_1).
    """

    __tablename__ = "media_items"

    id: int | None = Field(default=None, primary_key=True)
    sha256: str = Field(max_length=64, unique=True, index=True)
    source_sha256: str = Field(max_length=64, index=True)  # the uploaded bytes, for dedup
    title: str
    duration_ms: int
    codec: str = Field(default="opus", max_length=16)
    size_bytes: int = Field(sa_type=sa.BigInteger)
    loudness_in_lufs: float | None = None
    loudness_out_lufs: float | None = None
    created_at: datetime = _created()
    # -- library metadata (migration media_1) --
    language: str = Field(default="vi", max_length=16)  # BCP 47-ish: vi, ctu (Cơ Tu), ...
    uploader: str = Field(default="", max_length=128)
    true_peak_out_db: float | None = None


class ProgrammeItemKind(StrEnum):
    MEDIA = "media"
    RELAY = "relay"  # a stream relayed for duration_ms [tiếp âm]
    LIVE = "live"  # a live slot of duration_ms [phát trực tiếp]
    SILENCE = "silence"
    JINGLE = "jingle"  # a short media item


class RecurrenceKind(StrEnum):
    ONCE = "once"
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


class Programme(TableBase, table=True):
    """An ordered list of items [chương trình], tagged with topics for reports."""

    __tablename__ = "programmes"

    id: int | None = Field(default=None, primary_key=True)
    title: str
    created_at: datetime = _created()
    # -- playout (migration playout_1) --
    topics: list[str] = Field(default_factory=list, sa_type=sa.JSON())  # reassign to change
    language: str = Field(default="vi", max_length=16)  # "vi", "ctu" (Cơ Tu), ...
    version: int = 1  # bumped when the items change: an approval names one version


class ProgrammeItem(TableBase, table=True):
    __tablename__ = "programme_items"
    # The unique index also serves lookups by programme_id (its leading column).
    __table_args__ = (sa.UniqueConstraint("programme_id", "position"),)

    id: int | None = Field(default=None, primary_key=True)
    programme_id: int = Field(foreign_key="programmes.id", ondelete="CASCADE")
    position: int
    # media and jingle items name a media item; relay, live and silence items do not
    media_id: int | None = Field(
        default=None, foreign_key="media_items.id", ondelete="RESTRICT", index=True
    )
    # -- playout (migration playout_1) --
    kind: ProgrammeItemKind = Field(
        default=ProgrammeItemKind.MEDIA,
        sa_type=enum_column(ProgrammeItemKind, "programme_item_kind"),
    )
    duration_ms: int | None = None  # None for media items: the media item's own duration
    url: str | None = Field(default=None, max_length=2000)  # the relayed stream
    title: str = ""


class Schedule(TableBase, table=True):
    """A programme to broadcast at ``start_at`` to ``targets`` [lịch phát]."""

    __tablename__ = "schedules"

    id: int | None = Field(default=None, primary_key=True)
    programme_id: int = Field(foreign_key="programmes.id", ondelete="RESTRICT", index=True)
    start_at: datetime = Field(sa_type=UTCDateTime, index=True)
    # {"all": true} or {"clusters": ["C01", ...]}
    targets: dict[str, Any] = Field(default_factory=dict, sa_type=json_dict())
    status: ScheduleStatus = Field(
        default=ScheduleStatus.PENDING, sa_type=enum_column(ScheduleStatus, "schedule_status")
    )
    created_at: datetime = _created()
    updated_at: datetime = _updated()
    # -- playout (migration playout_1) --
    # For recurring kinds ``start_at`` is the first occurrence; the rule is below, in
    # ``timezone`` wall-clock time. ``weekdays``: "mon,wed,fri"; ``exceptions``: ISO dates.
    recurrence: RecurrenceKind = Field(
        default=RecurrenceKind.ONCE, sa_type=enum_column(RecurrenceKind, "recurrence_kind")
    )
    time_of_day: time | None = None
    weekdays: str = Field(default="", max_length=32)
    day_of_month: int | None = None
    valid_from: date | None = None
    valid_to: date | None = None
    exceptions: list[str] = Field(default_factory=list, sa_type=sa.JSON())  # reassign to change
    timezone: str = Field(default="Asia/Ho_Chi_Minh", max_length=64)
    priority: str = Field(default="scheduled", max_length=32)  # a level of playout.priorities
    rank: int = 0  # order among overlapping schedules of one priority: lower goes first
    volume: int | None = None
    misfire_grace_s: int | None = None  # None: scheduler.misfire_grace_s; 0: skip if late
    note: str = ""  # e.g. the conflicts the operator accepted


def _session_id() -> str:
    return uuid.uuid4().hex


class PlaySession(TableBase, table=True):
    """One dispatch of a programme: the ``session_id`` carried by play commands."""

    __tablename__ = "play_sessions"

    id: str = Field(default_factory=_session_id, primary_key=True, max_length=ID_MAX)
    schedule_id: int | None = Field(
        default=None, foreign_key="schedules.id", ondelete="SET NULL", index=True
    )
    programme_id: int = Field(foreign_key="programmes.id", ondelete="RESTRICT", index=True)
    start_at: datetime = Field(sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    dispatched_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    status: PlaySessionStatus = Field(
        default=PlaySessionStatus.PENDING,
        sa_type=enum_column(PlaySessionStatus, "play_session_status"),
    )
    # -- playout (migration playout_2) --
    kind: str = Field(default="scheduled", max_length=16)  # scheduled | emergency
    priority: int = 40  # the ladder level its commands carry (0-100)
    volume: int | None = None  # an emergency's volume override
    triggered_by: str | None = Field(default=None, max_length=128)  # who started an emergency
    stopped_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    stopped_by: str | None = Field(default=None, max_length=128)
    # bridge id -> {"target": "transmitter"|"amplifier", "zone_codes": [...]}: switched on first
    bridges: dict[str, Any] = Field(default_factory=dict, sa_type=json_dict())


class PlayRecord(TableBase, table=True):
    """What one cluster did with one play session [nhật ký phát]."""

    __tablename__ = "play_records"
    # The unique index also serves lookups by session_id (its leading column).
    __table_args__ = (sa.UniqueConstraint("session_id", "cluster_id"),)

    id: int | None = Field(default=None, primary_key=True)
    session_id: str = Field(foreign_key="play_sessions.id", ondelete="CASCADE", max_length=ID_MAX)
    cluster_id: str = Field(
        foreign_key="clusters.id", ondelete="RESTRICT", max_length=ID_MAX, index=True
    )
    status: PlayRecordStatus = Field(sa_type=enum_column(PlayRecordStatus, "play_record_status"))
    scheduled_start: datetime = Field(sa_type=UTCDateTime)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    skew_ms: int | None = None
    played_ms: int | None = None
    bytes_downloaded: int | None = Field(default=None, sa_type=sa.BigInteger)
    clock_offset_ms: int | None = None
    error_code: str | None = Field(default=None, max_length=64)
    updated_at: datetime = _updated()
    # -- playout (migration playout_2) --
    interrupted_by: str | None = Field(default=None, max_length=64)  # e.g. the emergency's id
