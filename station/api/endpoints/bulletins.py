"""Priority bulletins from upstream [bản tin ưu tiên]: clashes, placement, decline.

A priority bulletin arrives ``proposed``. The operator reads what it clashes with (the next
programmes on its villages' clusters within its validity window) and places it before, after
or instead of an item of one of them, or as its own session, or declines it
(station/upstream/_placement.py, docs/upstream.md).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from station import _keys as keys
from station.db import BulletinStatus, UpstreamBulletin
from station.upstream._placement import (
    PlacementError,
    Proposal,
    decline_bulletin,
    place_bulletin,
    proposal,
    proposed_bulletins,
)
from station.upstream._queries import BulletinActionError, attach_audio, confirm_emergency, inbox

from .._framework import ApiRouter, Call
from .._problems import ApiError, field_error
from .._roles import Permission
from ._common import Id, sessions_of

router = ApiRouter("bulletins", "Priority bulletins from upstream: clashes and placement")


class BulletinOut(BaseModel):
    id: int
    upstream_id: str
    bulletin_class: str
    status: BulletinStatus = Field(
        description="declined: the operator declined to air it (reported upstream as declined); "
        "dismissed: set aside with no decline on record"
    )
    title: str
    text: str
    villages: list[str]
    valid_from: datetime | None
    valid_to: datetime | None
    media_id: int | None
    decided_by: str
    decided_at: datetime | None
    schedule_ids: list[int]
    programme_id: int | None
    note: str
    issuer: str = ""
    issued_at: datetime | None = None
    received_at: datetime | None = None


class ClashItemOut(BaseModel):
    item: int = Field(description="1 = the first item")
    kind: str
    title: str
    start: datetime
    duration_s: float


class ClashOut(BaseModel):
    session_id: str
    schedule_id: int
    programme_id: int
    title: str
    priority: str
    start: datetime
    end: datetime
    clusters: list[str]
    items: list[ClashItemOut]


class ProposalOut(BaseModel):
    bulletin: BulletinOut
    clusters: list[str] = Field(description="the clusters of the bulletin's villages")
    window_start: datetime
    window_end: datetime
    duration_s: float | None = Field(description="the bulletin's audio; null: no audio yet")
    clashes: list[ClashOut]
    problem: str = Field(description="why it has no clashes, e.g. its villages reach no cluster")


class ProposalList(BaseModel):
    items: list[ProposalOut]


class BulletinQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_done: bool = Field(
        default=False, description="also the decided ones (scheduled, declined, triggered)"
    )
    status: BulletinStatus | None = Field(
        default=None, description="only bulletins in this status (implies include_done)"
    )
    limit: int = Field(default=100, ge=1, le=1000, description="the latest this many")


class BulletinList(BaseModel):
    items: list[BulletinOut]


class ClashQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: int = Field(default=5, ge=1, le=50, description="programmes to show")


class PlaceBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["before", "after", "instead", "session"]
    session_id: str | None = Field(
        default=None, max_length=100, description="the clash's session (before/after/instead)"
    )
    item: int | None = Field(default=None, ge=1, le=10000, description="item of that programme")
    at: AwareDatetime | None = Field(default=None, description="start of an own session")

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.mode == "session" and self.at is None:
            raise ValueError("mode session needs at")
        if self.mode != "session" and (self.session_id is None or self.item is None):
            raise ValueError(f"mode {self.mode} needs session_id and item")
        return self


class AudioBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    media_id: Id = Field(description="a media item uploaded first (POST /media)")


class DeclineBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="", max_length=500)


def _bulletin(row: UpstreamBulletin) -> BulletinOut:
    return BulletinOut.model_validate(row, from_attributes=True)


def _proposal(p: Proposal) -> ProposalOut:
    return ProposalOut(
        bulletin=_bulletin(p.bulletin),
        clusters=p.clusters,
        window_start=p.window[0],
        window_end=p.window[1],
        duration_s=p.duration_s,
        problem=p.problem,
        clashes=[
            ClashOut(
                session_id=c.session_id,
                schedule_id=c.schedule_id,
                programme_id=c.programme_id,
                title=c.title,
                priority=c.priority,
                start=c.start,
                end=c.end,
                clusters=c.clusters,
                items=[ClashItemOut.model_validate(i, from_attributes=True) for i in c.items],
            )
            for c in p.clashes
        ],
    )


def _problem(exc: PlacementError | BulletinActionError) -> ApiError:
    """The upstream refusals: the code they carry (``StationError.code``), else 404's own."""
    code = exc.code or ("bulletin_not_found" if exc.status == 404 else None)
    if exc.status == 422:
        field, _, message = exc.detail.partition(": ")
        return field_error(
            field if message else "body", message or exc.detail, code=code, params=exc.params
        )
    title = "Refused" if exc.status == 409 else ""
    return ApiError(exc.status, exc.detail, title=title, code=code, params=exc.params)


@router.get(
    "/bulletins",
    summary="Bulletins from upstream waiting for the operator (all of them with include_done)",
    permission=Permission.READ,
    query=BulletinQuery,
    response=BulletinList,
)
async def list_bulletins(call: Call, query: BulletinQuery) -> BulletinList:
    """Every class: normal ones in the inbox, proposed priority ones, emergencies waiting;
    oldest first."""
    rows = await inbox(sessions_of(call), include_done=query.include_done, status=query.status)
    return BulletinList(items=[_bulletin(r) for r in rows[-query.limit :]])


@router.get(
    "/bulletins/proposed",
    summary="Proposed priority bulletins with the programmes they clash with",
    permission=Permission.READ,
    query=ClashQuery,
    response=ProposalList,
)
async def list_proposed(call: Call, query: ClashQuery) -> ProposalList:
    sessions, settings = sessions_of(call), call.app[keys.SETTINGS]
    items = []
    for row in await proposed_bulletins(sessions):
        assert row.id is not None
        try:
            items.append(_proposal(await proposal(sessions, settings, row.id, limit=query.limit)))
        except PlacementError:  # decided meanwhile
            continue
    return ProposalList(items=items)


@router.get(
    "/bulletins/{bulletin_id:int}/clashes",
    summary="What a proposed bulletin clashes with",
    permission=Permission.READ,
    query=ClashQuery,
    response=ProposalOut,
    errors=(404, 409),
)
async def bulletin_clashes(call: Call, query: ClashQuery) -> ProposalOut:
    try:
        found = await proposal(
            sessions_of(call),
            call.app[keys.SETTINGS],
            call.path_int("bulletin_id"),
            limit=query.limit,
        )
    except PlacementError as exc:
        raise _problem(exc) from None
    return _proposal(found)


@router.post(
    "/bulletins/{bulletin_id:int}/place",
    summary="Place a proposed bulletin before/after/instead of an item, or as its own session",
    permission=Permission.SCHEDULES_WRITE,
    body=PlaceBody,
    response=BulletinOut,
    errors=(404, 409),
)
async def place(call: Call, body: PlaceBody) -> BulletinOut:
    """The resulting schedules go through the quota and conflict checks (409 when refused);
    the bulletin becomes ``scheduled`` and its status is queued for the upstream system."""
    try:
        row = await place_bulletin(
            sessions_of(call),
            call.app[keys.SETTINGS],
            call,
            call.path_int("bulletin_id"),
            body.mode,
            session_id=body.session_id,
            item=body.item,
            at=body.at,
        )
    except PlacementError as exc:
        raise _problem(exc) from None
    dispatcher = call.app.get(keys.DISPATCHER)
    if dispatcher is not None:
        await dispatcher.reconcile()
    return _bulletin(row)


@router.post(
    "/bulletins/{bulletin_id:int}/decline",
    summary="Decline a proposed bulletin",
    permission=Permission.SCHEDULES_WRITE,
    body=DeclineBody,
    response=BulletinOut,
    errors=(404, 409),
)
async def decline(call: Call, body: DeclineBody) -> BulletinOut:
    """The bulletin becomes ``declined`` (with the reason in its note) and ``declined`` is
    queued for the upstream system."""
    try:
        row = await decline_bulletin(
            sessions_of(call), call, call.path_int("bulletin_id"), body.reason
        )
    except PlacementError as exc:
        raise _problem(exc) from None
    return _bulletin(row)


@router.post(
    "/bulletins/{bulletin_id:int}/confirm",
    summary="Confirm an emergency bulletin that waits for an operator; it airs at once",
    permission=Permission.EMERGENCY,
    response=BulletinOut,
    errors=(404, 409),
)
async def confirm(call: Call) -> BulletinOut:
    """Only a bulletin in ``confirm_needed`` (``upstream.emergency_confirm: always``, or a
    trigger that failed) is confirmed, as ``loaxa upstream confirm`` does. It is handed to the
    emergency path at once (status ``triggered``); a text-only one stays ``confirmed`` until
    a recording is attached (``POST /bulletins/{id}/audio``). Audited ``bulletin.confirmed``."""
    bulletin_id = call.path_int("bulletin_id")
    try:
        row = await confirm_emergency(sessions_of(call), bulletin_id, call)
    except BulletinActionError as exc:
        raise _refused(exc) from None
    return _bulletin(await _trigger_now(call, row))


async def _trigger_now(call: Call, row: UpstreamBulletin) -> UpstreamBulletin:
    upstream = call.app.get(keys.UPSTREAM)
    if upstream is None or row.id is None:
        return row
    return await upstream.inbox.trigger_now(row.id) or row


@router.post(
    "/bulletins/{bulletin_id:int}/audio",
    summary="Attach a recording to a bulletin that has none (upload it first: POST /media)",
    permission=Permission.MEDIA_WRITE,
    body=AudioBody,
    response=BulletinOut,
    errors=(404, 409),
)
async def attach(call: Call, body: AudioBody) -> BulletinOut:
    """For a text-only bulletin (or one whose download failed) still open: a normal or
    priority one becomes placeable; a confirmed emergency airs at once. 409 when it already
    has a recording or was decided. Audited ``bulletin.audio``."""
    try:
        row = await attach_audio(
            sessions_of(call), call, call.path_int("bulletin_id"), body.media_id
        )
    except BulletinActionError as exc:
        raise _refused(exc) from None
    return _bulletin(await _trigger_now(call, row))


def _refused(exc: BulletinActionError) -> ApiError:
    return _problem(exc)
