"""Programmes and recurring schedules: validation, airtime quotas, conflicts, timeline.

The rules live in ``scheduler`` (pure); this module loads rows, resolves targets, calls the
rules and writes. A one-off schedule is stored ``pending`` (the dispatcher plays it); a
recurring one ``active`` (its occurrences are dispatched once the dispatcher expands rules).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Literal, cast

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from scheduler import (
    ClusterTimeline,
    Conflict,
    PriorityLadder,
    Quota,
    Recurrence,
    RecurrenceKind,
    ScheduleRule,
    check_quotas,
    find_conflicts,
    occurrences,
    parse_weekdays,
    timeline,
)
from station._programmes import programme_specs
from station._services import Sessions, StationError
from station._targets import Directory, check_targets
from station.config import PlayoutSection, Settings
from station.db import (
    Schedule,
    ScheduleStatus,
)

OnConflict = Literal["refuse", "before", "after"]
LIVE_STATUSES = (ScheduleStatus.PENDING, ScheduleStatus.ACTIVE, ScheduleStatus.DISPATCHED)
_NEW_ID = -1  # a schedule being created has no id yet; never equal to a stored one


# --------------------------------------------------------------------------- recurrence


def make_recurrence(
    kind: RecurrenceKind,
    *,
    at: datetime | None = None,
    time_of_day: time | None = None,
    weekdays: str = "",
    day_of_month: int | None = None,
    valid_from: date | None = None,
    valid_to: date | None = None,
    exceptions: Iterable[date] = (),
    timezone: str = "Asia/Ho_Chi_Minh",
) -> Recurrence:
    """A validated ``Recurrence``; StationError with the reason otherwise."""
    try:
        days = parse_weekdays(weekdays) if weekdays else frozenset()
        return Recurrence(
            kind,
            at=at,
            time_of_day=time_of_day,
            weekdays=days,
            day_of_month=day_of_month,
            valid_from=valid_from,
            valid_to=valid_to,
            exceptions=frozenset(exceptions),
            timezone=timezone,
        )
    except ValueError as exc:
        raise StationError(str(exc)) from None


def recurrence_of(row: Schedule) -> Recurrence:
    if row.recurrence == "once":
        return make_recurrence("once", at=row.start_at, timezone=row.timezone)
    return make_recurrence(
        cast(RecurrenceKind, str(row.recurrence)),  # the enum's values are the Literal's
        time_of_day=row.time_of_day,
        weekdays=row.weekdays,
        day_of_month=row.day_of_month,
        valid_from=row.valid_from,
        valid_to=row.valid_to,
        exceptions=[date.fromisoformat(d) for d in row.exceptions],
        timezone=row.timezone,
    )


# --------------------------------------------------------------------------- schedules


@dataclass(frozen=True, slots=True)
class ScheduleRequest:
    programme_id: int
    targets: dict[str, Any]
    recurrence: Recurrence
    priority: str = "scheduled"
    volume: int | None = None
    misfire_grace_s: int | None = None  # None: the station's scheduler.misfire_grace_s
    on_conflict: OnConflict = "refuse"


@dataclass(frozen=True, slots=True)
class ScheduleResult:
    schedule: Schedule
    conflicts: list[Conflict] = field(default_factory=list)  # accepted, with the stated order


def ladder_of(playout: PlayoutSection) -> PriorityLadder:
    return PriorityLadder(dict(playout.priorities), frozenset(playout.newest_wins))


async def create_schedule(
    sessions: Sessions, settings: Settings, request: ScheduleRequest, now: datetime
) -> ScheduleResult:
    """Validate, check quotas and conflicts, then store. StationError says why not."""
    async with sessions() as db:
        row = Schedule(programme_id=request.programme_id, start_at=now)
        result = await _check_and_fill(db, settings, row, request, now)
        db.add(row)
        await db.commit()
        await db.refresh(row)
        return ScheduleResult(row, result)


async def update_schedule(
    sessions: Sessions,
    settings: Settings,
    schedule_id: int,
    request: ScheduleRequest,
    now: datetime,
) -> ScheduleResult:
    async with sessions() as db:
        row = await _editable(db, schedule_id)
        result = await _check_and_fill(db, settings, row, request, now)
        db.add(row)
        await db.commit()
        await db.refresh(row)
        return ScheduleResult(row, result)


async def cancel_schedule(sessions: Sessions, schedule_id: int) -> Schedule:
    async with sessions() as db:
        row = await _editable(db, schedule_id)
        row.status = ScheduleStatus.CANCELLED
        db.add(row)
        await db.commit()
        await db.refresh(row)
        return row


async def list_schedules(sessions: Sessions, *, everything: bool = False) -> list[Schedule]:
    query = select(Schedule).order_by(col(Schedule.start_at), col(Schedule.id))
    if not everything:
        query = query.where(col(Schedule.status).in_(LIVE_STATUSES))
    async with sessions() as db:
        return list((await db.exec(query)).all())


async def schedule_timeline(
    sessions: Sessions,
    settings: Settings,
    targets: dict[str, Any],
    window_start: datetime,
    window_end: datetime,
) -> dict[str, ClusterTimeline]:
    """What plays when on the clusters of ``targets`` (e.g. {"zones": ["Z1"]})."""
    async with sessions() as db:
        directory = await Directory.load(db)
        clusters = directory.resolve(targets)
        rules = await _rules(db, directory, settings, exclude=None)
    return timeline(rules, clusters, window_start, window_end, ladder_of(settings.playout))


async def _editable(db: AsyncSession, schedule_id: int) -> Schedule:
    row = await db.get(Schedule, schedule_id)
    if row is None:
        raise StationError(f"unknown schedule {schedule_id}")
    if row.status not in (ScheduleStatus.PENDING, ScheduleStatus.ACTIVE):
        raise StationError(f"schedule {schedule_id} is {row.status}: it can no longer change")
    return row


async def _check_and_fill(
    db: AsyncSession,
    settings: Settings,
    row: Schedule,
    request: ScheduleRequest,
    now: datetime,
) -> list[Conflict]:
    playout = settings.playout
    try:
        ladder_of(playout).level(request.priority)
    except ValueError as exc:
        raise StationError(str(exc)) from None
    check_targets(request.targets)
    directory = await Directory.load(db)
    clusters = directory.resolve(request.targets)
    spec = (await programme_specs(db, [request.programme_id])).get(request.programme_id)
    if spec is None:
        raise StationError(f"unknown programme {request.programme_id} (or it has no items)")
    grace = request.misfire_grace_s
    if grace is None:
        grace = round(settings.scheduler.misfire_grace_s)
    try:
        rule = ScheduleRule(
            row.id or _NEW_ID,
            spec,
            request.recurrence,
            clusters,
            request.priority,
            misfire_grace=timedelta(seconds=grace),
            volume=request.volume,
        )
    except ValueError as exc:
        raise StationError(str(exc)) from None
    first = _first_start(rule, now)
    existing = await _rules(db, directory, settings, exclude=row.id)
    window = _check_window(first, rule, playout)
    _refuse_over_quota(rule, existing, directory, playout, window)
    conflicts = find_conflicts(rule, existing, *window)
    rank, note = _order(conflicts, request.on_conflict)
    _fill(row, request, first, rank, note)
    if request.recurrence.kind == "once" and not request.targets.get("all"):
        # The one-off dispatcher resolves only "all" and "clusters" (station/_playout_store.py):
        # store the clusters, so a zone or village broadcast is not lost as "nothing to play".
        row.targets = {"clusters": sorted(clusters)}
        chosen = "; ".join(f"{k} {', '.join(v)}" for k, v in request.targets.items() if v)
        row.note = "; ".join(n for n in (note, f"targets: {chosen}") if n)
    return conflicts


def _first_start(rule: ScheduleRule, now: datetime) -> datetime:
    rec = rule.recurrence
    if rec.at is not None:
        if rec.at < now:
            raise StationError(f"the start time {rec.at.isoformat()} is in the past")
        return rec.at
    if rec.valid_from is not None:  # no need to walk the days before it starts
        now = max(now, datetime.combine(rec.valid_from, time(), rec.tz))
    # A short look first: most schedules air within days, expanding years costs more.
    for days in (40, 800):
        found = occurrences(rule, now, now + timedelta(days=days))
        if found:
            return found[0].start
    raise StationError("this schedule never airs after now: check the dates and exceptions")


def _check_window(
    first: datetime, rule: ScheduleRule, playout: PlayoutSection
) -> tuple[datetime, datetime]:
    """Whole local weeks from the week of the first broadcast, so days-per-week counts are
    whole."""
    tz = rule.recurrence.tz
    local = first.astimezone(tz)
    monday = datetime.combine(local.date() - timedelta(days=local.weekday()), time(), tz)
    return monday, monday + timedelta(weeks=playout.check_weeks)


def _refuse_over_quota(
    rule: ScheduleRule,
    existing: list[ScheduleRule],
    directory: Directory,
    playout: PlayoutSection,
    window: tuple[datetime, datetime],
) -> None:
    quotas = {
        name: Quota(
            q.max_sessions_per_day, q.max_minutes_per_session, q.max_days_per_week, q.count_relays
        )
        for name, q in playout.localities.items()
    }
    violations = check_quotas(
        rule,
        existing,
        localities={c: directory.locality(c, playout) for c in rule.clusters},
        quotas=quotas,
        window_start=window[0],
        window_end=window[1],
        session_gap=timedelta(minutes=playout.session_gap_min),
        exempt=frozenset(playout.quota_exempt),
    )
    if violations:
        lines = "\n  ".join(v.describe() for v in violations)
        raise StationError(f"refused: the schedule breaks the airtime quota\n  {lines}")


def _order(conflicts: list[Conflict], on_conflict: OnConflict) -> tuple[int, str]:
    if not conflicts:
        return 0, ""
    ids = ", ".join(str(c.schedule_id) for c in conflicts)
    if on_conflict == "refuse":
        lines = "\n  ".join(c.describe() for c in conflicts)
        raise StationError(
            f"refused: overlaps schedules of the same priority\n  {lines}\n"
            "choose an order to accept it: --on-conflict before|after"
        )
    ranks = [c.rank for c in conflicts]
    if on_conflict == "before":
        return min(ranks) - 1, f"accepted overlap with {ids}: plays before"
    return max(ranks) + 1, f"accepted overlap with {ids}: plays after"


def _fill(row: Schedule, request: ScheduleRequest, first: datetime, rank: int, note: str) -> None:
    rec = request.recurrence
    once = rec.kind == "once"
    row.programme_id = request.programme_id
    row.targets = dict(request.targets)
    row.start_at = first
    row.status = ScheduleStatus.PENDING if once else ScheduleStatus.ACTIVE
    row.recurrence = rec.kind  # type: ignore[assignment]  # stored as the enum's value
    row.time_of_day = rec.time_of_day
    row.weekdays = ",".join(
        ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[d] for d in sorted(rec.weekdays)
    )
    row.day_of_month = rec.day_of_month
    row.valid_from, row.valid_to = rec.valid_from, rec.valid_to
    row.exceptions = sorted(d.isoformat() for d in rec.exceptions)
    row.timezone = rec.timezone
    row.priority = request.priority
    row.rank = rank
    row.volume = request.volume
    row.misfire_grace_s = request.misfire_grace_s
    row.note = note


async def _rules(
    db: AsyncSession, directory: Directory, settings: Settings, *, exclude: int | None
) -> list[ScheduleRule]:
    """Every schedule that may still air, as scheduler rules (targets resolved now)."""
    rows = (await db.exec(select(Schedule).where(col(Schedule.status).in_(LIVE_STATUSES)))).all()
    rows = [r for r in rows if r.id is not None and r.id != exclude]
    specs = await programme_specs(db, {r.programme_id for r in rows})
    default_grace = round(settings.scheduler.misfire_grace_s)
    rules = []
    for row in rows:
        spec = specs.get(row.programme_id)
        try:
            clusters = directory.resolve(row.targets)
        except StationError:  # e.g. its only cluster was retired: it reaches nobody
            continue
        if spec is None or row.id is None:
            continue
        grace = default_grace if row.misfire_grace_s is None else row.misfire_grace_s
        rules.append(
            ScheduleRule(
                row.id,
                spec,
                recurrence_of(row),
                clusters,
                row.priority,
                row.rank,
                timedelta(seconds=grace),
                row.volume,
            )
        )
    return rules
