"""Schedules [lịch phát]: one-off and recurring broadcasts; create, edit, cancel; the week.

A body with ``recurrence`` goes through the rules of ``station/_schedules.py`` (the CLI's):
targets by zone/village/cluster, airtime quotas (422 naming the quota), same-priority
conflicts (409 listing them; resubmit with ``on_conflict: before|after``). A body with only
``start_at`` and targets ``all``/``clusters`` is the quick one-off of the console's "play now".
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal, Self

import sqlalchemy as sa
from aiohttp import BodyPartReader
from aiohttp.http_exceptions import HttpProcessingError
from apscheduler.jobstores.base import JobLookupError
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlalchemy.pool import NullPool
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from station import _keys as keys
from station import _schedules as rules
from station._services import Sessions, StationError, schedule_once
from station._week_csv import COLUMNS, PRIORITY_OF, WeekRow, import_week, parse_week_csv
from station.db import Schedule, ScheduleStatus, create_engine_for

from .._approval import require_approved
from .._audit import audit
from .._framework import ApiRouter, Call, ListQuery, Page, Reply, Upload, etag_of
from .._paging import paginate
from .._problems import ApiError, code_of, field_error, validation_problem
from .._roles import Permission
from ._common import ClusterId, Id, not_found, refused, sessions_of
from .villages import CSV_TYPES, MAX_CSV, _csv_text, _decode

router = ApiRouter("schedules", "When programmes go on air, and where")

PlaceId = ClusterId  # zone and village ids share the cluster id pattern
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
Kind = Literal["once", "daily", "weekly", "monthly"]
OnConflict = Literal["refuse", "before", "after"]
Misfire = Literal["default", "start_late", "skip"]
TimeOfDay = time  # a field below is called ``time``
SHOWN = 50  # clusters / overlaps listed in a problem or a calendar entry


class Targets(BaseModel):
    model_config = ConfigDict(extra="forbid")
    all: bool = Field(default=False, description="every cluster of the station")
    zones: list[PlaceId] = Field(default_factory=list, max_length=500)
    villages: list[PlaceId] = Field(default_factory=list, max_length=2000)
    clusters: list[ClusterId] = Field(default_factory=list, max_length=5000)

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        if self.all == bool(self.zones or self.villages or self.clusters):
            raise ValueError("give either all=true or zones, villages or clusters")
        return self

    def as_dict(self) -> dict[str, Any]:
        if self.all:
            return {"all": True}
        found = {"zones": self.zones, "villages": self.villages, "clusters": self.clusters}
        return {k: list(dict.fromkeys(v)) for k, v in found.items() if v}


class RecurrenceIn(BaseModel):
    """When: ``once`` at ``at``; ``daily``, ``weekly`` (``weekdays``) or ``monthly``
    (``day_of_month``) at ``time`` in the station's zone, between ``valid_from`` and
    ``valid_to`` (inclusive), except the ``exceptions`` dates."""

    model_config = ConfigDict(extra="forbid")
    kind: Kind
    at: AwareDatetime | None = Field(default=None, description="once: the start, with a zone")
    time: TimeOfDay | None = Field(default=None, description="recurring: HH:MM, station time")
    weekdays: list[Weekday] = Field(default_factory=list, max_length=7)
    day_of_month: int | None = Field(default=None, ge=1, le=31)
    valid_from: date | None = None
    valid_to: date | None = None
    exceptions: list[date] = Field(default_factory=list, max_length=366)

    @model_validator(mode="after")
    def _fits_kind(self) -> Self:
        if self.kind == "once":
            if self.at is None:
                raise ValueError("once needs at")
            if self.time or self.weekdays or self.day_of_month or self.exceptions:
                raise ValueError("once takes only at")
            return self
        if self.at is not None:
            raise ValueError("at is for once; recurring schedules take time")
        if self.time is None:
            raise ValueError(f"{self.kind} needs time (HH:MM)")
        if (self.kind == "weekly") != bool(self.weekdays):
            raise ValueError("weekdays go with kind weekly, and weekly needs them")
        if (self.kind == "monthly") != (self.day_of_month is not None):
            raise ValueError("day_of_month goes with kind monthly, and monthly needs it")
        if self.valid_from and self.valid_to and self.valid_to < self.valid_from:
            raise ValueError("valid_to is before valid_from")
        return self


class ScheduleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    programme_id: Id
    start_at: AwareDatetime | None = Field(
        default=None, description="a quick one-off: with a time zone, in the future"
    )
    recurrence: RecurrenceIn | None = Field(
        default=None, description="instead of start_at: checked for quotas and conflicts"
    )
    targets: Targets
    priority: str = Field(
        default="scheduled", pattern=r"^[a-z_]{1,32}$", description="a level of the ladder"
    )
    volume: int | None = Field(default=None, ge=0, le=100)
    misfire: Misfire = Field(
        default="default",
        description="the station was down at the start: its default grace, start late "
        "within misfire_late_min, or skip",
    )
    misfire_late_min: int | None = Field(default=None, ge=1, le=1440)
    on_conflict: OnConflict = Field(
        default="refuse",
        description="overlap with a schedule of the same priority: refuse (409), or accept "
        "and play before / after it",
    )

    @model_validator(mode="after")
    def _when(self) -> Self:
        if (self.start_at is None) == (self.recurrence is None):
            raise ValueError("give either start_at or recurrence")
        if (self.misfire == "start_late") != (self.misfire_late_min is not None):
            raise ValueError("misfire_late_min goes with misfire start_late, which needs it")
        return self

    def quick(self) -> bool:
        """A plain one-off as before recurrences (all or clusters, nothing else chosen)."""
        return (
            self.start_at is not None
            and not (self.targets.zones or self.targets.villages)
            and self.priority == "scheduled"
            and self.volume is None
            and self.misfire == "default"
            and self.on_conflict == "refuse"
        )


class ScheduleChange(BaseModel):
    """PATCH: the fields to change; ``recurrence`` and ``targets`` are replaced whole."""

    model_config = ConfigDict(extra="forbid")
    programme_id: Id | None = None
    start_at: AwareDatetime | None = None
    recurrence: RecurrenceIn | None = None
    targets: Targets | None = None
    priority: str | None = Field(default=None, pattern=r"^[a-z_]{1,32}$")
    volume: int | None = Field(default=None, ge=0, le=100)
    misfire: Misfire | None = None
    misfire_late_min: int | None = Field(default=None, ge=1, le=1440)
    on_conflict: OnConflict = "refuse"


class ScheduleOut(BaseModel):
    id: int
    programme_id: int
    start_at: datetime = Field(description="the start, or a recurring one's first occurrence")
    targets: dict[str, Any]
    status: ScheduleStatus
    created_at: datetime
    updated_at: datetime
    recurrence: Kind
    time_of_day: time | None
    weekdays: list[str]
    day_of_month: int | None
    valid_from: date | None
    valid_to: date | None
    exceptions: list[date]
    timezone: str
    priority: str
    rank: int = Field(description="order among accepted overlaps: lower goes first")
    volume: int | None
    misfire_grace_s: int | None = Field(description="None: the station's; 0: skip if late")
    note: str


class ScheduleQuery(ListQuery):
    status: ScheduleStatus | None = None
    programme_id: Id | None = None
    recurrence: Kind | None = None
    start_from: AwareDatetime | None = Field(default=None, description="start_at >= this")
    start_to: AwareDatetime | None = Field(default=None, description="start_at < this")


def _out(s: Schedule) -> ScheduleOut:
    return ScheduleOut(
        id=s.id or 0,
        programme_id=s.programme_id,
        start_at=s.start_at,
        targets=s.targets,
        status=s.status,
        created_at=s.created_at,
        updated_at=s.updated_at,
        recurrence=str(s.recurrence),  # type: ignore[arg-type]  # the enum's values
        time_of_day=s.time_of_day,
        weekdays=[d for d in s.weekdays.split(",") if d],
        day_of_month=s.day_of_month,
        valid_from=s.valid_from,
        valid_to=s.valid_to,
        exceptions=[date.fromisoformat(d) for d in s.exceptions],
        timezone=s.timezone,
        priority=s.priority,
        rank=s.rank,
        volume=s.volume,
        misfire_grace_s=s.misfire_grace_s,
        note=s.note,
    )


def _request(call: Call, body: ScheduleCreate) -> rules.ScheduleRequest:
    settings = call.app[keys.SETTINGS]
    tz = settings.station.timezone
    rec = body.recurrence
    try:
        if rec is None or rec.kind == "once":
            at = body.start_at if rec is None else rec.at
            assert at is not None  # the models' validators
            recurrence = rules.make_recurrence("once", at=at, timezone=tz)
        else:
            recurrence = rules.make_recurrence(
                rec.kind,
                time_of_day=rec.time,
                weekdays=",".join(rec.weekdays),
                day_of_month=rec.day_of_month,
                valid_from=rec.valid_from,
                valid_to=rec.valid_to,
                exceptions=rec.exceptions,
                timezone=tz,
            )
    except StationError as exc:
        raise field_error("recurrence", str(exc), code="recurrence_invalid") from None
    grace = {"default": None, "skip": 0}.get(body.misfire, (body.misfire_late_min or 0) * 60)
    if body.priority in settings.playout.newest_wins and Permission.EMERGENCY not in (
        call.user.permissions
    ):
        raise ApiError(
            403,
            f"priority {body.priority} needs the emergency permission",
            code="priority_needs_emergency",
            priority=body.priority,
        )
    return rules.ScheduleRequest(
        body.programme_id,
        body.targets.as_dict(),
        recurrence,
        priority=body.priority,
        volume=body.volume,
        misfire_grace_s=grace,
        on_conflict=body.on_conflict,
    )


def _shown(clusters: frozenset[str] | tuple[str, ...]) -> list[str]:
    return sorted(clusters)[:SHOWN]


def _refusal(exc: StationError) -> ApiError:
    """The rules' refusals as problems the console can act on."""
    if isinstance(exc, rules.ConflictRefused):
        return ApiError(
            409,
            str(exc),
            title="Schedule conflict",
            code=exc.code,
            choices=["before", "after"],
            conflicts=[
                {
                    "schedule_id": c.schedule_id,
                    "rank": c.rank,
                    "clusters": _shown(c.clusters),
                    "cluster_count": len(c.clusters),
                    "overlaps": [
                        {"start": a.isoformat(), "end": b.isoformat()}
                        for a, b in c.overlaps[:SHOWN]
                    ],
                    "overlap_count": len(c.overlaps),
                }
                for c in exc.conflicts
            ],
        )
    if isinstance(exc, rules.QuotaRefused):
        return ApiError(
            422,
            str(exc),
            title="Airtime quota exceeded",
            code=exc.code,
            violations=[
                {
                    "locality": v.locality,
                    "quota": v.rule,
                    "first": v.first,
                    "value": v.value,
                    "limit": v.limit,
                    "times": v.times,
                    "clusters": _shown(v.clusters),
                    "reason": v.describe(),
                }
                for v in exc.violations
            ],
        )
    if isinstance(exc, rules.NotEditable):
        return ApiError(409, str(exc), title="Not editable", code=exc.code, params=exc.params)
    return refused(exc)


def _accepted(result: rules.ScheduleResult) -> list[int]:
    return [c.schedule_id for c in result.conflicts]


async def _after_change(call: Call, schedule_id: int | None) -> None:
    with contextlib.suppress(JobLookupError):
        call.app[keys.DISPATCHER].scheduler.remove_job(f"schedule-{schedule_id}")
    await call.app[keys.DISPATCHER].reconcile()


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
    if query.recurrence is not None:
        stmt = stmt.where(col(Schedule.recurrence) == query.recurrence)
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
    summary="Schedule a programme once or recurring",
    permission=Permission.SCHEDULES_WRITE,
    body=ScheduleCreate,
    response=ScheduleOut,
    status=201,
    errors=(409,),
)
async def create_schedule(call: Call, body: ScheduleCreate) -> Reply:
    """``recurrence`` (once/daily/weekly/monthly): quota refusals are 422 with
    ``violations``; overlaps with schedules of the same priority are 409 with ``conflicts``:
    send again with ``on_conflict`` ``before`` or ``after`` to accept in that order.
    With ``auth.approval_required``, the programme's current version must be approved (409
    "Approval required" otherwise)."""
    now = datetime.now(UTC)
    start = body.start_at or (body.recurrence.at if body.recurrence else None)
    if start is not None and start <= now:
        field = "start_at" if body.start_at else "recurrence.at"
        raise field_error(field, "must be in the future", code="schedule_in_past")
    sessions = sessions_of(call)
    settings = call.app[keys.SETTINGS]
    await require_approved(sessions, settings, body.programme_id)
    accepted: list[int] = []
    try:
        if body.quick():
            assert body.start_at is not None
            schedule = await schedule_once(
                sessions, body.programme_id, body.start_at, body.targets.as_dict()
            )
        else:
            result = await rules.create_schedule(sessions, settings, _request(call, body), now)
            schedule, accepted = result.schedule, _accepted(result)
    except StationError as exc:
        raise _refusal(exc) from None
    await call.app[keys.DISPATCHER].reconcile()
    details: dict[str, Any] = {
        "programme_id": body.programme_id,
        "recurrence": str(schedule.recurrence),
        "start_at": schedule.start_at.isoformat(),
        "targets": schedule.targets,
    }
    if accepted:
        details |= {"on_conflict": body.on_conflict, "overlaps": accepted}
    await audit(call, "schedule.create", f"schedule:{schedule.id}", details)
    out = _out(schedule)
    return Reply(out, status=201, etag=etag_of(out))


async def _replace(call: Call, schedule_id: int, body: ScheduleCreate, action: str) -> Reply:
    now = datetime.now(UTC)
    start = body.start_at or (body.recurrence.at if body.recurrence else None)
    if start is not None and start <= now:
        field = "start_at" if body.start_at else "recurrence.at"
        raise field_error(field, "must be in the future", code="schedule_in_past")
    sessions = sessions_of(call)
    settings = call.app[keys.SETTINGS]
    await require_approved(sessions, settings, body.programme_id)
    request = _request(call, body)
    try:
        result = await rules.update_schedule(
            sessions,
            settings,
            schedule_id,
            request,
            now,
            check=lambda row: call.check_if_match(etag_of(_out(row))),
        )
    except StationError as exc:
        raise _refusal(exc) from None
    await _after_change(call, schedule_id)
    details: dict[str, Any] = {
        "programme_id": body.programme_id,
        "recurrence": str(result.schedule.recurrence),
        "start_at": result.schedule.start_at.isoformat(),
        "targets": result.schedule.targets,
    }
    if result.conflicts:
        details |= {"on_conflict": body.on_conflict, "overlaps": _accepted(result)}
    await audit(call, action, f"schedule:{schedule_id}", details)
    out = _out(result.schedule)
    return Reply(out, etag=etag_of(out))


async def _existing(call: Call, schedule_id: int) -> Schedule:
    async with sessions_of(call)() as db:
        schedule = await db.get(Schedule, schedule_id)
    if schedule is None:
        raise not_found("schedule")
    return schedule


@router.put(
    "/schedules/{schedule_id:int}",
    summary="Replace a pending or active schedule",
    permission=Permission.SCHEDULES_WRITE,
    body=ScheduleCreate,
    response=ScheduleOut,
    if_match=True,
    errors=(409,),
)
async def replace_schedule(call: Call, body: ScheduleCreate) -> Reply:
    """The same body and checks as creating (quotas 422, conflicts 409); send If-Match with
    the ETag you read (412 if it changed since). 409 once it is done, missed or cancelled."""
    schedule_id = call.path_int("schedule_id")
    await _existing(call, schedule_id)
    return await _replace(call, schedule_id, body, "schedule.update")


@router.patch(
    "/schedules/{schedule_id:int}",
    summary="Change some fields of a pending or active schedule",
    permission=Permission.SCHEDULES_WRITE,
    body=ScheduleChange,
    response=ScheduleOut,
    if_match=True,
    errors=(409,),
)
async def change_schedule(call: Call, body: ScheduleChange) -> Reply:
    """Fields not sent keep their value; ``start_at`` or ``recurrence`` replaces the timing.
    Checked like a new schedule; If-Match as for PUT."""
    schedule_id = call.path_int("schedule_id")
    row = await _existing(call, schedule_id)
    merged: dict[str, Any] = _as_body(row)
    changes = body.model_dump(exclude_unset=True, mode="json")
    if "start_at" in changes or "recurrence" in changes:
        merged.pop("start_at", None)
        merged.pop("recurrence", None)
    if "misfire" in changes and changes["misfire"] != "start_late":
        merged.pop("misfire_late_min", None)
    merged.update({k: v for k, v in changes.items() if v is not None})
    merged["on_conflict"] = body.on_conflict
    try:
        full = ScheduleCreate.model_validate(merged)
    except ValidationError as exc:
        raise validation_problem(exc) from None
    return await _replace(call, schedule_id, full, "schedule.update")


def _as_body(row: Schedule) -> dict[str, Any]:
    """A stored schedule as the body that would make it."""
    out = _out(row)
    body: dict[str, Any] = {
        "programme_id": row.programme_id,
        "targets": row.targets,
        "priority": row.priority,
        "volume": row.volume,
    }
    if row.misfire_grace_s == 0:
        body["misfire"] = "skip"
    elif row.misfire_grace_s is not None:
        body |= {"misfire": "start_late", "misfire_late_min": max(1, row.misfire_grace_s // 60)}
    if out.recurrence == "once":
        body["recurrence"] = {"kind": "once", "at": row.start_at.isoformat()}
    else:
        body["recurrence"] = {
            "kind": out.recurrence,
            "time": out.time_of_day.isoformat() if out.time_of_day else None,
            "weekdays": out.weekdays,
            "day_of_month": out.day_of_month,
            "valid_from": out.valid_from.isoformat() if out.valid_from else None,
            "valid_to": out.valid_to.isoformat() if out.valid_to else None,
            "exceptions": [d.isoformat() for d in out.exceptions],
        }
    return body


async def _cancel(call: Call) -> Reply:
    schedule_id = call.path_int("schedule_id")
    await _existing(call, schedule_id)
    try:
        schedule = await rules.cancel_schedule(
            sessions_of(call),
            schedule_id,
            check=lambda row: call.check_if_match(etag_of(_out(row))),
        )
    except rules.NotEditable as exc:
        raise ApiError(
            409,
            f"{exc}: only pending or active ones can be cancelled",
            code=exc.code,
            params=exc.params,
        ) from None
    await audit(
        call, "schedule.cancel", f"schedule:{schedule_id}", {"recurrence": str(schedule.recurrence)}
    )
    await _after_change(call, schedule_id)
    out = _out(schedule)
    return Reply(out, etag=etag_of(out))


@router.post(
    "/schedules/{schedule_id:int}/cancel",
    summary="Cancel a pending or recurring schedule",
    permission=Permission.SCHEDULES_WRITE,
    response=ScheduleOut,
    if_match=True,
    errors=(409,),
)
async def cancel_schedule(call: Call) -> Reply:
    """Send If-Match with the ETag you read: 412 if it changed since. A recurring schedule
    stops airing (sessions not yet on air are withdrawn); what already played stays in proof
    of play. 409 once dispatched, done, missed or cancelled."""
    return await _cancel(call)


@router.delete(
    "/schedules/{schedule_id:int}",
    summary="Cancel a schedule (same as POST .../cancel)",
    permission=Permission.SCHEDULES_WRITE,
    response=ScheduleOut,
    if_match=True,
    errors=(409,),
)
async def delete_schedule(call: Call) -> Reply:
    """The row stays (status cancelled) for history and reports."""
    return await _cancel(call)


# --------------------------------------------------------------------------- the week


class WeekQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    week: date | None = Field(default=None, description="a day of the week (default: today)")
    days: int = Field(default=7, ge=1, le=7, description="from the Monday of that week")
    zone: PlaceId | None = None
    village: PlaceId | None = None
    cluster: ClusterId | None = None

    @model_validator(mode="after")
    def _one_place(self) -> Self:
        if sum(x is not None for x in (self.zone, self.village, self.cluster)) > 1:
            raise ValueError("give at most one of zone, village, cluster")
        return self

    def targets(self) -> dict[str, Any] | None:
        if self.zone:
            return {"zones": [self.zone]}
        if self.village:
            return {"villages": [self.village]}
        if self.cluster:
            return {"clusters": [self.cluster]}
        return None

    def window(self, call: Call) -> tuple[datetime, datetime]:
        tz = call.app[keys.SETTINGS].station.tzinfo
        day = self.week or datetime.now(tz).date()
        monday = datetime.combine(day - timedelta(days=day.weekday()), time(), tz)
        return monday, monday + timedelta(days=self.days)


class AiringOut(BaseModel):
    schedule_id: int
    title: str
    start: datetime
    end: datetime
    priority: str
    rank: int
    cluster_count: int
    clusters: list[str] = Field(description=f"at most {SHOWN}")
    waiting_approval: bool = Field(
        default=False, description="auth.approval_required and not approved: does not air"
    )


class ClashOut(BaseModel):
    schedule_ids: list[int]
    start: datetime
    end: datetime
    cluster_count: int
    clusters: list[str] = Field(description=f"at most {SHOWN}")
    first: int | None = Field(description="the one that goes first; None: no order chosen")


class QuotaUseOut(BaseModel):
    locality: str
    day: date
    sessions: int
    max_sessions: int | None
    longest_minutes: float
    max_minutes: float | None
    days_in_week: int
    max_days: int | None


class Calendar(BaseModel):
    start: datetime
    end: datetime
    cluster_count: int
    airings: list[AiringOut]
    clashes: list[ClashOut]
    quotas: list[QuotaUseOut]


class Quotas(BaseModel):
    start: datetime
    end: datetime
    quotas: list[QuotaUseOut]


async def _week(call: Call, query: WeekQuery) -> rules.WeekView:
    start, end = query.window(call)
    try:
        return await rules.week_view(
            sessions_of(call), call.app[keys.SETTINGS], query.targets(), start, end
        )
    except StationError as exc:
        raise refused(exc) from None


def _quotas(view: rules.WeekView) -> list[QuotaUseOut]:
    return [QuotaUseOut.model_validate(u, from_attributes=True) for u in view.usage]


@router.get(
    "/calendar",
    summary="The week: every occurrence, same-priority overlaps and airtime use",
    permission=Permission.READ,
    query=WeekQuery,
    response=Calendar,
)
async def calendar(call: Call, query: WeekQuery) -> Calendar:
    """Recurring schedules expanded into their occurrences (one-offs too), on all clusters or
    those of a zone, village or cluster; ``clashes`` are overlaps of one priority on shared
    clusters (``first`` says the order the operator chose); ``quotas`` is each locality's use
    per day (sessions, longest session) and days used in the week, against its limits."""
    view = await _week(call, query)
    return Calendar(
        start=view.start,
        end=view.end,
        cluster_count=len(view.clusters),
        airings=[
            AiringOut(
                schedule_id=a.schedule_id,
                title=a.title,
                start=a.start,
                end=a.end,
                priority=a.priority,
                rank=a.rank,
                cluster_count=len(a.clusters),
                clusters=_shown(a.clusters),
                waiting_approval=a.waiting_approval,
            )
            for a in view.airings
        ],
        clashes=[
            ClashOut(
                schedule_ids=list(c.schedule_ids),
                start=c.start,
                end=c.end,
                cluster_count=len(c.clusters),
                clusters=_shown(c.clusters),
                first=c.first,
            )
            for c in view.clashes
        ],
        quotas=_quotas(view),
    )


@router.get(
    "/quotas",
    summary="Airtime use per locality and day against its quota",
    permission=Permission.READ,
    query=WeekQuery,
    response=Quotas,
)
async def quotas(call: Call, query: WeekQuery) -> Quotas:
    view = await _week(call, query)
    return Quotas(start=view.start, end=view.end, quotas=_quotas(view))


class SlotOut(BaseModel):
    start: datetime
    end: datetime
    schedule_id: int
    title: str
    priority: str
    how: Literal["start", "preempt", "resume"]
    other_schedule_id: int | None = Field(description="the schedule it cut in over")
    item: int = Field(description="the item (from 0) the stretch begins with")
    offset_s: float = Field(description="where in that item")


class EventOut(BaseModel):
    at: datetime
    action: str = Field(description="queue, ignore, interrupted, skipped, ...")
    schedule_id: int | None
    other_schedule_id: int | None
    expected: datetime | None
    reason: str


class TimelineGroup(BaseModel):
    clusters: list[str] = Field(description="clusters that hear the same")
    slots: list[SlotOut]
    events: list[EventOut]


class Timeline(BaseModel):
    start: datetime
    end: datetime
    groups: list[TimelineGroup]


@router.get(
    "/timeline",
    summary="What plays when on a zone, village or cluster, and why",
    permission=Permission.READ,
    query=WeekQuery,
    response=Timeline,
)
async def get_timeline(call: Call, query: WeekQuery) -> Timeline:
    """The priority rules run over every occurrence: each stretch on air (how it got there:
    start, preempt or resume) and each decision (queued behind, ignored, interrupted,
    skipped). Clusters hearing the same are one group."""
    start, end = query.window(call)
    settings = call.app[keys.SETTINGS]
    try:
        found = await rules.timeline_groups(
            sessions_of(call), settings, query.targets() or {"all": True}, start, end
        )
    except StationError as exc:
        raise refused(exc) from None
    # Groups whose schedules differ may still hear the same in this window: merge them.
    grouped: dict[tuple[Any, ...], list[str]] = {}
    names: dict[str, int] = {}
    for members, line in found:
        grouped.setdefault((line.slots, line.events), []).extend(members)
        names |= line.schedule_of
    groups = []
    for (slots, events), clusters in grouped.items():
        groups.append(
            TimelineGroup(
                clusters=sorted(clusters),
                slots=[
                    SlotOut(
                        start=s.start,
                        end=s.end,
                        schedule_id=s.schedule_id,
                        title=s.title,
                        priority=s.priority,
                        how=str(s.how),  # type: ignore[arg-type]  # start, preempt, resume
                        other_schedule_id=names.get(s.other) if s.other else None,
                        item=s.position.item,
                        offset_s=s.position.offset.total_seconds(),
                    )
                    for s in slots
                ],
                events=[
                    EventOut(
                        at=e.at,
                        action=str(e.action),
                        schedule_id=names.get(e.session_id),
                        other_schedule_id=names.get(e.other) if e.other else None,
                        expected=e.expected,
                        reason=e.reason,
                    )
                    for e in events
                ],
            )
        )
    return Timeline(start=start, end=end, groups=groups)


# --------------------------------------------------------------------------- week CSV import


class ScheduleImportQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dry_run: bool = Field(default=False, description="check every row, then write nothing")
    valid_from: date | None = Field(default=None, description="first day the schedules run")
    on_conflict: OnConflict = Field(
        default="refuse", description="refuse rows that overlap, or place them before/after"
    )


class ScheduleImportRow(BaseModel):
    line: int = Field(description="line of the CSV (the header is line 1)")
    title: str
    programme_id: int | None = Field(description="made (on a dry run: would be made)")
    schedule_id: int | None
    error: str | None = Field(description="why the row is refused (English)")
    code: str | None = Field(
        default=None, description="the refusal's problem code (see Problem.code), for clients"
    )
    params: dict[str, Any] = Field(default_factory=dict, description="the code's parameters")


class ScheduleImportOut(BaseModel):
    dry_run: bool
    applied: bool = Field(description="true: every row was written, in one transaction")
    schedules: list[int]
    errors: int
    rows: list[ScheduleImportRow]


_LINE_PREFIX = re.compile(r"^week plan line \d+( \([^)]*\))?: ")


def _refused_row(line: int, title: str, exc: StationError | ApiError) -> ScheduleImportRow:
    """A refused row: the English reason without the line prefix, its code and parameters."""
    if isinstance(exc, ApiError):
        text, code, params = exc.detail, exc.code, dict(exc.extra)
    else:
        text, code, params = str(exc), code_of(exc.code), dict(exc.params)
    return ScheduleImportRow(
        line=line,
        title=title,
        programme_id=None,
        schedule_id=None,
        error=_LINE_PREFIX.sub("", text),
        code=code,
        params=params,
    )


async def _week_upload(call: Call) -> tuple[str, dict[str, str]]:
    """The CSV (raw text/csv body, or the multipart ``file`` part) and the relay stream URLs
    (multipart ``relay`` parts, ``TITLE=URL``, one per part)."""
    if call.request.content_type in CSV_TYPES:
        return await _csv_text(call), {}
    if not call.request.content_type.startswith("multipart/form-data"):
        raise ApiError(415, "send text/csv, or multipart/form-data with a 'file' part",
                       title="Unsupported Media Type", code="file_part_required")  # fmt: skip
    text: str | None = None
    relays: dict[str, str] = {}
    try:
        reader = await call.request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "file" and text is None:
                text = _decode(bytes(await part.read(decode=False))[: MAX_CSV + 1])
                if len(text.encode()) > MAX_CSV:
                    raise ApiError(
                        413, "CSV over 2 MB", title="Content Too Large", code="upload_too_large",
                        max_mb=MAX_CSV // (1024 * 1024),
                    )  # fmt: skip
            elif part.name == "relay":
                title, sep, url = (await part.text()).partition("=")
                if not sep or not url.strip().startswith(("http://", "https://")):
                    raise field_error("relay", "use TITLE=http(s)://stream-url")
                relays[title.strip()] = url.strip()
            else:
                await part.release()
    except (HttpProcessingError, ValueError, AssertionError) as exc:
        raise ApiError(
            400, f"malformed multipart body: {exc}", title="Bad Request", code="multipart_malformed"
        ) from None
    if text is None:
        raise field_error("file", "a 'file' part is required", code="file_part_required")
    return text, relays


def _week_rows(text: str) -> list[tuple[int, WeekRow | StationError]]:
    """Each data line parsed on its own: (line, row) or (line, why it is refused)."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    if tuple(reader.fieldnames or ()) != COLUMNS:
        raise field_error("file", f"the header must be {','.join(COLUMNS)}", code="csv_invalid")
    out: list[tuple[int, WeekRow | StationError]] = []
    for line, raw in enumerate(reader, start=2):
        if None in raw or any(v is None for v in raw.values()):
            wrong = StationError("wrong number of columns", code="csv_row_columns", line=line)
            out.append((line, wrong))
            continue
        one = io.StringIO()
        writer = csv.DictWriter(one, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerow(raw)
        try:
            out.append((line, dataclasses.replace(parse_week_csv(one.getvalue())[0], line=line)))
        except StationError as exc:
            exc.params["line"] = line  # parsed alone: the file's line, not the copy's
            out.append((line, exc))
    return out


@dataclasses.dataclass
class _Importer:
    call: Call
    sessions: Sessions
    query: ScheduleImportQuery
    relays: dict[str, str]
    now: datetime

    async def row(self, line: int, parsed: WeekRow | StationError) -> ScheduleImportRow:
        if isinstance(parsed, StationError):
            return _refused_row(line, "", parsed)
        try:
            result = await self._one(parsed)
        except (StationError, ApiError) as exc:
            return _refused_row(line, parsed.title, exc)
        made = result.schedule
        return ScheduleImportRow(
            line=line,
            title=parsed.title,
            programme_id=made.programme_id,
            schedule_id=made.id,
            error=None,
        )

    async def _one(self, row: WeekRow) -> rules.ScheduleResult:
        settings = self.call.app[keys.SETTINGS]
        priority = PRIORITY_OF[row.kind]
        if priority in settings.playout.newest_wins and (
            Permission.EMERGENCY not in self.call.user.permissions
        ):
            raise StationError(f"priority {priority} needs the emergency permission",
                               code="priority_needs_emergency", priority=priority)  # fmt: skip
        results = await import_week(self.sessions, settings, [row], self.now,
                                    relay_urls=self.relays, valid_from=self.query.valid_from,
                                    on_conflict=self.query.on_conflict)  # fmt: skip
        # The import made a new programme: the approval rule of POST /schedules applies to it.
        await require_approved(self.sessions, settings, results[0].schedule.programme_id)
        return results[0]


def _driver_begins_nothing(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # SAVEPOINTs need the driver out of the way


def _begin_immediate(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


@contextlib.asynccontextmanager
async def _one_transaction(call: Call) -> AsyncIterator[tuple[Sessions, list[bool]]]:
    """Sessions whose commits are savepoints of one transaction, committed at the end only
    when the caller sets ``keep[0]`` (else rolled back): all or nothing.

    SQLite: a connection of its own that takes the write lock first (BEGIN IMMEDIATE), so the
    import never fails halfway on a busy database; other writers wait (a week plan is small).
    """
    engine = call.app[keys.ENGINE]
    own: AsyncEngine | None = None
    if engine.dialect.name == "sqlite":
        database = make_url(call.app[keys.SETTINGS].database.url).database
        if not database or database == ":memory:" or database.startswith("file:"):
            raise ApiError(
                409,
                "the schedule import needs a database file or PostgreSQL",
                code="import_needs_database",
            )
        own = create_engine_for(call.app[keys.SETTINGS].database.url, poolclass=NullPool)
        sa.event.listen(own.sync_engine, "connect", _driver_begins_nothing)
        sa.event.listen(own.sync_engine, "begin", _begin_immediate)
        engine = own
    keep = [False]
    try:
        async with engine.connect() as conn:
            outer = await conn.begin()
            sessions = async_sessionmaker(
                bind=conn,
                class_=AsyncSession,
                expire_on_commit=False,
                join_transaction_mode="create_savepoint",
            )
            try:
                yield sessions, keep
            finally:
                await (outer.commit() if keep[0] else outer.rollback())
    finally:
        if own is not None:
            await own.dispose()


@router.post("/schedules/import",
             summary="Import a week plan (CSV): one programme and weekly schedule per row",
             permission=Permission.SCHEDULES_WRITE, query=ScheduleImportQuery,
             upload=Upload(file_type="text/csv", raw_types=CSV_TYPES),
             response=ScheduleImportOut, errors=(409, 413, 415))  # fmt: skip
async def import_schedules(call: Call, query: ScheduleImportQuery) -> ScheduleImportOut:
    """The CLI's ``loaxa schedule import`` (columns: docs/scheduling.md). The CSV is the raw
    body (``text/csv``) or the ``file`` part of a multipart body, whose ``relay`` parts
    (``TITLE=URL``) give the relay rows their streams. Every row is checked like a new
    schedule (targets, quotas, conflicts, approval, priority), each seeing the rows before it.
    ``dry_run=true``: the per-row report, nothing written. Otherwise all or nothing: any
    refused row gives 422 with the same ``rows`` and writes nothing."""
    text, relays = await _week_upload(call)
    parsed = _week_rows(text)
    if not parsed:
        raise field_error("file", "the week plan has no rows", code="week_plan_empty")
    async with _one_transaction(call) as (sessions, keep):
        importer = _Importer(call, sessions, query, relays, datetime.now(UTC))
        rows = [await importer.row(line, row) for line, row in parsed]
        errors = sum(r.error is not None for r in rows)
        keep[0] = not query.dry_run and errors == 0
    made = [r.schedule_id for r in rows if r.schedule_id is not None]
    out = ScheduleImportOut(dry_run=query.dry_run, applied=keep[0], schedules=made,
                            errors=errors, rows=rows)  # fmt: skip
    if query.dry_run:
        return out
    if errors:
        raise ApiError(422, f"{errors} of {len(rows)} rows refused: nothing was imported",
                       title="Import refused", code="week_plan_refused", refused_rows=errors,
                       total_rows=len(rows), rows=[r.model_dump() for r in rows])  # fmt: skip

    await call.app[keys.DISPATCHER].reconcile()
    await audit(call, "schedule.import", "import:schedules", {"schedules": made})
    return out
