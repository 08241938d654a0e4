"""Emergency broadcasts [phát khẩn cấp]: made here (database), aired by the dispatcher.

``start_emergency`` stores an emergency session (a one-off programme: a media item repeated,
a relay or the live stream) for the targeted receivers and who triggered it; the dispatcher
(``scheduler._emergency``) airs it within a second, or at once when poked in-process.
``stop_emergency`` marks it stopped; the dispatcher sends ``stop`` and powers bridges off.
``EmergencyStore`` is the dispatcher's side of the same rows, and of the sessions on air that
its preemption pass replays (``on_air``, ``record_interrupted``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, update
from sqlmodel import col, select

from scheduler import (
    Aired,
    EmergencyPlan,
    EmergencyWork,
    ItemKind,
    ItemRef,
    OnAir,
    Part,
    ProgrammeItemSpec,
    Session,
    SessionPlan,
    SilencePart,
    StreamPart,
    clashing,
)
from station._playout_parts import bridges_json, bridges_of, programme_parts, resolve_receivers
from station._services import Sessions, StationError
from station._targets import check_targets
from station.config import Settings
from station.db import (
    MediaItem,
    PlayRecord,
    PlayRecordStatus,
    PlaySession,
    PlaySessionStatus,
    Programme,
    ProgrammeItem,
    ProgrammeItemKind,
    Schedule,
)
from station.db.models_upstream import UpstreamBulletin

log = logging.getLogger(__name__)

EMERGENCY = "emergency"


@dataclass(frozen=True, slots=True)
class EmergencyRequest:
    targets: dict[str, Any]  # {"all": true} | zones/villages/clusters
    media_id: int | None = None
    relay_url: str | None = None
    live: bool = False
    repeat: int = 1
    duration_s: float = 600.0  # relay/live length
    volume: int | None = None  # None: the configured emergency volume
    title: str = "Khẩn cấp"

    def check(self) -> None:
        check_targets(self.targets)
        if sum((self.media_id is not None, self.relay_url is not None, self.live)) != 1:
            raise StationError(
                "an emergency plays one of: --media, --relay or --live", code="emergency_source_one"
            )
        if not 1 <= self.repeat <= 20:
            raise StationError("--repeat must be 1-20")
        if self.volume is not None and not 0 <= self.volume <= 100:
            raise StationError("--volume must be 0-100")
        if self.duration_s <= 0:
            raise StationError("the duration must be positive")


def _utcnow() -> datetime:
    return datetime.now(UTC)


async def start_emergency(
    sessions: Sessions,
    settings: Settings,
    request: EmergencyRequest,
    triggered_by: str,
    *,
    now: datetime | None = None,
) -> PlaySession:
    """Store an emergency for the dispatcher; StationError says why not."""
    request.check()
    now = now or _utcnow()
    playout = settings.playout  # --live: playout.live_url, else the live hub's studio mount
    async with sessions() as db:
        receivers, bridges = await resolve_receivers(db, request.targets)
        if not receivers:
            raise StationError(
                f"targets {request.targets} reach no cluster", code="targets_reach_none"
            )
        media_title = ""
        if request.media_id is not None:
            media = await db.get(MediaItem, request.media_id)
            if media is None:
                raise StationError(
                    f"unknown media item {request.media_id}",
                    code="media_unknown",
                    media_ids=[request.media_id],
                )
            media_title = media.title
        programme = Programme(title=request.title, topics=[EMERGENCY])
        db.add(programme)
        await db.flush()
        assert programme.id is not None
        if request.media_id is not None:
            db.add_all(
                ProgrammeItem(
                    programme_id=programme.id,
                    position=n,
                    media_id=request.media_id,
                    title=media_title,
                )
                for n in range(request.repeat)
            )
        else:
            kind = ProgrammeItemKind.RELAY if request.relay_url else ProgrammeItemKind.LIVE
            ms = round(request.duration_s * 1000)
            db.add_all(
                ProgrammeItem(
                    programme_id=programme.id,
                    position=n,
                    kind=kind,
                    duration_ms=ms,
                    url=request.relay_url,
                )
                for n in range(request.repeat)
            )
        volume = request.volume if request.volume is not None else playout.emergency_volume
        session = PlaySession(
            id=f"e{uuid.uuid4().hex[:20]}",
            programme_id=programme.id,
            start_at=now,
            expires_at=now,
            kind=EMERGENCY,
            priority=playout.priorities.get(EMERGENCY, 100),
            volume=volume,
            triggered_by=triggered_by,
            bridges=bridges_json(bridges),
        )
        db.add(session)
        await db.flush()
        # One multi-row INSERT (no ORM object per cluster: thousands an emergency).
        await db.exec(
            insert(PlayRecord),
            params=[
                {
                    "session_id": session.id,
                    "cluster_id": cid,
                    "status": PlayRecordStatus.SENT,
                    "scheduled_start": now,
                }
                for cid in receivers
            ],
        )
        await db.commit()
        await db.refresh(session)
    log.warning("emergency %s started by %s: %s", session.id, triggered_by, request.targets)
    return session


async def stop_emergency(
    sessions: Sessions, stopped_by: str, session_id: str | None = None
) -> list[str]:
    """Stop one emergency, or every one not yet stopped; returns their ids."""
    async with sessions() as db:
        query = select(PlaySession).where(
            PlaySession.kind == EMERGENCY,
            col(PlaySession.stopped_at).is_(None),
            col(PlaySession.status).in_([PlaySessionStatus.PENDING, PlaySessionStatus.DISPATCHED]),
        )
        if session_id is not None:
            query = query.where(PlaySession.id == session_id)
        rows = list((await db.exec(query)).all())
        if session_id is not None and not rows:
            raise StationError(
                f"no running emergency {session_id}",
                code="emergency_not_found",
                emergency_id=session_id,
            )

        now = _utcnow()
        for row in rows:
            row.stopped_at, row.stopped_by = now, stopped_by
            db.add(row)
        await db.commit()
    return [r.id for r in rows]


class EmergencyStore:
    """The dispatcher's ``EmergencyRepository`` over the same rows."""

    def __init__(
        self,
        sessions: Sessions,
        *,
        live_url: str | None = None,
        misfire_grace_s: float = 300.0,
        newest_wins: frozenset[int] = frozenset(),
    ) -> None:
        self.sessions = sessions
        self.live_url = live_url  # a live emergency's stream (the hub's ``live:<studio>``)
        self.misfire_grace = timedelta(seconds=misfire_grace_s)
        self.newest_wins = newest_wins  # levels where a newcomer replaces the one on air

    async def emergency_work(self) -> EmergencyWork:
        async with self.sessions() as db:
            rows = (
                await db.exec(
                    select(PlaySession).where(
                        PlaySession.kind == EMERGENCY,
                        col(PlaySession.status).in_(
                            [PlaySessionStatus.PENDING, PlaySessionStatus.DISPATCHED]
                        ),
                    )
                )
            ).all()
            work = EmergencyWork()
            for row in rows:
                pending = row.status == PlaySessionStatus.PENDING
                stopped = row.stopped_at is not None
                # Stopped while pending: its play commands may still have gone out (a start
                # whose record failed stays pending), so it is stopped like one on air; a stop
                # for a session a cluster never had is a no-op there.
                on_air = not pending and not stopped
                if on_air and row.dispatched_at is None:
                    continue
                cluster_ids: list[str] = []  # on air: its end needs no clusters (polled 1/s)
                if not on_air:
                    records = await db.exec(
                        select(PlayRecord.cluster_id).where(PlayRecord.session_id == row.id)
                    )
                    cluster_ids = sorted(records.all())
                items, parts = await programme_parts(db, row.programme_id, self.live_url)
                plan = EmergencyPlan(
                    SessionPlan(
                        row.id,
                        row.start_at,
                        row.expires_at,
                        cluster_ids,
                        items,
                        row.volume,
                        tuple(parts),
                        row.priority,
                    ),
                    bridges_of(row.bridges),
                )
                todo = work.to_stop if stopped else work.to_start if pending else work.on_air
                todo.append(plan)
            await db.commit()
            return work

    async def record_emergency_start(
        self, session_id: str, start_at: datetime, failures: dict[str, str]
    ) -> None:
        # Set-based updates (no ORM load of a record per cluster: thousands an emergency).
        async with self.sessions() as db:
            row = await db.get(PlaySession, session_id)
            if row is None:
                return
            row.status = PlaySessionStatus.DISPATCHED
            row.start_at, row.dispatched_at = start_at, _utcnow()
            row.expires_at = start_at + timedelta(minutes=1)
            db.add(row)
            await db.exec(
                update(PlayRecord)
                .where(col(PlayRecord.session_id) == session_id)
                .values(scheduled_start=start_at)
            )
            failed = sorted(failures)
            for n in range(0, len(failed), 500):  # bound the bound parameters
                await db.exec(
                    update(PlayRecord)
                    .where(
                        col(PlayRecord.session_id) == session_id,
                        col(PlayRecord.cluster_id).in_(failed[n : n + 500]),
                        col(PlayRecord.status) == PlayRecordStatus.SENT,
                    )
                    .values(status=PlayRecordStatus.FAILED, error_code="send_failed")
                )
            await db.commit()

    async def record_emergency_end(self, session_id: str) -> None:
        await self.record_emergency_stop(session_id)

    # -- the dispatcher's ``PreemptionRepository`` -------------------------------------------

    async def on_air(self, window_start: datetime, window_end: datetime) -> list[OnAir]:
        """Every session dispatched (scheduled and emergencies, ended or stopped too) that
        starts in the window, on the clusters that did not fail or refuse it."""
        async with self.sessions() as db:
            rows = (
                await db.exec(
                    select(PlaySession).where(
                        col(PlaySession.dispatched_at).is_not(None),
                        col(PlaySession.status).in_(
                            [PlaySessionStatus.DISPATCHED, PlaySessionStatus.DONE]
                        ),
                        col(PlaySession.start_at) >= window_start,
                        col(PlaySession.start_at) < window_end,
                    )
                )
            ).all()
            if not rows:
                return []
            schedules = {
                s.id: s
                for s in await db.exec(
                    select(Schedule).where(
                        col(Schedule.id).in_({r.schedule_id for r in rows if r.schedule_id})
                    )
                )
            }
            parts_of: dict[int, tuple[list[ItemRef], list[Part]]] = {}
            made: list[tuple[PlaySession, Session, SessionPlan]] = []
            for row in rows:
                if row.programme_id not in parts_of:
                    parts_of[row.programme_id] = await programme_parts(
                        db, row.programme_id, self.live_url
                    )
                items, parts = parts_of[row.programme_id]
                schedule = schedules.get(row.schedule_id) if row.schedule_id else None
                volume = row.volume if schedule is None else schedule.volume
                plan = SessionPlan(
                    row.id,
                    row.start_at,
                    row.expires_at,
                    [],
                    items,
                    volume,
                    tuple(parts),
                    row.priority,
                    bridges_of(row.bridges),  # a resumption needs them on again
                    rank=schedule.rank if schedule is not None else 0,
                )
                grace = timedelta(0)
                if row.kind != EMERGENCY:
                    grace = self.misfire_grace
                    if schedule is not None and schedule.misfire_grace_s is not None:
                        grace = timedelta(seconds=schedule.misfire_grace_s)
                specs = tuple(_spec(p) for p in parts)
                length = sum((p.duration for p in specs), timedelta(0))
                session = Session(
                    row.id,
                    row.priority,
                    row.start_at,
                    specs,
                    row.start_at + length + grace,
                    rank=schedule.rank if schedule is not None else 0,
                    newest_wins=row.kind == EMERGENCY or row.priority in self.newest_wins,
                )
                made.append((row, session, plan))
            # Only sessions that overlap another can preempt or be preempted: the records
            # (one per cluster, thousands a session) are read for those alone.
            wanted = clashing(s for _, s, _ in made)
            if not wanted:
                return []
            clusters: dict[str, list[str]] = {}
            for sid, cid in (
                await db.exec(
                    select(PlayRecord.session_id, PlayRecord.cluster_id).where(
                        col(PlayRecord.session_id).in_(sorted(wanted)),
                        col(PlayRecord.status).not_in(
                            [PlayRecordStatus.FAILED, PlayRecordStatus.NACKED]
                        ),
                    )
                )
            ).all():
                clusters.setdefault(sid, []).append(cid)
            return [
                OnAir(
                    Aired(session, frozenset(clusters[row.id]), row.stopped_at),
                    replace(plan, cluster_ids=sorted(clusters[row.id])),
                )
                for row, session, plan in made
                if row.id in clusters
            ]

    async def record_interrupted(self, session_id: str, cluster_id: str, by: str | None) -> None:
        # One conditional UPDATE: a proof flush that writes FINISHED in between is never
        # overwritten (a read-then-write here would).
        async with self.sessions() as db:
            await db.exec(
                update(PlayRecord)
                .where(
                    col(PlayRecord.session_id) == session_id,
                    col(PlayRecord.cluster_id) == cluster_id,
                    col(PlayRecord.status).not_in(_FINAL),
                )
                .values(
                    status=PlayRecordStatus.INTERRUPTED,
                    interrupted_by=func.coalesce(col(PlayRecord.interrupted_by), by),
                )
            )
            await db.commit()

    async def record_emergency_stop(self, session_id: str) -> None:
        async with self.sessions() as db:
            row = await db.get(PlaySession, session_id)
            if row is not None:
                row.status = PlaySessionStatus.DONE
                db.add(row)
                await db.commit()


_FINAL = (PlayRecordStatus.FINISHED, PlayRecordStatus.FAILED, PlayRecordStatus.NACKED)


def _spec(part: Part) -> ProgrammeItemSpec:
    """A part as the preemption rules see it: media resume where they stopped, streams rejoin
    what is on air, silences pass."""
    duration = timedelta(milliseconds=max(1, part.duration_ms))
    if isinstance(part, ItemRef):
        return ProgrammeItemSpec(ItemKind.MEDIA, duration, part.media_id)
    if isinstance(part, StreamPart):
        return ProgrammeItemSpec(ItemKind.RELAY, duration, url=part.url)
    assert isinstance(part, SilencePart)
    return ProgrammeItemSpec(ItemKind.SILENCE, duration)


@dataclass
class StationEmergencyTrigger:
    """``station.upstream``'s ``EmergencyTrigger``: an upstream emergency bulletin airs now,
    to its villages (none: everyone), its audio once."""

    sessions: Sessions
    settings: Settings
    poke: Callable[[], None]
    started: list[str] = field(default_factory=list)

    async def __call__(self, bulletin: UpstreamBulletin) -> str | None:
        """Air it; the emergency's session id (None: nothing aired)."""
        targets: dict[str, Any] = (
            {"villages": list(bulletin.villages)} if bulletin.villages else {"all": True}
        )
        if bulletin.media_id is not None:
            request = EmergencyRequest(targets, media_id=bulletin.media_id, title=bulletin.title)
        elif bulletin.audio_url:
            request = EmergencyRequest(targets, relay_url=bulletin.audio_url, title=bulletin.title)
        else:
            log.error("emergency bulletin %s has no audio: not aired", bulletin.upstream_id)
            return None
        who = f"upstream:{bulletin.issuer or bulletin.upstream_id}"
        session = await start_emergency(self.sessions, self.settings, request, who)
        self.started.append(session.id)
        self.poke()
        return session.id
