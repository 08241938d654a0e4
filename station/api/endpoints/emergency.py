"""Emergency broadcasts [phát khẩn cấp]: start (two-person rule when configured), list, stop.

The engine is ``station._emergency``; the running dispatcher is poked so the broadcast airs at
once. Every start and stop is audited with who did it (and who confirmed it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlmodel import col, select

from station import _keys as keys
from station._emergency import EMERGENCY, EmergencyRequest, start_emergency, stop_emergency
from station._services import StationError
from station.db import PlayRecord, PlaySession, PlaySessionStatus, Programme

from .._approval import confirm_second_person
from .._audit import audit
from .._framework import ApiRouter, Call
from .._problems import ApiError, field_error
from .._roles import Permission
from ._common import ClusterId, Id, refused, sessions_of

router = ApiRouter("emergency", "Emergency broadcasts [phát khẩn cấp]: start now, list, stop")

PlaceId = ClusterId  # zone and village ids share the cluster id pattern
RECENT = 20


class EmergencyTargets(BaseModel):
    model_config = ConfigDict(extra="forbid")
    all: bool = Field(default=False, description="every cluster of the station")
    zones: list[PlaceId] = Field(default_factory=list, max_length=500)
    villages: list[PlaceId] = Field(default_factory=list, max_length=2000)
    clusters: list[ClusterId] = Field(default_factory=list, max_length=5000)

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        chosen = bool(self.zones or self.villages or self.clusters)
        if self.all == chosen:
            raise ValueError("give either all=true or zones, villages or clusters")
        return self

    def as_dict(self) -> dict[str, Any]:
        if self.all:
            return {"all": True}
        found = {"zones": self.zones, "villages": self.villages, "clusters": self.clusters}
        return {k: list(dict.fromkeys(v)) for k, v in found.items() if v}


class EmergencyStart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    targets: EmergencyTargets
    media_id: Id | None = Field(default=None, description="a media item to play")
    relay_url: str | None = Field(
        default=None, pattern=r"^https?://[^\s]{1,2000}$", description="a stream to relay"
    )
    live: bool = Field(default=False, description="the station's live stream")
    repeat: int = Field(default=1, ge=1, le=20, description="times to play it")
    duration_s: float = Field(default=600.0, gt=0, le=86400, description="relay/live seconds")
    volume: int | None = Field(
        default=None, ge=0, le=100, description="default: playout.emergency_volume"
    )
    title: str = Field(default="Khẩn cấp", min_length=1, max_length=200)
    second_username: str | None = Field(
        default=None, max_length=64, description="the confirming user (auth.emergency_two_person)"
    )
    second_password: str | None = Field(default=None, max_length=1024)


class EmergencyOut(BaseModel):
    id: str
    title: str
    status: PlaySessionStatus
    active: bool = Field(description="on air or about to be (not stopped, not finished)")
    start_at: datetime
    volume: int | None
    triggered_by: str | None
    stopped_at: datetime | None
    stopped_by: str | None
    clusters: dict[str, str] = Field(description="cluster id -> play record status")


class EmergencyList(BaseModel):
    active: list[EmergencyOut]
    recent: list[EmergencyOut] = Field(description=f"the last {RECENT}, newest first")


def _is_active(row: PlaySession) -> bool:
    live = (PlaySessionStatus.PENDING, PlaySessionStatus.DISPATCHED)
    return row.stopped_at is None and row.status in live


async def _outs(call: Call, rows: list[PlaySession]) -> list[EmergencyOut]:
    async with sessions_of(call)() as db:
        ids = [r.id for r in rows]
        records = (
            await db.exec(select(PlayRecord).where(col(PlayRecord.session_id).in_(ids)))
        ).all()
        titles = dict(
            (
                await db.exec(
                    select(Programme.id, Programme.title).where(
                        col(Programme.id).in_([r.programme_id for r in rows])
                    )
                )
            ).all()
        )
    by_session: dict[str, dict[str, str]] = {i: {} for i in ids}
    for record in records:
        by_session[record.session_id][record.cluster_id] = str(record.status.value)
    return [
        EmergencyOut(
            id=r.id,
            title=titles.get(r.programme_id, ""),
            status=r.status,
            active=_is_active(r),
            start_at=r.start_at,
            volume=r.volume,
            triggered_by=r.triggered_by,
            stopped_at=r.stopped_at,
            stopped_by=r.stopped_by,
            clusters=dict(sorted(by_session[r.id].items())),
        )
        for r in rows
    ]


def _poke(call: Call) -> None:
    dispatcher = call.app.get(keys.DISPATCHER)
    if dispatcher is not None:
        dispatcher.poke()


@router.get(
    "/emergency",
    summary="Active and recent emergency broadcasts",
    permission=Permission.READ,
    response=EmergencyList,
)
async def list_emergencies(call: Call) -> EmergencyList:
    async with sessions_of(call)() as db:
        rows = list(
            (
                await db.exec(
                    select(PlaySession)
                    .where(PlaySession.kind == EMERGENCY)
                    .order_by(col(PlaySession.start_at).desc(), col(PlaySession.id))
                    .limit(RECENT)
                )
            ).all()
        )
        running = list(
            (
                await db.exec(
                    select(PlaySession).where(
                        PlaySession.kind == EMERGENCY,
                        col(PlaySession.stopped_at).is_(None),
                        col(PlaySession.status).in_(
                            [PlaySessionStatus.PENDING, PlaySessionStatus.DISPATCHED]
                        ),
                    )
                )
            ).all()
        )
    return EmergencyList(active=await _outs(call, running), recent=await _outs(call, rows))


@router.post(
    "/emergency",
    summary="Start an emergency broadcast now",
    permission=Permission.EMERGENCY,
    body=EmergencyStart,
    response=EmergencyOut,
    status=201,
)
async def start_emergency_broadcast(call: Call, body: EmergencyStart) -> EmergencyOut:
    settings = call.app[keys.SETTINGS]
    sessions = sessions_of(call)
    if sum((body.media_id is not None, body.relay_url is not None, body.live)) != 1:
        field = "live" if body.live else "relay_url" if body.relay_url else "media_id"
        raise field_error(
            field,
            "give exactly one of media_id, relay_url or live=true",
            code="emergency_source_one",
        )
    second = await confirm_second_person(
        sessions, settings, call.user, body.second_username, body.second_password
    )
    request = EmergencyRequest(
        body.targets.as_dict(),
        media_id=body.media_id,
        relay_url=body.relay_url,
        live=body.live,
        repeat=body.repeat,
        duration_s=body.duration_s,
        volume=body.volume,
        title=body.title,
    )
    who = call.user.username
    if second is not None:
        who = f"{who} + {body.second_username}"
    try:
        session = await start_emergency(sessions, settings, request, who[:128])
    except StationError as exc:
        message = str(exc)
        if "media item" in message:
            raise field_error("media_id", message, code=exc.code, params=exc.params) from None
        if "target" in message or "unknown" in message:
            raise field_error("targets", message, code=exc.code, params=exc.params) from None
        raise refused(exc) from None
    _poke(call)
    details: dict[str, Any] = {
        "targets": request.targets,
        "media_id": body.media_id,
        "relay_url": body.relay_url,
        "live": body.live,
        "repeat": body.repeat,
        "volume": session.volume,
    }
    if second is not None:
        details |= {"second_user_id": second, "second_username": body.second_username}
    await audit(call, "emergency.start", f"emergency:{session.id}", details)
    return (await _outs(call, [session]))[0]


@router.delete(
    "/emergency/{emergency_id}",
    summary="Stop an emergency broadcast",
    permission=Permission.EMERGENCY,
    errors=(404,),
)
async def stop_emergency_broadcast(call: Call) -> None:
    emergency_id = call.path_str("emergency_id")
    if len(emergency_id) > 64 or "\x00" in emergency_id:
        raise ApiError(404, "no such emergency", code="emergency_not_found")
    try:
        await stop_emergency(sessions_of(call), call.user.username, emergency_id)
    except StationError as exc:
        raise ApiError(
            404, str(exc), code="emergency_not_found", emergency_id=emergency_id
        ) from None

    _poke(call)
    await audit(call, "emergency.stop", f"emergency:{emergency_id}")
