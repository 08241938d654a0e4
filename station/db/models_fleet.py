"""Tables of the cluster registry and monitoring: villages, zones, alerts, telemetry, data use.

Same conventions as ``models``: aware UTC datetimes, StrEnum columns with CHECK constraints, no
ORM relationships. Schema owned by migrations ``fleet_1``, ``fleet_2`` (status history) and
``live_1`` (alerts of live mounts).
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field

from ._types import UTCDateTime, enum_column, utcnow
from .models import ID_MAX, ClusterStatus, TableBase

__all__ = [
    "Alert",
    "AlertKind",
    "ClusterStatusChange",
    "ClusterTelemetry",
    "ClusterZone",
    "DataUse",
    "Village",
    "Zone",
]


class Village(TableBase, table=True):
    """A village [thôn/bản/tổ dân phố]: the unit a cluster covers."""

    __tablename__ = "villages"

    id: str = Field(primary_key=True, max_length=ID_MAX)
    name: str
    households: int | None = None
    lat: float | None = None
    lon: float | None = None
    note: str = ""


class Zone(TableBase, table=True):
    """A named group of clusters (e.g. "riverside", "market")."""

    __tablename__ = "zones"

    id: str = Field(primary_key=True, max_length=ID_MAX)
    name: str


class ClusterZone(TableBase, table=True):
    __tablename__ = "cluster_zones"

    zone_id: str = Field(
        primary_key=True, foreign_key="zones.id", ondelete="CASCADE", max_length=ID_MAX
    )
    cluster_id: str = Field(
        primary_key=True,
        foreign_key="clusters.id",
        ondelete="CASCADE",
        max_length=ID_MAX,
        index=True,
    )


class AlertKind(StrEnum):
    OFFLINE = "offline"
    FAULT = "fault"
    CLOCK = "clock"  # clock offset too large
    LOW_CACHE = "low_cache"
    FLAPPING = "flapping"
    # A live mount's (subject ``mount``, docs/live.md): its relay upstream sent nothing, only
    # silence, or no audio (an HTML page); a source client gave a wrong password; a scheduled
    # slot airs it and its source never delivered.
    DEAD = "dead"
    SILENCE = "silence"
    NOT_AUDIO = "not_audio"
    AUTH = "auth"
    NO_SOURCE = "no_source"


MOUNT_MAX = 32  # live mount names (station.live: 1-32 of a-z 0-9 _ -)


class Alert(TableBase, table=True):
    """A problem on one cluster or one live mount (exactly one of ``cluster_id``/``mount``),
    open until ``cleared_at`` is set. At most one open per (subject, kind, code): the monitor
    and the live hub's writer check before raising."""

    __tablename__ = "alerts"
    __table_args__ = (
        sa.Index("ix_alerts_open", "cluster_id", "kind", "code", "cleared_at"),
        sa.Index("ix_alerts_mount_open", "mount", "kind", "cleared_at"),
        sa.CheckConstraint("(cluster_id IS NULL) <> (mount IS NULL)", name="subject"),
    )

    id: int | None = Field(default=None, primary_key=True)
    cluster_id: str | None = Field(
        default=None, foreign_key="clusters.id", ondelete="CASCADE", max_length=ID_MAX
    )
    mount: str | None = Field(default=None, max_length=MOUNT_MAX)
    kind: AlertKind = Field(sa_type=enum_column(AlertKind, "alert_kind"))
    code: str = Field(default="", max_length=32)  # the fault code for kind=fault
    detail: str = ""
    raised_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    cleared_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ClusterTelemetry(TableBase, table=True):
    """The latest heartbeat of a cluster, and the counter state data use is computed from."""

    __tablename__ = "cluster_telemetry"

    cluster_id: str = Field(
        primary_key=True, foreign_key="clusters.id", ondelete="CASCADE", max_length=ID_MAX
    )
    state: str | None = Field(default=None, max_length=16)
    volume: int | None = None
    signal_dbm: int | None = None
    network: str | None = Field(default=None, max_length=16)
    power_source: str | None = Field(default=None, max_length=16)
    uptime_s: int | None = Field(default=None, sa_type=sa.BigInteger)
    clock_offset_ms: int | None = None
    free_cache_bytes: int | None = Field(default=None, sa_type=sa.BigInteger)
    bytes_counter: int | None = Field(default=None, sa_type=sa.BigInteger)
    faults: list[Any] = Field(default_factory=list, sa_type=sa.JSON())
    interval_s: float | None = None
    heartbeat_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class DataUse(TableBase, table=True):
    """Bytes a cluster downloaded per day (station time zone), from heartbeat counters."""

    __tablename__ = "data_use"

    cluster_id: str = Field(
        primary_key=True, foreign_key="clusters.id", ondelete="CASCADE", max_length=ID_MAX
    )
    day: date = Field(primary_key=True)
    bytes: int = Field(default=0, sa_type=sa.BigInteger)


class ClusterStatusChange(TableBase, table=True):
    """One change of a cluster's status or availability (history; rows are never updated).

    Written in the same transaction as the change itself: registration (``from_status`` None),
    provisioning, online/offline, faulty and back, retirement and replacement. ``online`` is the
    availability after the change, so a faulty cluster going offline is a row too (faulty ->
    faulty, online false): the inventory report reads status as of a date and time online.
    """

    __tablename__ = "cluster_status_changes"
    __table_args__ = (sa.Index("ix_cluster_status_changes_cluster_at", "cluster_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    cluster_id: str = Field(foreign_key="clusters.id", ondelete="CASCADE", max_length=ID_MAX)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    from_status: ClusterStatus | None = Field(
        default=None, sa_type=enum_column(ClusterStatus, "from_status")
    )
    to_status: ClusterStatus = Field(sa_type=enum_column(ClusterStatus, "to_status"))
    online: bool = False
    reason: str = Field(default="", max_length=200)
