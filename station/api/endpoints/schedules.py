"""Schedules [lịch phát]: one-off broadcasts; create, list, read, cancel."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any, Self

from apscheduler.jobstores.base import JobLookupError
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from sqlmodel import col, select

from station import _keys as keys
from station._services import StationError, schedule_once
from station.db import Schedule, ScheduleStatus

from .._approval import require_approved
from .._audit import audit, audit_in
from .._framework import ApiRouter, Call, ListQuery, Page, Reply, etag_of
from .._paging import paginate
from .._problems import ApiError, field_error
from .._roles import Permission
from ._common import ClusterId, Id, not_found, refused, sessions_of

router = ApiRouter("schedules", "When programmes go on air, and where")


class Targets(BaseModel):
    model_config = ConfigDict(extra="forbid")
    all: bool = Field(default=False, description="every cluster of the station")
    clusters: list[ClusterId] = Field(default_factory=list, max_length=5000)

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        if self.all == bool(self.clusters):
            raise ValueError("give either all=true or a non-empty clusters list")
        return self

    def as_dict(self) -> dict[str, Any]:
        return {"all": True} if self.all else {"clusters": list(dict.fromkeys(self.clusters))}


class ScheduleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    programme_id: Id
    start_at: AwareDatetime = Field(description="with a time zone, in the future")
    targets: Targets


class ScheduleOut(BaseModel):
    id: int
    programme_id: int
    start_at: datetime
    targets: dict[str, Any]
    status: ScheduleStatus
    created_at: datetime
    updated_at: datetime


class ScheduleQuery(ListQuery):
    status: ScheduleStatus | None = None
    programme_id: Id | None = None
    start_from: AwareDatetime | None = Field(default=None, description="start_at >= this")
    start_to: AwareDatetime | None = Field(default=None, description="start_at < this")


def _out(s: Schedule) -> ScheduleOut:
    return ScheduleOut.model_validate(s, from_attributes=True)


@router.get(
    "/schedules",
    summary="List schedules",
    permission=Permission.READ,
    query=ScheduleQuery,
    response=Page[ScheduleOut],
)
async def list_schedules(call: Call, query: ScheduleQuery) -> Page[ScheduleOut]:
    stmt = select(Schedule).order_by(col(Schedule.start_at), col(Schedule.id))
    if query.status is not None:
        stmt = stmt.where(Schedule.status == query.status)
    if query.programme_id is not None:
        stmt = stmt.where(Schedule.programme_id == query.programme_id)
    if query.start_from is not None:
        stmt = stmt.where(col(Schedule.start_at) >= query.start_from)
    if query.start_to is not None:
        stmt = stmt.where(col(Schedule.start_at) < query.start_to)
    async with sessions_of(call)() as db:
        return await paginate(db, stmt, query, _out)


@router.get(
    "/schedules/{schedule_id:int}",
    summary="Read a schedule",
    permission=Permission.READ,
    response=ScheduleOut,
)
async def get_schedule(call: Call) -> Reply:
    async with sessions_of(call)() as db:
        schedule = await db.get(Schedule, call.path_int("schedule_id"))
    if schedule is None:
        raise not_found("schedule")
    out = _out(schedule)
    return Reply(out, etag=etag_of(out))


@router.post(
    "/schedules",
    summary="Schedule a programme once",
    permission=Permission.SCHEDULES_WRITE,
    body=ScheduleCreate,
    response=ScheduleOut,
    status=201,
    errors=(409,),
)
async def create_schedule(call: Call, body: ScheduleCreate) -> Reply:
    """With ``auth.approval_required``, the programme's current version must be approved
    (409 otherwise)."""
    if body.start_at <= datetime.now(UTC):
        raise field_error("start_at", "must be in the future")
    sessions = sessions_of(call)
    await require_approved(sessions, call.app[keys.SETTINGS], body.programme_id)
    try:
        schedule = await schedule_once(
            sessions, body.programme_id, body.start_at, body.targets.as_dict()
        )
    except StationError as exc:
        raise refused(exc) from None
    await call.app[keys.DISPATCHER].reconcile()
    await audit(
        call,
        "schedule.create",
        f"schedule:{schedule.id}",
        {"programme_id": body.programme_id, "start_at": body.start_at.isoformat()},
    )
    out = _out(schedule)
    return Reply(out, status=201, etag=etag_of(out))


@router.post(
    "/schedules/{schedule_id:int}/cancel",
    summary="Cancel a pending schedule",
    permission=Permission.SCHEDULES_WRITE,
    response=ScheduleOut,
    if_match=True,
    errors=(409,),
)
async def cancel_schedule(call: Call) -> Reply:
    """Send If-Match with the ETag you read: 412 if it changed since. 409 once dispatched."""
    schedule_id = call.path_int("schedule_id")
    async with sessions_of(call)() as db:
        schedule = await db.get(Schedule, schedule_id)
        if schedule is None:
            raise not_found("schedule")
        call.check_if_match(etag_of(_out(schedule)))
        if schedule.status != ScheduleStatus.PENDING:
            raise ApiError(
                409, f"schedule is {schedule.status}: only pending ones can be cancelled"
            )
        schedule.status = ScheduleStatus.CANCELLED
        db.add(schedule)
        audit_in(db, call, "schedule.cancel", f"schedule:{schedule_id}")
        await db.commit()
        await db.refresh(schedule)
    with contextlib.suppress(JobLookupError):
        call.app[keys.DISPATCHER].scheduler.remove_job(f"schedule-{schedule_id}")
    out = _out(schedule)
    return Reply(out, etag=etag_of(out))
