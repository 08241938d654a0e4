"""The database side of playout: the scheduler's repository and proof of play from devices.

Cluster state (status, heartbeats, alerts) is ``station._monitor.FleetMonitor``'s job;
``DeviceHandlers`` there composes both into the gateway's ``DeviceHandler``.

Each method is one short transaction. Proof of play (``PlayRecord``) only moves forward:
a late ack never overwrites a finished record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from devices.protocol import Ack, Event
from scheduler import (
    DEFAULT_LEVELS,
    ItemRef,
    OccurrenceSpec,
    Part,
    ScheduleSpec,
    SessionPlan,
    SilencePart,
    base_session_id,
    session_id_for,
    skew_ms,
)
from station._playout_parts import (
    bridges_json,
    bridges_of,
    programme_parts,
    resolve_receivers,
    resolve_targets,
)
from station._services import StationError
from station.db import (
    Cluster,
    ClusterKind,
    ClusterStatus,
    PlayRecord,
    PlayRecordStatus,
    PlaySession,
    PlaySessionStatus,
    RecurrenceKind,
    Schedule,
    ScheduleStatus,
)

log = logging.getLogger(__name__)

Sessions = async_sessionmaker[AsyncSession]

# Forward-only order of proof-of-play states.
_RANK = {
    PlayRecordStatus.SENT: 0,
    PlayRecordStatus.ACKED: 1,
    PlayRecordStatus.NACKED: 2,
    PlayRecordStatus.FAILED: 2,
    PlayRecordStatus.STARTED: 3,
    PlayRecordStatus.INTERRUPTED: 4,
    PlayRecordStatus.FINISHED: 4,
}

_EVENT_STATUS = {
    "playback_started": PlayRecordStatus.STARTED,
    "playback_finished": PlayRecordStatus.FINISHED,
    "playback_interrupted": PlayRecordStatus.INTERRUPTED,
    "download_failed": PlayRecordStatus.FAILED,
}


def _utcnow() -> datetime:
    return datetime.now(UTC)


async def target_cluster_ids(db: AsyncSession, targets: dict[str, Any]) -> list[str]:
    """Resolve a schedule's targets to the clusters that receive commands: ICT receivers and
    bridges (which play into their legacy FM/wired clusters); retired ones never."""
    query = select(Cluster.id).where(
        col(Cluster.kind).in_([ClusterKind.ICT, ClusterKind.BRIDGE]),
        Cluster.status != ClusterStatus.RETIRED,
    )
    if not targets.get("all"):
        query = query.where(col(Cluster.id).in_(list(targets.get("clusters", []))))
    return list((await db.exec(query.order_by(Cluster.id))).all())


def _still_airs(schedule: Schedule, session: PlaySession, recurrence_of: Any) -> bool:
    """A session made ahead is withdrawn when its schedule is cancelled or no longer has
    that occurrence (edited)."""
    if schedule.status not in (
        ScheduleStatus.PENDING,
        ScheduleStatus.ACTIVE,
        ScheduleStatus.DISPATCHED,
    ):
        return False
    if schedule.id is None or schedule.recurrence == RecurrenceKind.ONCE:
        return True
    nominal = session.id.rpartition("-")[2]
    if not nominal.isdigit():
        return True
    at = datetime.fromtimestamp(int(nominal), UTC)
    try:
        starts = recurrence_of(schedule).starts(at, at + timedelta(seconds=1))
    except (StationError, ValueError):
        return False
    return session_id_for(schedule.id, at) == session.id and bool(starts)


class PlayoutStore:
    """Implements ``scheduler.ScheduleRepository``, plus acks/events of ``DeviceHandler``."""

    def __init__(
        self,
        sessions: Sessions,
        *,
        clock: Callable[[], datetime] = _utcnow,
        priorities: Mapping[str, int] | None = None,
        live_url: str | None = None,
        misfire_grace_s: float = 300.0,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.priorities = dict(priorities or DEFAULT_LEVELS)
        self.live_url = live_url  # where clusters hear a live slot; None: live slots are silent
        self.misfire_grace = timedelta(seconds=misfire_grace_s)
        # Called with a cluster id on its birth (the dispatcher re-sends its schedule list).
        self.online_listeners: list[Callable[[str], None]] = []

    def cluster_online(self, cluster_id: str) -> None:
        for listener in self.online_listeners:
            listener(cluster_id)

    def _level(self, name: str) -> int:
        return max(0, min(100, self.priorities.get(name, self.priorities.get("scheduled", 50))))

    # -- ScheduleRepository ----------------------------------------------------------------

    async def pending_schedules(self) -> list[ScheduleSpec]:
        async with self.sessions() as db:
            rows = await db.exec(select(Schedule).where(Schedule.status == ScheduleStatus.PENDING))
            return [ScheduleSpec(s.id, s.start_at, "pending") for s in rows if s.id is not None]

    async def prepare_session(
        self,
        schedule_id: int,
        start_at: datetime,
        expires_at: datetime,
        *,
        occurrence: datetime | None = None,
    ) -> SessionPlan | None:
        try:
            return await self._prepare(schedule_id, start_at, expires_at, occurrence)
        except IntegrityError:  # made at the same moment by another path: use that one
            return await self._prepare(schedule_id, start_at, expires_at, occurrence)

    async def _prepare(
        self,
        schedule_id: int,
        start_at: datetime,
        expires_at: datetime,
        occurrence: datetime | None,
    ) -> SessionPlan | None:
        async with self.sessions() as db:
            schedule = await db.get(Schedule, schedule_id)
            if schedule is None or schedule.status == ScheduleStatus.CANCELLED:
                return None  # cancelled while its job was firing: send nothing
            items, parts = await programme_parts(db, schedule.programme_id, self.live_url)
            volume, priority = schedule.volume, self._level(schedule.priority)
            session_id = session_id_for(schedule_id, occurrence or start_at)
            if occurrence is None:  # one-off: its one session, whatever its start became
                query = select(PlaySession).where(PlaySession.schedule_id == schedule_id)
            else:
                query = select(PlaySession).where(PlaySession.id == session_id)
            existing = (await db.exec(query)).first()
            if existing is not None:  # re-dispatch after a crash: same session, same commands
                if existing.status == PlaySessionStatus.FAILED:
                    return None  # recorded missed: never play
                records = await db.exec(
                    select(PlayRecord.cluster_id).where(PlayRecord.session_id == existing.id)
                )
                return SessionPlan(
                    existing.id,
                    existing.start_at,
                    existing.expires_at,
                    list(records),
                    items,
                    volume,
                    tuple(parts),
                    priority,
                    bridges_of(existing.bridges),
                )
            cluster_ids, bridges = await resolve_receivers(db, schedule.targets)
            if not cluster_ids or not any(not isinstance(p, SilencePart) for p in parts):
                return None
            session = PlaySession(
                id=session_id,
                schedule_id=schedule_id,
                programme_id=schedule.programme_id,
                start_at=start_at,
                expires_at=expires_at,
                priority=priority,
                bridges=bridges_json(bridges),
            )
            db.add(session)
            await db.flush()  # the session row must exist before records reference it
            db.add_all(
                PlayRecord(
                    session_id=session.id,
                    cluster_id=cid,
                    status=PlayRecordStatus.SENT,
                    scheduled_start=start_at,
                )
                for cid in cluster_ids
            )
            await db.commit()
            return SessionPlan(
                session.id,
                start_at,
                expires_at,
                cluster_ids,
                items,
                volume,
                tuple(parts),
                priority,
                bridges,
            )

    async def due_occurrences(
        self, window_start: datetime, window_end: datetime
    ) -> list[OccurrenceSpec]:
        from station._schedules import recurrence_of  # station._schedules imports much

        async with self.sessions() as db:
            rows = (
                await db.exec(select(Schedule).where(Schedule.status == ScheduleStatus.ACTIVE))
            ).all()
            found: list[OccurrenceSpec] = []
            for row in rows:
                if row.id is None or row.recurrence == RecurrenceKind.ONCE:
                    continue
                grace = (
                    self.misfire_grace
                    if row.misfire_grace_s is None
                    else timedelta(seconds=row.misfire_grace_s)
                )
                try:
                    starts = recurrence_of(row).starts(max(window_start, row.start_at), window_end)
                except (StationError, ValueError) as exc:
                    log.warning("schedule %d: bad recurrence, skipped: %s", row.id, exc)
                    continue
                found.extend(OccurrenceSpec(row.id, start, grace) for start in starts)
            if not found:
                return []
            done = await db.exec(
                select(PlaySession.id).where(
                    col(PlaySession.id).in_([o.session_id for o in found]),
                    PlaySession.status != PlaySessionStatus.PENDING,
                )
            )
            seen = set(done.all())
            return [o for o in found if o.session_id not in seen]

    async def mark_occurrence_missed(self, spec: OccurrenceSpec, reason: str) -> None:
        """Record a skipped occurrence: a failed session, one failed record per cluster."""
        async with self.sessions() as db:
            schedule = await db.get(Schedule, spec.schedule_id)
            if schedule is None:
                return
            session = await db.get(PlaySession, spec.session_id)
            if session is None:
                session = PlaySession(
                    id=spec.session_id,
                    schedule_id=spec.schedule_id,
                    programme_id=schedule.programme_id,
                    start_at=spec.occurrence,
                    expires_at=spec.occurrence,
                )
                db.add(session)
                await db.flush()
                cluster_ids = await resolve_targets(db, schedule.targets)
            else:
                records = await db.exec(
                    select(PlayRecord.cluster_id).where(PlayRecord.session_id == session.id)
                )
                cluster_ids = list(records.all())
            session.status = PlaySessionStatus.FAILED
            db.add(session)
            for cid in cluster_ids:
                record = await self._record(db, session.id, cid)
                if record is None:
                    record = PlayRecord(
                        session_id=session.id,
                        cluster_id=cid,
                        status=PlayRecordStatus.FAILED,
                        scheduled_start=spec.occurrence,
                    )
                if record.status == PlayRecordStatus.SENT:
                    record.status = PlayRecordStatus.FAILED
                record.error_code = record.error_code or reason
                db.add(record)
            await db.commit()
            log.warning(
                "session %s recorded missed: %s",
                spec.session_id,
                reason,
                extra={"session_id": spec.session_id},
            )

    async def upcoming_sessions(
        self, window_start: datetime, window_end: datetime
    ) -> list[SessionPlan]:
        from station._schedules import recurrence_of

        async with self.sessions() as db:
            rows = (
                await db.exec(
                    select(PlaySession).where(
                        col(PlaySession.status).in_(
                            [PlaySessionStatus.PENDING, PlaySessionStatus.DISPATCHED]
                        ),
                        col(PlaySession.start_at) >= window_start,
                        col(PlaySession.start_at) < window_end,
                    )
                )
            ).all()
            if not rows:
                return []
            ids = [r.id for r in rows]
            schedules = {
                s.id: s
                for s in await db.exec(
                    select(Schedule).where(
                        col(Schedule.id).in_({r.schedule_id for r in rows if r.schedule_id})
                    )
                )
            }
            clusters: dict[str, list[str]] = {}
            for sid, cid in (
                await db.exec(
                    select(PlayRecord.session_id, PlayRecord.cluster_id).where(
                        col(PlayRecord.session_id).in_(ids),
                        col(PlayRecord.status).in_([PlayRecordStatus.SENT, PlayRecordStatus.ACKED]),
                    )
                )
            ).all():
                clusters.setdefault(sid, []).append(cid)
            parts_of: dict[int, tuple[list[ItemRef], list[Part]]] = {}
            found: list[SessionPlan] = []
            for row in rows:
                schedule = schedules.get(row.schedule_id) if row.schedule_id else None
                if schedule is None or not _still_airs(schedule, row, recurrence_of):
                    continue
                if row.programme_id not in parts_of:
                    parts_of[row.programme_id] = await programme_parts(
                        db, row.programme_id, self.live_url
                    )
                items, parts = parts_of[row.programme_id]
                found.append(
                    SessionPlan(
                        row.id,
                        row.start_at,
                        row.expires_at,
                        sorted(clusters.get(row.id, [])),
                        items,
                        schedule.volume,
                        tuple(parts),
                        self._level(schedule.priority),
                    )
                )
            return found

    async def record_dispatch(
        self, schedule_id: int, session_id: str, failures: dict[str, str]
    ) -> None:
        async with self.sessions() as db:
            schedule = await db.get(Schedule, schedule_id)
            session = await db.get(PlaySession, session_id)
            if schedule is not None and schedule.status == ScheduleStatus.PENDING:
                schedule.status = ScheduleStatus.DISPATCHED  # recurring ones stay active
                db.add(schedule)
            if session is not None:
                session.status = PlaySessionStatus.DISPATCHED
                session.dispatched_at = self.clock()
                db.add(session)
            for cluster_id, _error in failures.items():
                record = await self._record(db, session_id, cluster_id)
                if record is not None and record.status == PlayRecordStatus.SENT:
                    record.status = PlayRecordStatus.FAILED
                    record.error_code = "send_failed"
                    db.add(record)
            await db.commit()

    async def mark_missed(self, schedule_id: int, reason: str) -> None:
        async with self.sessions() as db:
            schedule = await db.get(Schedule, schedule_id)
            if schedule is not None and schedule.status == ScheduleStatus.PENDING:
                schedule.status = ScheduleStatus.MISSED
                db.add(schedule)
                await db.commit()
                log.warning("schedule %d marked missed: %s", schedule_id, reason)

    # -- proof of play (device acks and playback events) -------------------------------

    async def on_ack(self, message: Ack) -> None:
        segment, _, rest = message.cmd_id.partition(".")
        if not rest.endswith((".play", ".stream")):
            return  # acks of other commands carry nothing for proof of play
        session_id, _k = base_session_id(segment)
        status = PlayRecordStatus.ACKED if message.ok else PlayRecordStatus.NACKED
        await self._advance(session_id, message.cluster_id, status, error_code=message.code)

    async def on_event(self, message: Event) -> None:
        status = _EVENT_STATUS.get(message.type)
        if status is None or message.session_id is None:
            return  # faults and prefetch reports are the fleet monitor's business
        session_id, k = base_session_id(message.session_id)
        if k > 0 and status != PlayRecordStatus.FINISHED and status != PlayRecordStatus.INTERRUPTED:
            return  # a later segment: its start is not the session's; only its end counts
        if k > 0:  # the session ends when its last segment (or resumption) does
            await self._advance(
                session_id,
                message.cluster_id,
                status,
                finished_at=message.finished_at,
                interrupted_by=(
                    base_session_id(message.interrupted_by)[0] if message.interrupted_by else None
                ),
            )
            return
        fields: dict[str, Any] = {"clock_offset_ms": message.clock_offset_ms}
        if message.started_at is not None:
            fields["started_at"] = message.started_at
        if message.finished_at is not None:
            fields["finished_at"] = message.finished_at
        if message.played_ms is not None:
            fields["played_ms"] = message.played_ms
        if message.bytes_downloaded is not None:
            fields["bytes_downloaded"] = message.bytes_downloaded
        if message.code is not None:
            fields["error_code"] = message.code
        if message.interrupted_by is not None:
            fields["interrupted_by"] = base_session_id(message.interrupted_by)[0]
        await self._advance(session_id, message.cluster_id, status, **fields)

    async def _record(
        self, db: AsyncSession, session_id: str, cluster_id: str
    ) -> PlayRecord | None:
        query = select(PlayRecord).where(
            PlayRecord.session_id == session_id, PlayRecord.cluster_id == cluster_id
        )
        return (await db.exec(query)).first()

    async def _advance(
        self, session_id: str, cluster_id: str, status: PlayRecordStatus, **fields: Any
    ) -> None:
        async with self.sessions() as db:
            record = await self._record(db, session_id, cluster_id)
            if record is None:
                log.info(
                    "no play record for session %s on %s",
                    session_id,
                    cluster_id,
                    extra={"session_id": session_id, "cluster_id": cluster_id},
                )
                return
            if _RANK[status] < _RANK[PlayRecordStatus(record.status)]:
                return
            record.status = status
            for name, value in fields.items():
                if value is not None:
                    setattr(record, name, value)
            if record.started_at is not None:
                record.skew_ms = skew_ms(
                    record.scheduled_start, record.started_at, record.clock_offset_ms
                )
            db.add(record)
            await db.commit()
