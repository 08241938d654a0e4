"""Tables of the cluster registry and monitoring: villages, zones, alerts, telemetry, data use.

Same conventions as ``models``: aware UTC datetimes, StrEnum columns with CHECK constraints, no
ORM relationships. Schema owned by migration ``fleet_1``.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field

from ._types import UTCDateTime, enum_column, utcnow
from .models import ID_MAX, TableBase

__all__ = [
    "Alert",
    "AlertKind",
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


class Alert(TableBase, table=True):
    """A problem on one cluster, open until ``cleared_at`` is set. At most one open per
    (cluster, kind, code): the monitor checks before raising."""

    __tablename__ = "alerts"
    __table_args__ = (sa.Index("ix_alerts_open", "cluster_id", "kind", "code", "cleared_at"),)

    id: int | None = Field(default=None, primary_key=True)
    cluster_id: str = Field(foreign_key="clusters.id", ondelete="CASCADE", max_length=ID_MAX)
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
