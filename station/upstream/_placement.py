"""Priority bulletins [bản tin ưu tiên]: the operator sees the clashes and places or declines.

The inbox stores a priority bulletin as ``proposed``. ``proposal`` shows what it clashes with:
the next programme(s) on the clusters of its target villages within its validity window, from
the station's timeline, with their items. The operator then

- places it **before**, **after** or **instead of** item *n* of one of those programme
  occurrences: a copy of that programme with the bulletin inserted airs once at that
  occurrence's start on the clusters the bulletin targets (the occurrence is skipped there: an
  exception date on a recurring schedule, a cancellation for a one-off; the clusters the
  bulletin does not target keep the programme as it was, through a one-off of it);
- or places it as its **own session** at a chosen time (priority ``bulletin``);
- or **declines** it.

A normal bulletin waiting in the inbox (``inbox``) can be placed or declined the same way.

Schedules are made through ``station._schedules.create_schedule``, so quotas and conflicts
apply; when one is refused, everything done for the placement is undone. The bulletin goes
``proposed -> scheduled`` (or ``declined``) with who and when, an audit entry, and a
``bulletin_status`` message for the upstream system in the outbox, all in one transaction.
``declined`` is the operator's decision not to air it, kept apart from ``dismissed`` (a bulletin
set aside with no decline on record, see ``BulletinStatus``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from sqlmodel import col, select

from scheduler import base_session_id
from station._programmes import ItemInput, add_programme, programme_specs
from station._schedules import (
    ScheduleRequest,
    create_schedule,
    make_recurrence,
    schedule_timeline,
)
from station._services import Sessions, StationError
from station._targets import Directory
from station.config import Settings
from station.db import (
    BulletinClass,
    BulletinStatus,
    MediaItem,
    Programme,
    ProgrammeItem,
    Schedule,
    ScheduleStatus,
    UpstreamBulletin,
)

from ._bulletin_status import enqueue_status

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from station.api import Actor, Call

__all__ = [
    "AUTO_MIN_LEAD",
    "Clash",
    "ClashItem",
    "PlaceMode",
    "Proposal",
    "auto_place_due",
    "decline_bulletin",
    "place_bulletin",
    "proposal",
    "proposed_bulletins",
]

PlaceMode = Literal["before", "after", "instead", "session"]
DEFAULT_HORIZON = timedelta(days=2)  # window when a bulletin has no valid_to
BULLETIN_PRIORITY = "bulletin"
# A normal bulletin waiting in the inbox is placed and declined the same way.
OPEN = (BulletinStatus.PROPOSED, BulletinStatus.INBOX)
# What an operator's decision leaves a bulletin as; also the status reported upstream.
Decision = Literal[BulletinStatus.SCHEDULED, BulletinStatus.DECLINED]


class PlacementError(StationError):
    """``status``: 404 unknown bulletin, 409 not proposed / no audio / refused, 422 bad input;
    ``code`` and ``params`` as for any ``StationError`` (the console says them)."""

    def __init__(
        self, status: int, detail: str, *, code: str | None = None, **params: object
    ) -> None:
        super().__init__(detail, code=code, **params)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class ClashItem:
    item: int  # 1-based, as the operator names it
    kind: str
    title: str
    start: datetime
    duration_s: float


@dataclass(frozen=True)
class Clash:
    """One programme occurrence on (some of) the bulletin's clusters within its window."""

    session_id: str
    schedule_id: int
    programme_id: int
    title: str
    priority: str
    start: datetime  # nominal start of the occurrence
    end: datetime
    clusters: list[str]
    items: list[ClashItem]


@dataclass(frozen=True)
class Proposal:
    bulletin: UpstreamBulletin
    targets: dict[str, Any]
    clusters: list[str]
    window: tuple[datetime, datetime]
    duration_s: float | None  # the bulletin's audio; None while it waits for a recording
    clashes: list[Clash] = field(default_factory=list)
    problem: str = ""  # e.g. its villages are unknown here: it reaches no cluster


def _targets(bulletin: UpstreamBulletin) -> dict[str, Any]:
    return {"villages": list(bulletin.villages)} if bulletin.villages else {"all": True}


def _window(bulletin: UpstreamBulletin, now: datetime) -> tuple[datetime, datetime]:
    start = max(now, bulletin.valid_from or now)
    end = bulletin.valid_to or start + DEFAULT_HORIZON
    return start, end


def _occurrence_start(session_id: str) -> datetime | None:
    base, _ = base_session_id(session_id)
    _, _, stamp = base.rpartition("-")
    return datetime.fromtimestamp(int(stamp), UTC) if stamp.isdigit() else None


async def _proposed(sessions: Sessions, bulletin_id: int) -> UpstreamBulletin:
    async with sessions() as db:
        row = await db.get(UpstreamBulletin, bulletin_id)
    if row is None:
        raise PlacementError(404, f"unknown bulletin {bulletin_id}")
    if row.status not in OPEN:
        raise PlacementError(
            409,
            f"bulletin {bulletin_id} is {row.status}, not proposed",
            code="bulletin_not_proposed",
            bulletin_id=bulletin_id,
            bulletin_status=str(row.status),
        )
    return row


async def proposed_bulletins(sessions: Sessions) -> list[UpstreamBulletin]:
    async with sessions() as db:
        query = (
            select(UpstreamBulletin)
            .where(UpstreamBulletin.status == BulletinStatus.PROPOSED)
            .order_by(col(UpstreamBulletin.id))
        )
        return list((await db.exec(query)).all())


async def proposal(
    sessions: Sessions,
    settings: Settings,
    bulletin_id: int,
    now: datetime | None = None,
    *,
    limit: int = 5,
) -> Proposal:
    """The bulletin and the next ``limit`` programme occurrences it clashes with."""
    now = now or datetime.now(UTC)
    bulletin = await _proposed(sessions, bulletin_id)
    targets = _targets(bulletin)
    start, end = _window(bulletin, now)
    async with sessions() as db:
        duration = None
        if bulletin.media_id is not None:
            media = await db.get(MediaItem, bulletin.media_id)
            duration = media.duration_ms / 1000 if media is not None else None
        directory = await Directory.load(db)
        try:
            clusters = sorted(directory.resolve(targets))
        except StationError as exc:
            return Proposal(bulletin, targets, [], (start, end), duration, problem=str(exc))
    if end <= start:
        return Proposal(bulletin, targets, clusters, (start, end), duration)
    lines = await schedule_timeline(sessions, settings, targets, start, end)
    found: dict[str, tuple[int, set[str]]] = {}
    for line in lines.values():
        for slot in line.slots:
            base, _ = base_session_id(slot.session_id)
            entry = found.setdefault(base, (slot.schedule_id, set()))
            entry[1].add(line.cluster)
    nominal = {s: t for s in found if (t := _occurrence_start(s)) is not None and t >= start}
    order = sorted(nominal, key=lambda s: (nominal[s], s))[:limit]
    async with sessions() as db:
        ids = {found[s][0] for s in order}
        rows = {r.id: r for r in (await db.exec(select(Schedule).where(col(Schedule.id).in_(ids))))}
        specs = await programme_specs(db, {r.programme_id for r in rows.values()})
    clashes = []
    for session_id in order:
        schedule = rows.get(found[session_id][0])
        begin = nominal[session_id]
        if schedule is None or schedule.programme_id not in specs:
            continue
        spec = specs[schedule.programme_id]
        items, at = [], begin
        for n, item in enumerate(spec.items, start=1):
            items.append(
                ClashItem(n, str(item.kind), item.title, at, item.duration.total_seconds())
            )
            at += item.duration
        clashes.append(
            Clash(
                session_id,
                found[session_id][0],
                schedule.programme_id,
                spec.title,
                schedule.priority,
                begin,
                at,
                sorted(found[session_id][1]),
                items,
            )
        )
    return Proposal(bulletin, targets, clusters, (start, end), duration, clashes)


# --------------------------------------------------------------------------- placing


@dataclass
class _Undo:
    """What a placement did so far, to undo it when a later step is refused."""

    cancelled: int | None = None  # a one-off we cancelled
    exception: tuple[int, str] | None = None  # (schedule id, ISO date) we added
    created: list[int] = field(default_factory=list)
    programme: int | None = None

    async def run(self, sessions: Sessions) -> None:
        async with sessions() as db:
            for schedule_id in self.created:
                row = await db.get(Schedule, schedule_id)
                if row is not None:
                    await db.delete(row)
            if self.cancelled is not None:
                row = await db.get(Schedule, self.cancelled)
                if row is not None:
                    row.status = ScheduleStatus.PENDING
                    db.add(row)
            if self.exception is not None:
                row = await db.get(Schedule, self.exception[0])
                if row is not None:
                    row.exceptions = [d for d in row.exceptions if d != self.exception[1]]
                    db.add(row)
            await db.flush()
            if self.programme is not None:
                for item in (
                    await db.exec(
                        select(ProgrammeItem).where(ProgrammeItem.programme_id == self.programme)
                    )
                ).all():
                    await db.delete(item)
                programme = await db.get(Programme, self.programme)
                if programme is not None:
                    await db.delete(programme)
            await db.commit()


async def _programme_inputs(sessions: Sessions, programme_id: int) -> list[ItemInput]:
    async with sessions() as db:
        rows = (
            await db.exec(
                select(ProgrammeItem)
                .where(ProgrammeItem.programme_id == programme_id)
                .order_by(col(ProgrammeItem.position))
            )
        ).all()
    return [
        ItemInput(
            str(r.kind),
            r.media_id,
            r.url,
            r.duration_ms / 1000 if r.duration_ms is not None else None,
            r.title,
        )
        for r in rows
    ]


def _insert(
    items: Sequence[ItemInput], bulletin: ItemInput, mode: PlaceMode, n: int
) -> list[ItemInput]:
    if not 1 <= n <= len(items):
        raise PlacementError(
            422,
            f"item: the programme has items 1..{len(items)}, not {n}",
            code="bulletin_item_out_of_range",
            item=n,
            items=len(items),
        )
    k = n - 1
    if mode == "before":
        return [*items[:k], bulletin, *items[k:]]
    if mode == "after":
        return [*items[: k + 1], bulletin, *items[k + 1 :]]
    return [*items[:k], bulletin, *items[k + 1 :]]


async def _skip_occurrence(
    sessions: Sessions, schedule_id: int, start: datetime, undo: _Undo
) -> Schedule:
    async with sessions() as db:
        row = await db.get(Schedule, schedule_id)
        if row is None or row.status not in (ScheduleStatus.PENDING, ScheduleStatus.ACTIVE):
            raise PlacementError(
                409,
                f"schedule {schedule_id} can no longer change",
                code="bulletin_clash_changed",
                schedule_id=schedule_id,
            )
        if str(row.recurrence) == "once":
            row.status = ScheduleStatus.CANCELLED
            undo.cancelled = schedule_id
        else:
            from zoneinfo import ZoneInfo

            day = start.astimezone(ZoneInfo(row.timezone)).date().isoformat()
            if day not in row.exceptions:
                row.exceptions = sorted([*row.exceptions, day])
                undo.exception = (schedule_id, day)
        db.add(row)
        await db.commit()
        await db.refresh(row)
        return row


async def place_bulletin(
    sessions: Sessions,
    settings: Settings,
    who: Call | Actor,
    bulletin_id: int,
    mode: PlaceMode,
    *,
    session_id: str | None = None,
    item: int | None = None,
    at: datetime | None = None,
    now: datetime | None = None,
    extra: dict[str, Any] | None = None,
) -> UpstreamBulletin:
    """Place a proposed bulletin (see the module docstring); returns it ``scheduled``.
    ``extra`` goes into the audit entry's and the upstream message's details."""
    now = now or datetime.now(UTC)
    bulletin = await _proposed(sessions, bulletin_id)
    if bulletin.media_id is None:
        raise PlacementError(
            409,
            f"bulletin {bulletin_id} has no audio yet: it waits for one",
            code="bulletin_no_audio",
            bulletin_id=bulletin_id,
        )
    clip = ItemInput("media", bulletin.media_id, title=bulletin.title[:200])
    undo = _Undo()
    details: dict[str, Any] = {"mode": mode, **(extra or {})}
    try:
        if mode == "session":
            if at is None:
                raise PlacementError(
                    422, "at: a time is needed for an own session", code="bulletin_time_needed"
                )
            start, end = _window(bulletin, now)
            if at < start or at >= end:
                raise PlacementError(
                    422,
                    f"at: outside the bulletin's window {start.isoformat()} .. {end.isoformat()}",
                    code="bulletin_outside_window",
                    window_start=start.isoformat(),
                    window_end=end.isoformat(),
                )
            programme = await add_programme(
                sessions, f"Bản tin {bulletin.upstream_id}: {bulletin.title}"[:200], [clip]
            )
            assert programme.id is not None
            undo.programme = programme.id
            result = await create_schedule(
                sessions,
                settings,
                ScheduleRequest(
                    programme.id,
                    _targets(bulletin),
                    make_recurrence("once", at=at),
                    priority=BULLETIN_PRIORITY,
                ),
                now,
            )
            assert result.schedule.id is not None
            undo.created.append(result.schedule.id)
            details |= {"at": at.isoformat()}
        else:
            if session_id is None or item is None:
                raise PlacementError(
                    422,
                    "session_id: give the clash's session and an item",
                    code="bulletin_clash_needed",
                )
            found = await proposal(sessions, settings, bulletin_id, now, limit=50)
            clash = next((c for c in found.clashes if c.session_id == session_id), None)
            if clash is None:
                raise PlacementError(
                    422,
                    f"session_id: {session_id} is not among this bulletin's clashes",
                    code="bulletin_clash_unknown",
                    session_id=session_id,
                )
            current = await _programme_inputs(sessions, clash.programme_id)
            inputs = _insert(current, clip, mode, item)
            original = await _skip_occurrence(sessions, clash.schedule_id, clash.start, undo)
            async with sessions() as db:
                directory = await Directory.load(db)
                source = await db.get(Programme, clash.programme_id)
            reach = directory.resolve(original.targets)
            wanted = reach & set(found.clusters)
            rest = reach - wanted
            programme = await add_programme(
                sessions,
                f"{clash.title} + bản tin {bulletin.upstream_id}"[:200],
                inputs,
                topics=source.topics if source is not None else (),
                language=source.language if source is not None else "vi",
            )
            assert programme.id is not None
            undo.programme = programme.id
            plan = [(programme.id, wanted)] + ([(clash.programme_id, rest)] if rest else [])
            for programme_id, clusters in plan:
                result = await create_schedule(
                    sessions,
                    settings,
                    ScheduleRequest(
                        programme_id,
                        {"clusters": sorted(clusters)},
                        make_recurrence("once", at=clash.start),
                        priority=original.priority,
                        volume=original.volume,
                    ),
                    now,
                )
                assert result.schedule.id is not None
                undo.created.append(result.schedule.id)
            details |= {
                "item": item,
                "session_id": session_id,
                "replaces_schedule": clash.schedule_id,
                "at": clash.start.isoformat(),
            }
        return await _decide(
            sessions,
            who,
            bulletin_id,
            BulletinStatus.SCHEDULED,
            now,
            details | {"schedule_ids": list(undo.created)},
            schedule_ids=undo.created,
            programme_id=undo.programme,
        )
    except StationError as exc:
        await undo.run(sessions)
        if isinstance(exc, PlacementError):
            raise
        # A refused schedule (quota, conflict, targets) keeps its code and parameters.
        raise PlacementError(409, str(exc), code=exc.code, **exc.params) from None


async def decline_bulletin(
    sessions: Sessions,
    who: Call | Actor,
    bulletin_id: int,
    reason: str = "",
    now: datetime | None = None,
) -> UpstreamBulletin:
    """The operator declines a proposed bulletin: status ``declined``, reported ``declined``."""
    await _proposed(sessions, bulletin_id)
    return await _decide(
        sessions,
        who,
        bulletin_id,
        BulletinStatus.DECLINED,
        now or datetime.now(UTC),
        {"reason": reason[:500]},
        note=f"declined: {reason}"[:500] if reason else "declined",
    )


async def _decide(
    sessions: Sessions,
    who: Call | Actor,
    bulletin_id: int,
    status: Decision,
    now: datetime,
    details: dict[str, Any],
    *,
    schedule_ids: list[int] | None = None,
    programme_id: int | None = None,
    note: str | None = None,
) -> UpstreamBulletin:
    """The state change, its audit entry and the upstream status message: one transaction.

    The upstream system is told the stored status itself (``scheduled`` / ``declined``), so
    the station and the province never name a decision differently."""
    from station.api._audit import audit_entry

    upstream_status = status.value

    async with sessions() as db:
        row = await db.get(UpstreamBulletin, bulletin_id)
        if row is None or row.status not in OPEN:
            raise _decided_meanwhile(bulletin_id)
        entry = audit_entry(who, f"bulletin.{upstream_status}", f"bulletin:{row.upstream_id}")
        entry.details = dict(details)
        values: dict[str, Any] = {
            "status": status,
            "decided_by": entry.actor,
            "decided_at": now,
            "schedule_ids": list(schedule_ids or []),
            "programme_id": programme_id,
        }
        if note is not None:
            values["note"] = note
        # A conditional UPDATE, not a write-back of what was read: an operator and the
        # automatic placement deciding at once must not both win (the loser is undone).
        moved = await db.exec(
            sa.update(UpstreamBulletin)
            .where(col(UpstreamBulletin.id) == bulletin_id, col(UpstreamBulletin.status).in_(OPEN))
            .values(values)
        )
        if moved.rowcount == 0:
            raise _decided_meanwhile(bulletin_id)
        db.add(entry)
        await enqueue_status(db, row.upstream_id, upstream_status, now, entry.actor, details)
        await db.commit()
        await db.refresh(row)
        return row


def _decided_meanwhile(bulletin_id: int) -> PlacementError:
    return PlacementError(
        409,
        f"bulletin {bulletin_id} was decided meanwhile",
        code="bulletin_decided_meanwhile",
        bulletin_id=bulletin_id,
    )


# --------------------------------------------------------------------------- automatic


# An automatic placement leaves the dispatcher this much time: a programme starting sooner may
# already be on its way to the clusters, so the next one after it is taken instead.
AUTO_MIN_LEAD = timedelta(minutes=2)
AUTO_FAILED = "automatic placement failed: "


async def auto_place_due(
    sessions: Sessions, settings: Settings, now: datetime | None = None
) -> list[UpstreamBulletin]:
    """Place the priority bulletins nobody decided on within
    ``upstream.auto_place_priority_after_min`` of their arrival (0/None: never): before item 1
    of the next programme on their villages' clusters, or, when no programme comes within
    their window, as an own session ``AUTO_MIN_LEAD`` from now. Text-only ones wait for a
    recording. Decided by the system (``decided_by`` "system", audited, reported upstream
    with ``details.auto``); a refused placement is noted on the bulletin and tried again on
    the next run. Returns the bulletins placed."""
    from station.api._audit import SYSTEM

    after = settings.upstream.auto_place_priority_after_min
    if not after:
        return []
    now = now or datetime.now(UTC)
    async with sessions() as db:
        due = (
            await db.exec(
                select(UpstreamBulletin)
                .where(
                    UpstreamBulletin.status == BulletinStatus.PROPOSED,
                    UpstreamBulletin.bulletin_class == BulletinClass.PRIORITY,
                    col(UpstreamBulletin.media_id).is_not(None),
                    UpstreamBulletin.received_at <= now - timedelta(minutes=after),
                )
                .order_by(col(UpstreamBulletin.id))
            )
        ).all()
    placed = []
    extra = {"auto": True, "after_min": after}
    for row in due:
        assert row.id is not None
        try:
            placed.append(await _auto_place(sessions, settings, SYSTEM, row.id, now, extra))
        except PlacementError as exc:
            await _auto_failed(sessions, row.id, exc.detail)
    return placed


async def _auto_place(
    sessions: Sessions,
    settings: Settings,
    who: Actor,
    bulletin_id: int,
    now: datetime,
    extra: dict[str, Any],
) -> UpstreamBulletin:
    found = await proposal(sessions, settings, bulletin_id, now, limit=10)
    if found.problem:
        raise PlacementError(409, found.problem)
    clash = next((c for c in found.clashes if c.start >= now + AUTO_MIN_LEAD and c.items), None)
    if clash is not None:
        return await place_bulletin(
            sessions,
            settings,
            who,
            bulletin_id,
            "before",
            session_id=clash.session_id,
            item=1,
            now=now,
            extra=extra,
        )
    at = max(now + AUTO_MIN_LEAD, found.window[0]).replace(microsecond=0)
    return await place_bulletin(
        sessions, settings, who, bulletin_id, "session", at=at, now=now, extra=extra
    )


async def _auto_failed(sessions: Sessions, bulletin_id: int, detail: str) -> None:
    """Say it once (the note, a warning): the run comes back every minute."""
    note = f"{AUTO_FAILED}{detail}"[:500]
    async with sessions() as db:
        row = await db.get(UpstreamBulletin, bulletin_id)
        if row is None or row.status != BulletinStatus.PROPOSED or row.note == note:
            return
        row.note = note
        db.add(row)
        await db.commit()
    log.warning("bulletin %s: %s", bulletin_id, note)
