"""Programmes and recurring schedules: validation, airtime quotas, conflicts, timeline.

The rules live in ``scheduler`` (pure); this module loads rows, resolves targets, calls the
rules and writes. A one-off schedule is stored ``pending`` (the dispatcher plays it); a
recurring one ``active`` (its occurrences are dispatched once the dispatcher expands rules).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Literal, cast

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from scheduler import (
    ClusterTimeline,
    Conflict,
    Occurrence,
    PriorityLadder,
    Quota,
    QuotaViolation,
    Recurrence,
    RecurrenceKind,
    ScheduleRule,
    check_quotas,
    expand,
    find_conflicts,
    occurrences,
    parse_weekdays,
    timeline,
)
from station._audit import Actor, record
from station._programmes import programme_specs
from station._services import Sessions, StationError
from station._targets import Directory, check_targets
from station.config import PlayoutSection, Settings
from station.db import (
    Programme,
    ProgrammeApproval,
    Schedule,
    ScheduleStatus,
    UpstreamBulletin,
)

OnConflict = Literal["refuse", "before", "after"]
LIVE_STATUSES = (ScheduleStatus.PENDING, ScheduleStatus.ACTIVE, ScheduleStatus.DISPATCHED)
_NEW_ID = -1  # a schedule being created has no id yet; never equal to a stored one


class QuotaRefused(StationError):
    """The schedule would break an airtime quota; ``violations`` say where and how."""

    code = "quota_exceeded"

    def __init__(self, message: str, violations: list[QuotaViolation]) -> None:
        super().__init__(message)
        self.violations = violations


class ConflictRefused(StationError):
    """The schedule overlaps others of its priority; accept it with an order or change it."""

    code = "schedule_conflict"

    def __init__(self, message: str, conflicts: list[Conflict]) -> None:
        super().__init__(message)
        self.conflicts = conflicts


class NotEditable(StationError):
    """The schedule is unknown, or past the states in which it may change."""

    code = "schedule_not_editable"


class ApprovalRequired(StationError):
    """``auth.approval_required`` and the programme's current version is not approved."""

    code = "approval_required"


# --------------------------------------------------------------------------- approval


def programme_version(programme: Programme) -> int:
    """The programme's current version: an approval names one; an edit bumps it."""
    version = getattr(programme, "version", 1)
    return version if isinstance(version, int) else 1


async def unapproved_programmes(db: AsyncSession, programme_ids: Iterable[int]) -> set[int]:
    """Those of ``programme_ids`` whose current version has no approval.

    A programme made by placing an upstream bulletin counts as approved: the bulletin comes
    from the authority above the commune and its placement is the operator's audited decision
    (``bulletin.scheduled``); nobody could approve it in time otherwise.
    """
    wanted = set(programme_ids)
    if not wanted:
        return set()
    rows = await db.exec(
        select(Programme.id, Programme.version, ProgrammeApproval.version)
        .join(
            ProgrammeApproval,
            col(ProgrammeApproval.programme_id) == col(Programme.id),
            isouter=True,
        )
        .where(col(Programme.id).in_(wanted))
    )
    approved: set[int] = set()
    for pid, current, version in rows.all():
        if pid is not None and version is not None and version == current:
            approved.add(pid)
    bulletins = await db.exec(
        select(UpstreamBulletin.programme_id).where(
            col(UpstreamBulletin.programme_id).in_(wanted - approved)
        )
    )
    approved.update(p for p in bulletins.all() if p is not None)
    return wanted - approved


async def waiting_for_approval(db: AsyncSession, settings: Settings) -> set[int]:
    """Ids of live schedules that do not air for want of approval (none when not required)."""
    rows = (await db.exec(select(Schedule).where(col(Schedule.status).in_(LIVE_STATUSES)))).all()
    return await _waiting(db, settings, rows)


async def waiting_on(
    sessions: Sessions, settings: Settings, targets: dict[str, Any]
) -> list[tuple[Schedule, str]]:
    """Schedules reaching ``targets`` that wait for approval, with their programme's title:
    the timeline leaves them out (they do not air) and shows them apart."""
    async with sessions() as db:
        held = await waiting_for_approval(db, settings)
        if not held:
            return []
        directory = await Directory.load(db)
        clusters = directory.resolve(targets)
        rows = (await db.exec(select(Schedule).where(col(Schedule.id).in_(held)))).all()
        titles = dict(
            (await db.exec(select(Programme.id, Programme.title).where(
                col(Programme.id).in_({r.programme_id for r in rows})
            ))).all()
        )  # fmt: skip
    found = []
    for row in sorted(rows, key=lambda r: r.id or 0):
        try:
            reached = directory.resolve(row.targets)
        except StationError:
            continue
        if reached & clusters:
            found.append((row, titles.get(row.programme_id, "")))
    return found


async def _waiting(db: AsyncSession, settings: Settings, rows: Iterable[Schedule]) -> set[int]:
    if not settings.auth.approval_required:
        return set()
    found = [r for r in rows if r.id is not None]
    held = await unapproved_programmes(db, {r.programme_id for r in found})
    return {r.id for r in found if r.id is not None and r.programme_id in held}


async def require_approval(sessions: Sessions, settings: Settings, programme_id: int) -> None:
    """ApprovalRequired (the API's 409 message) when approval is on and missing."""
    if not settings.auth.approval_required:
        return
    async with sessions() as db:
        programme = await db.get(Programme, programme_id)
        if programme is None:
            return  # the caller reports unknown programmes
        if programme_id in await unapproved_programmes(db, [programme_id]):
            version = programme_version(programme)
            raise ApprovalRequired(
                f"programme {programme_id} version {version} is not approved yet",
                programme_id=programme_id,
                name=programme.title,
                version=version,
            )


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
        raise StationError(str(exc), code="recurrence_invalid") from None


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
    sessions: Sessions,
    settings: Settings,
    request: ScheduleRequest,
    now: datetime,
    *,
    who: Actor | None = None,
) -> ScheduleResult:
    """Validate, check quotas and conflicts, then store. StationError says why not.

    With ``who`` the audit entry ``schedule.create`` is written in the same transaction."""
    async with sessions() as db:
        row = Schedule(programme_id=request.programme_id, start_at=now)
        result = await _check_and_fill(db, settings, row, request, now)
        db.add(row)
        if who is not None:
            await db.flush()  # the entry names the schedule's id
            _audit_create(db, who, row, request, result)
        await db.commit()
        await db.refresh(row)
        return ScheduleResult(row, result)


async def update_schedule(
    sessions: Sessions,
    settings: Settings,
    schedule_id: int,
    request: ScheduleRequest,
    now: datetime,
    check: Callable[[Schedule], None] | None = None,
) -> ScheduleResult:
    """``check`` sees the stored row inside the writing transaction (e.g. an If-Match)."""
    async with sessions() as db:
        row = await _editable(db, schedule_id, check)
        result = await _check_and_fill(db, settings, row, request, now)
        db.add(row)
        await db.commit()
        await db.refresh(row)
        return ScheduleResult(row, result)


async def cancel_schedule(
    sessions: Sessions,
    schedule_id: int,
    check: Callable[[Schedule], None] | None = None,
    *,
    who: Actor | None = None,
) -> Schedule:
    """Future occurrences stop; sessions already made or played stay as history. With
    ``who`` the audit entry ``schedule.cancel`` commits with the change."""
    async with sessions() as db:
        row = await _editable(db, schedule_id, check)
        row.status = ScheduleStatus.CANCELLED
        db.add(row)
        if who is not None:
            record(db, who, "schedule.cancel", f"schedule:{schedule_id}")
        await db.commit()
        await db.refresh(row)
        return row


def _audit_create(
    db: AsyncSession,
    who: Actor,
    row: Schedule,
    request: ScheduleRequest,
    accepted: list[Conflict],
) -> None:
    details: dict[str, Any] = {
        "programme_id": request.programme_id,
        "recurrence": str(row.recurrence),
        "start_at": row.start_at.isoformat(),
        "targets": row.targets,
        "priority": row.priority,
        "on_conflict": request.on_conflict,
    }
    if accepted:
        details["accepted_conflicts"] = [c.schedule_id for c in accepted]
    record(db, who, "schedule.create", f"schedule:{row.id}", details)


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
        rules = await _rules(db, directory, settings, exclude=None, airing_only=True)
    return timeline(rules, clusters, window_start, window_end, ladder_of(settings.playout))


async def timeline_groups(
    sessions: Sessions,
    settings: Settings,
    targets: dict[str, Any],
    window_start: datetime,
    window_end: datetime,
) -> list[tuple[list[str], ClusterTimeline]]:
    """Like ``schedule_timeline``, computed once per group of clusters reached by the same
    schedules (they hear the same): [(clusters, the timeline of the first of them)]."""
    async with sessions() as db:
        directory = await Directory.load(db)
        clusters = directory.resolve(targets)
        rules = await _rules(db, directory, settings, exclude=None, airing_only=True)
    groups: dict[frozenset[int], list[str]] = defaultdict(list)
    for cluster in sorted(clusters):
        groups[frozenset(r.id for r in rules if cluster in r.clusters)].append(cluster)
    firsts = [members[0] for members in groups.values()]
    found = timeline(rules, firsts, window_start, window_end, ladder_of(settings.playout))
    return [(members, found[members[0]]) for members in groups.values()]


async def _editable(
    db: AsyncSession, schedule_id: int, check: Callable[[Schedule], None] | None = None
) -> Schedule:
    row = await db.get(Schedule, schedule_id)
    if row is None:
        raise NotEditable(f"unknown schedule {schedule_id}")
    if check is not None:
        check(row)
    if row.status not in (ScheduleStatus.PENDING, ScheduleStatus.ACTIVE):
        raise NotEditable(
            f"schedule {schedule_id} is {row.status}: it can no longer change",
            schedule_id=schedule_id,
            state=str(row.status),
        )
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
        raise StationError(
            f"unknown programme {request.programme_id} (or it has no items)",
            code="programme_unknown",
            programme_id=request.programme_id,
        )
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
    # An edit keeps the order already chosen against schedules of another rank.
    settled = [c for c in conflicts if row.id is not None and c.rank != row.rank]
    conflicts = [c for c in conflicts if c not in settled]
    rank, note = _order(conflicts, request.on_conflict)
    if settled and not conflicts:
        rank, note = row.rank, row.note
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
            raise StationError(
                f"the start time {rec.at.isoformat()} is in the past",
                code="schedule_in_past",
                at=rec.at.isoformat(),
            )
        return rec.at
    if rec.valid_from is not None:  # no need to walk the days before it starts
        now = max(now, datetime.combine(rec.valid_from, time(), rec.tz))
    # A short look first: most schedules air within days, expanding years costs more.
    for days in (40, 800):
        found = occurrences(rule, now, now + timedelta(days=days))
        if found:
            return found[0].start
    raise StationError(
        "this schedule never airs after now: check the dates and exceptions",
        code="schedule_never_airs",
    )


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
        raise QuotaRefused(f"refused: the schedule breaks the airtime quota\n  {lines}", violations)


def _order(conflicts: list[Conflict], on_conflict: OnConflict) -> tuple[int, str]:
    if not conflicts:
        return 0, ""
    ids = ", ".join(str(c.schedule_id) for c in conflicts)
    if on_conflict == "refuse":
        lines = "\n  ".join(c.describe() for c in conflicts)
        raise ConflictRefused(
            f"refused: overlaps schedules of the same priority\n  {lines}\n"
            "choose an order to accept it: --on-conflict before|after",
            conflicts,
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
    db: AsyncSession,
    directory: Directory,
    settings: Settings,
    *,
    exclude: int | None,
    airing_only: bool = False,
) -> list[ScheduleRule]:
    """Every schedule that may still air, as scheduler rules (targets resolved now).

    ``airing_only`` leaves out those waiting for approval (they do not air, so they cut in
    over nothing); quotas and conflicts still count them: they air once approved."""
    rows = (await db.exec(select(Schedule).where(col(Schedule.status).in_(LIVE_STATUSES)))).all()
    rows = [r for r in rows if r.id is not None and r.id != exclude]
    if airing_only:
        held = await _waiting(db, settings, rows)
        rows = [r for r in rows if r.id not in held]
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


# --------------------------------------------------------------------------- week view


@dataclass(frozen=True, slots=True)
class Airing:
    """One occurrence of a schedule in the week, on the clusters asked about."""

    schedule_id: int
    title: str
    start: datetime
    end: datetime
    priority: str
    rank: int
    clusters: frozenset[str]
    waiting_approval: bool = False  # auth.approval_required and not approved: does not air


@dataclass(frozen=True, slots=True)
class Clash:
    """Two schedules of one priority on air at once on shared clusters.

    ``first`` is the schedule that goes first when the operator stated an order (different
    ranks); None when nobody chose (e.g. a zone gained clusters after both were made)."""

    schedule_ids: tuple[int, int]
    start: datetime
    end: datetime
    clusters: frozenset[str]
    first: int | None


@dataclass(frozen=True, slots=True)
class QuotaUse:
    """Airtime of one locality on one local day: the busiest of its clusters."""

    locality: str
    day: date
    sessions: int
    max_sessions: int | None
    longest_minutes: float
    max_minutes: float | None
    days_in_week: int  # days with a session in the week (of the busiest cluster)
    max_days: int | None


@dataclass(frozen=True, slots=True)
class WeekView:
    start: datetime
    end: datetime
    clusters: frozenset[str]
    airings: list[Airing]
    clashes: list[Clash]
    usage: list[QuotaUse]


async def week_view(
    sessions: Sessions,
    settings: Settings,
    targets: dict[str, Any] | None,
    window_start: datetime,
    window_end: datetime,
) -> WeekView:
    """Occurrences, same-priority overlaps and quota use in a window (targets None: all)."""
    async with sessions() as db:
        directory = await Directory.load(db)
        clusters = directory.resolve(targets) if targets else frozenset(directory.villages_of)
        rules = await _rules(db, directory, settings, exclude=None)
        held = await waiting_for_approval(db, settings)
    rules = [r for r in rules if r.clusters & clusters]
    found = expand(rules, window_start, window_end)
    airings = [
        Airing(
            o.rule.id,
            o.rule.programme.title,
            o.start,
            o.end,
            o.rule.priority,
            o.rule.rank,
            o.rule.clusters & clusters,
            o.rule.id in held,
        )
        for o in found
    ]
    return WeekView(
        window_start,
        window_end,
        clusters,
        airings,
        _clashes(airings),
        _usage(found, clusters, directory, settings, window_start, window_end),
    )


def _clashes(airings: list[Airing]) -> list[Clash]:
    """Pairs of overlapping same-priority airings sharing clusters (sorted by start)."""
    found = []
    for i, a in enumerate(airings):
        for b in airings[i + 1 :]:
            if b.start >= a.end:
                break
            if a.schedule_id == b.schedule_id or a.priority != b.priority:
                continue
            shared = a.clusters & b.clusters
            if not shared:
                continue
            first = None
            if a.rank != b.rank:
                first = a.schedule_id if a.rank < b.rank else b.schedule_id
            found.append(
                Clash(
                    (a.schedule_id, b.schedule_id),
                    max(a.start, b.start),
                    min(a.end, b.end),
                    shared,
                    first,
                )
            )
    return found


def _usage(
    found: list[Occurrence],
    clusters: frozenset[str],
    directory: Directory,
    settings: Settings,
    window_start: datetime,
    window_end: datetime,
) -> list[QuotaUse]:
    playout = settings.playout
    tz = settings.station.tzinfo
    gap = timedelta(minutes=playout.session_gap_min)
    counted = [o for o in found if o.rule.priority not in playout.quota_exempt]
    # Clusters reached by the same schedules have the same airtime: count once per group.
    groups: dict[tuple[str, frozenset[int]], list[str]] = defaultdict(list)
    for cluster in sorted(clusters):
        locality = directory.locality(cluster, playout)
        if locality in playout.localities:
            reached = frozenset(o.rule.id for o in counted if cluster in o.rule.clusters)
            groups[(locality, reached)].append(cluster)
    busiest: dict[tuple[str, date], tuple[int, float]] = {}
    days_used: dict[str, int] = {}
    for (locality, reached), _members in groups.items():
        mine = [o for o in counted if o.rule.id in reached]
        per_day: dict[date, list[float]] = defaultdict(list)
        for start, minutes in _listener_sessions(mine, gap):
            per_day[start.astimezone(tz).date()].append(minutes)
        days_used[locality] = max(days_used.get(locality, 0), len(per_day))
        for day, lengths in per_day.items():
            n, longest = busiest.get((locality, day), (0, 0.0))
            busiest[(locality, day)] = (max(n, len(lengths)), max(longest, *lengths))
    first_day = window_start.astimezone(tz).date()
    last_day = (window_end - timedelta(microseconds=1)).astimezone(tz).date()
    usage = []
    for locality in sorted({loc for loc, _ in groups}):
        quota = playout.localities[locality]
        day = first_day
        while day <= last_day:
            n, longest = busiest.get((locality, day), (0, 0.0))
            usage.append(
                QuotaUse(
                    locality,
                    day,
                    n,
                    quota.max_sessions_per_day,
                    round(longest, 1),
                    quota.max_minutes_per_session,
                    days_used.get(locality, 0),
                    quota.max_days_per_week,
                )
            )
            day += timedelta(days=1)
    return usage


def _listener_sessions(found: list[Occurrence], gap: timedelta) -> list[tuple[datetime, float]]:
    """Occurrences following each other within ``gap`` are one session: (start, minutes)."""
    result: list[tuple[datetime, float]] = []
    start: datetime | None = None
    end: datetime | None = None
    for o in sorted(found, key=lambda o: o.start):
        if start is None or end is None or o.start - end > gap:
            if start is not None and end is not None:
                result.append((start, (end - start) / timedelta(minutes=1)))
            start, end = o.start, o.end
        else:
            end = max(end, o.end)
    if start is not None and end is not None:
        result.append((start, (end - start) / timedelta(minutes=1)))
    return result
