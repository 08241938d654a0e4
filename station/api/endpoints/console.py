"""What the web console needs: the dashboard summary [tổng quan] and listening to media.

The console polls the dashboard every few seconds, so it is a handful of small queries.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field
from sqlmodel import col, select

from station import _keys as keys
from station.db import (
    Alert,
    Cluster,
    ClusterStatus,
    MediaItem,
    MediaRendition,
    PlayRecord,
    PlayRecordStatus,
    PlaySession,
    Programme,
    Schedule,
    ScheduleStatus,
)

from .._framework import ApiRouter, Call
from .._roles import Permission
from ._common import not_found, sessions_of

router = ApiRouter("console", "Summaries for the web console")

GRID_MAX = 2000  # clusters listed on the dashboard grid
NEXT_MAX = 5
ALERTS_MAX = 10


class ClusterTile(BaseModel):
    id: str
    name: str
    village_id: str | None
    status: ClusterStatus
    online: bool
    on_air: bool
    alerts: int


class OnAir(BaseModel):
    cluster_id: str
    session_id: str
    programme_id: int
    programme_title: str
    scheduled_start: datetime
    started_at: datetime | None


class NextUp(BaseModel):
    schedule_id: int
    programme_id: int
    programme_title: str
    start_at: datetime
    targets: dict[str, Any]


class AlertOut(BaseModel):
    id: int
    cluster_id: str | None = Field(description="the cluster's alert; else ``mount``'s")
    mount: str | None = Field(default=None, description="a live mount's alert (docs/live.md)")
    kind: str
    code: str
    detail: str
    raised_at: datetime


class Counts(BaseModel):
    total: int = Field(description="clusters not retired")
    online: int
    offline: int
    on_air: int
    alerts_open: int


class Dashboard(BaseModel):
    now: datetime
    counts: Counts
    on_air: list[OnAir]
    next: list[NextUp]
    alerts: list[AlertOut]
    clusters: list[ClusterTile] = Field(description=f"at most {GRID_MAX}, by id")


@router.get(
    "/console/dashboard",
    summary="Dashboard: clusters online, on air now, next programmes, open alerts",
    permission=Permission.READ,
    response=Dashboard,
)
async def dashboard(call: Call) -> Dashboard:
    now = datetime.now(UTC)
    async with sessions_of(call)() as db:
        clusters = (
            await db.exec(
                select(Cluster)
                .where(col(Cluster.status) != ClusterStatus.RETIRED)
                .order_by(col(Cluster.id))
            )
        ).all()
        playing = (
            await db.exec(
                select(PlayRecord, PlaySession.programme_id, Programme.title)
                .join(PlaySession, col(PlaySession.id) == col(PlayRecord.session_id))
                .join(Programme, col(Programme.id) == col(PlaySession.programme_id))
                .where(PlayRecord.status == PlayRecordStatus.STARTED)
                .order_by(col(PlayRecord.cluster_id))
                .limit(GRID_MAX)
            )
        ).all()
        upcoming = (
            await db.exec(
                select(Schedule, Programme.title)
                .join(Programme, col(Programme.id) == col(Schedule.programme_id))
                .where(Schedule.status == ScheduleStatus.PENDING, col(Schedule.start_at) >= now)
                .order_by(col(Schedule.start_at), col(Schedule.id))
                .limit(NEXT_MAX)
            )
        ).all()
        alerts = (
            await db.exec(
                select(Alert)
                .where(col(Alert.cleared_at).is_(None))
                .order_by(col(Alert.raised_at).desc())
            )
        ).all()
    on_air = [
        OnAir(
            cluster_id=r.cluster_id,
            session_id=r.session_id,
            programme_id=pid,
            programme_title=title,
            scheduled_start=r.scheduled_start,
            started_at=r.started_at,
        )
        for r, pid, title in playing
    ]
    airing = {o.cluster_id for o in on_air}
    alert_counts: dict[str, int] = {}
    for a in alerts:
        if a.cluster_id is not None:  # else a live mount's (docs/live.md)
            alert_counts[a.cluster_id] = alert_counts.get(a.cluster_id, 0) + 1
    online = sum(1 for c in clusters if c.online)
    return Dashboard(
        now=now,
        counts=Counts(
            total=len(clusters),
            online=online,
            offline=len(clusters) - online,
            on_air=len(airing),
            alerts_open=len(alerts),
        ),
        on_air=on_air,
        next=[
            NextUp(
                schedule_id=s.id or 0,
                programme_id=s.programme_id,
                programme_title=title,
                start_at=s.start_at,
                targets=s.targets,
            )
            for s, title in upcoming
        ],
        alerts=[
            AlertOut(
                id=a.id or 0,
                cluster_id=a.cluster_id,
                mount=a.mount,
                kind=str(a.kind),
                code=a.code,
                detail=a.detail,
                raised_at=a.raised_at,
            )
            for a in alerts[:ALERTS_MAX]
        ],
        clusters=[
            ClusterTile(
                id=c.id,
                name=c.name,
                village_id=c.village_id,
                status=c.status,
                online=c.online,
                on_air=c.id in airing,
                alerts=alert_counts.get(c.id, 0),
            )
            for c in clusters[:GRID_MAX]
        ],
    )


_AUDIO_TYPES = {"mp3": "audio/mpeg", "opus": "audio/ogg"}


@router.get(
    "/console/media/{media_id:int}/audio",
    summary="Listen to a media item (MP3 rendition when there is one, else Opus)",
    permission=Permission.READ,
    media_type="audio/mpeg",
)
async def listen_media(call: Call) -> web.StreamResponse:
    """For people with the read permission (the console's player); clusters use the signed
    ``/media/<sha256>.<ext>`` links instead. Range requests work (seeking)."""
    async with sessions_of(call)() as db:
        item = await db.get(MediaItem, call.path_int("media_id"))
        if item is None:
            raise not_found("media item")
        rows = (
            await db.exec(select(MediaRendition).where(MediaRendition.media_id == item.id))
        ).all()
    files = {r.codec: r.sha256 for r in rows} or {item.codec: item.sha256}
    codec = "mp3" if "mp3" in files else next(iter(files))
    path = call.app[keys.MEDIA_STORE].path_for(files[codec], codec)
    response = web.FileResponse(
        path,
        headers={
            "Content-Type": _AUDIO_TYPES.get(codec, "application/octet-stream"),
            "Cache-Control": "private, max-age=3600",
        },
    )
    return response
