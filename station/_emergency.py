"""Emergency broadcasts [phát khẩn cấp]: made here (database), aired by the dispatcher.

``start_emergency`` stores an emergency session (a one-off programme: a media item repeated,
a relay or the live stream) for the targeted receivers and who triggered it; the dispatcher
(``scheduler._emergency``) airs it within a second, or at once when poked in-process.
``stop_emergency`` marks it stopped; the dispatcher sends ``stop`` and powers bridges off.
``EmergencyStore`` is the dispatcher's side of the same rows.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import col, select

from scheduler import (
    EmergencyPlan,
    EmergencyWork,
    Resumption,
    SessionPlan,
    segments,
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
            raise StationError("an emergency plays one of: --media, --relay or --live")
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
    playout = settings.playout
    if request.live and not playout.live_url:
        raise StationError("--live needs playout.live_url in the config")
    async with sessions() as db:
        receivers, bridges = await resolve_receivers(db, request.targets)
        if not receivers:
            raise StationError(f"targets {request.targets} reach no cluster")
        media_title = ""
        if request.media_id is not None:
            media = await db.get(MediaItem, request.media_id)
            if media is None:
                raise StationError(f"unknown media item {request.media_id}")
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
        db.add_all(
            PlayRecord(
                session_id=session.id,
                cluster_id=cid,
                status=PlayRecordStatus.SENT,
                scheduled_start=now,
            )
            for cid in receivers
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
            raise StationError(f"no running emergency {session_id}")
        now = _utcnow()
        for row in rows:
            row.stopped_at, row.stopped_by = now, stopped_by
            db.add(row)
        await db.commit()
    return [r.id for r in rows]


class EmergencyStore:
    """The dispatcher's ``EmergencyRepository`` over the same rows."""

    def __init__(
        self, sessions: Sessions, *, live_url: str | None = None, misfire_grace_s: float = 300.0
    ) -> None:
        self.sessions = sessions
        self.live_url = live_url
        self.misfire_grace = timedelta(seconds=misfire_grace_s)

    async def resumptions(self, emergency_id: str, now: datetime) -> list[Resumption]:
        """Sessions it preempted, still inside their window (start + length + misfire grace),
        from where each cluster stopped. Programmes of one media run only; the others (and
        those past their window) stay recorded as interrupted by it."""
        async with self.sessions() as db:
            rows = (
                await db.exec(
                    select(PlayRecord, PlaySession)
                    .join(PlaySession, col(PlaySession.id) == col(PlayRecord.session_id))
                    .where(
                        PlayRecord.interrupted_by == emergency_id,
                        PlayRecord.status == PlayRecordStatus.INTERRUPTED,
                        PlaySession.kind != EMERGENCY,
                    )
                )
            ).all()
            found: list[Resumption] = []
            for record, session in rows:
                items, parts = await programme_parts(db, session.programme_id, self.live_url)
                schedule = await db.get(Schedule, session.schedule_id or 0)
                grace = self.misfire_grace
                if schedule is not None and schedule.misfire_grace_s is not None:
                    grace = timedelta(seconds=schedule.misfire_grace_s)
                plan = SessionPlan(
                    session.id,
                    session.start_at,
                    session.expires_at,
                    [record.cluster_id],
                    items,
                    schedule.volume if schedule else None,
                    tuple(parts),
                    session.priority,
                )
                runs = segments(plan)
                total = sum(i.duration_ms for i in items)
                offset = record.played_ms or 0
                end = session.start_at + timedelta(milliseconds=total) + grace
                if len(runs) != 1 or not runs[0].items or now >= end or offset >= total:
                    continue
                attempt = max(1, int((now - session.start_at).total_seconds()))
                found.append(Resumption(record.cluster_id, plan, offset, attempt))
            return found

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
                if pending and stopped:  # stopped before it went out: nothing to undo
                    row.status = PlaySessionStatus.DONE
                    db.add(row)
                    continue
                if not pending and not stopped:
                    continue
                records = await db.exec(
                    select(PlayRecord.cluster_id).where(PlayRecord.session_id == row.id)
                )
                items, parts = await programme_parts(db, row.programme_id, self.live_url)
                plan = EmergencyPlan(
                    SessionPlan(
                        row.id,
                        row.start_at,
                        row.expires_at,
                        sorted(records.all()),
                        items,
                        row.volume,
                        tuple(parts),
                        row.priority,
                    ),
                    bridges_of(row.bridges),
                )
                (work.to_start if pending else work.to_stop).append(plan)
            await db.commit()
            return work

    async def record_emergency_start(
        self, session_id: str, start_at: datetime, failures: dict[str, str]
    ) -> None:
        async with self.sessions() as db:
            row = await db.get(PlaySession, session_id)
            if row is None:
                return
            row.status = PlaySessionStatus.DISPATCHED
            row.start_at, row.dispatched_at = start_at, _utcnow()
            row.expires_at = start_at + timedelta(minutes=1)
            db.add(row)
            for record in (
                await db.exec(select(PlayRecord).where(PlayRecord.session_id == session_id))
            ).all():
                record.scheduled_start = start_at
                if record.cluster_id in failures and record.status == PlayRecordStatus.SENT:
                    record.status = PlayRecordStatus.FAILED
                    record.error_code = "send_failed"
                db.add(record)
            await db.commit()

    async def record_emergency_stop(self, session_id: str) -> None:
        async with self.sessions() as db:
            row = await db.get(PlaySession, session_id)
            if row is not None:
                row.status = PlaySessionStatus.DONE
                db.add(row)
                await db.commit()


@dataclass
class StationEmergencyTrigger:
    """``station.upstream``'s ``EmergencyTrigger``: an upstream emergency bulletin airs now,
    to its villages (none: everyone), its audio once."""

    sessions: Sessions
    settings: Settings
    poke: Callable[[], None]
    started: list[str] = field(default_factory=list)

    async def __call__(self, bulletin: UpstreamBulletin) -> None:
        targets: dict[str, Any] = (
            {"villages": list(bulletin.villages)} if bulletin.villages else {"all": True}
        )
        if bulletin.media_id is not None:
            request = EmergencyRequest(targets, media_id=bulletin.media_id, title=bulletin.title)
        elif bulletin.audio_url:
            request = EmergencyRequest(targets, relay_url=bulletin.audio_url, title=bulletin.title)
        else:
            log.error("emergency bulletin %s has no audio: not aired", bulletin.upstream_id)
            return
        who = f"upstream:{bulletin.issuer or bulletin.upstream_id}"
        session = await start_emergency(self.sessions, self.settings, request, who)
        self.started.append(session.id)
        self.poke()
