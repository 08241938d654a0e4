"""Proof of play [nhật ký phát], station counters and the clusters' data use per day."""

from __future__ import annotations

import datetime as dt
from datetime import datetime, time, timedelta

from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import col, func, select

from station import _keys as keys
from station.db import Cluster, DataUse, PlayRecord, PlayRecordStatus

from .._framework import ApiRouter, Call, ListQuery, Page
from .._paging import paginate
from .._roles import Permission
from ._common import ClusterId, sessions_of

router = ApiRouter("plays", "What each cluster played, and station counters")


class PlayOut(BaseModel):
    id: int
    session_id: str
    cluster_id: str
    status: PlayRecordStatus
    scheduled_start: datetime
    started_at: datetime | None
    finished_at: datetime | None
    skew_ms: int | None
    played_ms: int | None
    bytes_downloaded: int | None
    error_code: str | None


class PlayQuery(ListQuery):
    session_id: str | None = Field(default=None, max_length=64)
    cluster_id: ClusterId | None = None
    status: PlayRecordStatus | None = None
    date: dt.date | None = Field(
        default=None, description="scheduled on this day, in the station's time zone"
    )


class Stats(BaseModel):
    clusters_online: int
    commands_sent: int
    messages_received: dict[str, int]
    messages_dropped: dict[str, int]
    mqtt_reconnects: int
    sessions_dispatched: int
    media_bytes_served: dict[str, int] = Field(
        default_factory=dict, description="media bytes sent per cluster since the station started"
    )
    media_links_refused: dict[str, int] = Field(
        default_factory=dict, description="media requests refused (403) by reason"
    )


def _out(r: PlayRecord) -> PlayOut:
    return PlayOut.model_validate(r, from_attributes=True)


@router.get(
    "/plays",
    summary="List play records",
    permission=Permission.READ,
    query=PlayQuery,
    response=Page[PlayOut],
)
async def list_plays(call: Call, query: PlayQuery) -> Page[PlayOut]:
    stmt = select(PlayRecord).order_by(col(PlayRecord.id).desc())
    if query.session_id is not None:
        stmt = stmt.where(PlayRecord.session_id == query.session_id)
    if query.cluster_id is not None:
        stmt = stmt.where(PlayRecord.cluster_id == query.cluster_id)
    if query.status is not None:
        stmt = stmt.where(PlayRecord.status == query.status)
    if query.date is not None:
        tz = call.app[keys.SETTINGS].station.tzinfo
        start = datetime.combine(query.date, time(0), tz)
        stmt = stmt.where(
            col(PlayRecord.scheduled_start) >= start,
            col(PlayRecord.scheduled_start) < start + timedelta(days=1),
        )
    async with sessions_of(call)() as db:
        return await paginate(db, stmt, query, _out)


@router.get("/stats", summary="Station counters", permission=Permission.READ, response=Stats)
async def stats(call: Call) -> Stats:
    gateway = call.app[keys.GATEWAY]
    link = call.app[keys.LINK]
    async with sessions_of(call)() as db:
        online = (await db.exec(select(func.count()).where(col(Cluster.online)))).one()
    return Stats(
        clusters_online=online,
        commands_sent=gateway.commands_sent,
        messages_received=dict(gateway.received),
        messages_dropped=dict(gateway.dropped + link.dropped),
        mqtt_reconnects=link.reconnects,
        sessions_dispatched=call.app[keys.DISPATCHER].dispatched,
        media_bytes_served=dict(call.app[keys.DELIVERY].meter.served),
        media_links_refused=dict(call.app[keys.DELIVERY].rejected),
    )


class DataUseQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    days: int = Field(default=7, ge=1, le=366, description="this many days up to today")
    cluster_id: ClusterId | None = None


class DataUseRow(BaseModel):
    cluster_id: str
    day: dt.date
    bytes: int


class DataUseOut(BaseModel):
    since: dt.date = Field(description="first day counted, station time zone")
    days: int
    rows: list[DataUseRow] = Field(description="per cluster and day, by cluster then day")
    clusters: dict[str, int] = Field(description="bytes per cluster over the whole period")
    total_bytes: int


@router.get("/data-use", summary="Bytes each cluster downloaded per day (loaxa data-use)",
            permission=Permission.READ, query=DataUseQuery, response=DataUseOut)  # fmt: skip
async def data_use(call: Call, query: DataUseQuery) -> DataUseOut:
    """From the clusters' heartbeat byte counters (what the SIM is billed for, roughly), per
    day in the station's time zone; today's row grows during the day."""
    today = datetime.now(call.app[keys.SETTINGS].station.tzinfo).date()
    since = today - timedelta(days=query.days - 1)
    stmt = select(DataUse).where(col(DataUse.day) >= since)
    if query.cluster_id is not None:
        stmt = stmt.where(DataUse.cluster_id == query.cluster_id)
    async with sessions_of(call)() as db:
        found = (await db.exec(stmt.order_by(col(DataUse.cluster_id), col(DataUse.day)))).all()
    rows = [DataUseRow(cluster_id=r.cluster_id, day=r.day, bytes=r.bytes) for r in found]
    per_cluster: dict[str, int] = {}
    for row in rows:
        per_cluster[row.cluster_id] = per_cluster.get(row.cluster_id, 0) + row.bytes
    return DataUseOut(
        since=since,
        days=query.days,
        rows=rows,
        clusters=per_cluster,
        total_bytes=sum(per_cluster.values()),
    )
