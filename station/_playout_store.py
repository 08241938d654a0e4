"""The database side of playout: the scheduler's repository and the device message handler.

Each method is one short transaction. Proof of play (``PlayRecord``) only moves forward:
a late ack never overwrites a finished record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from devices.protocol import Ack, DeviceMessage, Event, Heartbeat, Status
from scheduler import ItemRef, ScheduleSpec, SessionPlan, session_id_for, skew_ms
from station.db import (
    Cluster,
    ClusterKind,
    ClusterStatus,
    MediaItem,
    PlayRecord,
    PlayRecordStatus,
    PlaySession,
    PlaySessionStatus,
    ProgrammeItem,
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
    """Resolve a schedule's targets to the ICT clusters that receive commands."""
    query = select(Cluster.id).where(
        Cluster.kind == ClusterKind.ICT, Cluster.status != ClusterStatus.RETIRED
    )
    if not targets.get("all"):
        query = query.where(col(Cluster.id).in_(list(targets.get("clusters", []))))
    return list((await db.exec(query.order_by(Cluster.id))).all())


class PlayoutStore:
    """Implements ``scheduler.ScheduleRepository`` and ``devices.DeviceHandler``."""

    def __init__(
        self,
        sessions: Sessions,
        *,
        auto_register: bool = False,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.sessions = sessions
        self.auto_register = auto_register
        self.clock = clock

    # -- ScheduleRepository ----------------------------------------------------------------

    async def pending_schedules(self) -> list[ScheduleSpec]:
        async with self.sessions() as db:
            rows = await db.exec(select(Schedule).where(Schedule.status == ScheduleStatus.PENDING))
            return [ScheduleSpec(s.id, s.start_at, "pending") for s in rows if s.id is not None]

    async def prepare_session(
        self, schedule_id: int, start_at: datetime, expires_at: datetime
    ) -> SessionPlan | None:
        async with self.sessions() as db:
            schedule = await db.get(Schedule, schedule_id)
            if schedule is None:
                return None
            items = await self._items(db, schedule.programme_id)
            existing = (
                await db.exec(select(PlaySession).where(PlaySession.schedule_id == schedule_id))
            ).first()
            if existing is not None:  # re-dispatch after a crash: same session, same commands
                records = await db.exec(
                    select(PlayRecord.cluster_id).where(PlayRecord.session_id == existing.id)
                )
                return SessionPlan(
                    existing.id, existing.start_at, existing.expires_at, list(records), items
                )
            cluster_ids = await target_cluster_ids(db, schedule.targets)
            if not cluster_ids or not items:
                return None
            session = PlaySession(
                id=session_id_for(schedule_id, start_at),
                schedule_id=schedule_id,
                programme_id=schedule.programme_id,
                start_at=start_at,
                expires_at=expires_at,
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
            return SessionPlan(session.id, start_at, expires_at, cluster_ids, items)

    async def _items(self, db: AsyncSession, programme_id: int) -> list[ItemRef]:
        rows = await db.exec(
            select(MediaItem)
            .join(ProgrammeItem, col(ProgrammeItem.media_id) == col(MediaItem.id))
            .where(ProgrammeItem.programme_id == programme_id)
            .order_by(col(ProgrammeItem.position))
        )
        return [
            ItemRef(m.id, m.sha256, m.size_bytes, m.duration_ms, m.codec)
            for m in rows
            if m.id is not None
        ]

    async def record_dispatch(
        self, schedule_id: int, session_id: str, failures: dict[str, str]
    ) -> None:
        async with self.sessions() as db:
            schedule = await db.get(Schedule, schedule_id)
            session = await db.get(PlaySession, session_id)
            if schedule is not None:
                schedule.status = ScheduleStatus.DISPATCHED
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

    # -- DeviceHandler ---------------------------------------------------------------------

    async def on_status(self, message: Status) -> None:
        async with self.sessions() as db:
            cluster = await db.get(Cluster, message.cluster_id)
            if cluster is None:
                return
            cluster.online = message.state == "online"
            cluster.last_seen_at = self.clock()
            if cluster.status not in (ClusterStatus.RETIRED, ClusterStatus.FAULTY):
                cluster.status = ClusterStatus(message.state)
            if message.state == "online":
                cluster.firmware = message.firmware or cluster.firmware
                cluster.model = message.model or cluster.model
                if message.capabilities is not None:
                    cluster.capabilities = message.capabilities.model_dump()
            db.add(cluster)
            await db.commit()

    async def on_heartbeat(self, message: Heartbeat) -> None:
        async with self.sessions() as db:
            cluster = await db.get(Cluster, message.cluster_id)
            if cluster is not None:
                cluster.last_seen_at = self.clock()
                db.add(cluster)
                await db.commit()

    async def on_ack(self, message: Ack) -> None:
        session_id, _, rest = message.cmd_id.partition(".")
        if not rest.endswith(".play"):
            return  # acks of other commands carry nothing for proof of play
        status = PlayRecordStatus.ACKED if message.ok else PlayRecordStatus.NACKED
        await self._advance(session_id, message.cluster_id, status, error_code=message.code)

    async def on_event(self, message: Event) -> None:
        status = _EVENT_STATUS[message.type]
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
        await self._advance(message.session_id, message.cluster_id, status, **fields)

    async def on_unknown_cluster(self, cluster_id: str, message: DeviceMessage) -> bool:
        if not self.auto_register or not isinstance(message, Status):
            return False
        async with self.sessions() as db:
            if await db.get(Cluster, cluster_id) is None:
                db.add(Cluster(id=cluster_id, name=cluster_id))
                await db.commit()
                log.info("auto-registered cluster %s", cluster_id)
        return True

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
                log.info("no play record for session %s on %s", session_id, cluster_id)
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
