"""The database side of playout: the scheduler's repository and proof of play from devices.

Cluster state (status, heartbeats, alerts) is ``station._monitor.FleetMonitor``'s job;
``DeviceHandlers`` there composes both into the gateway's ``DeviceHandler``.

Each method is one short transaction; acks and events may be written in batches (one
transaction each, ``apply_proof``). Proof of play (``PlayRecord``) only moves forward:
a late ack never overwrites a finished record. A segment reported interrupted at or after its
planned end played its slot and is recorded finished (``played_to_end``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from devices.protocol import Ack, Event
from scheduler import (
    DEFAULT_LEVELS,
    RESUME_BASE,
    SEGMENT_GUARD_MS,
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
    segment_ends,
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
    UTCDateTime,
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


_ENDS = (PlayRecordStatus.FINISHED, PlayRecordStatus.INTERRUPTED)
SEND_FAILED = "send_failed"  # the play command did not go out (a cluster's events clear it)
# A segment cut no earlier than this before its planned end played its slot (``played_to_end``):
# the allowance the dispatcher already leaves between a session's own segments, not a second knob.
END_GRACE = timedelta(milliseconds=SEGMENT_GUARD_MS)


@dataclass(frozen=True, slots=True)
class SegmentEnd:
    """What a ``playback_finished``/``playback_interrupted`` of one segment reports."""

    finished_at: datetime | None
    played_ms: int | None
    bytes_downloaded: int | None


def count_segment_end(record: PlayRecord, end: SegmentEnd) -> bool:
    """Add one segment's end to a session's record (call before moving its status); False:
    already counted, leave the record as it is.

    A session airs as several segments (media runs, relay/live streams, resumptions after a
    preemption); its record's ``played_ms`` and ``bytes_downloaded`` are their sums, each
    segment counted once, at its end (an interrupted one up to the interruption), and
    ``finished_at`` is the last end. The first end with a time replaces what a start said so
    far (also after the station marked the record interrupted itself). A cluster's events are
    handled in order and its segments end one after another, so an end not after the last one
    counted is a redelivery (QoS 1, a replayed queue) and adds nothing. An end without a time
    (a segment that never started: ``busy``, ``late``) adds nothing either, but still counts
    as the session's latest news.
    """
    last = record.finished_at
    if last is None:  # nothing with an end time counted yet
        if end.played_ms is not None:
            record.played_ms = end.played_ms
        if end.bytes_downloaded is not None:
            record.bytes_downloaded = end.bytes_downloaded
        record.finished_at = end.finished_at
        return True
    if end.finished_at is None:
        return True
    if end.finished_at <= last:
        return False
    record.played_ms = (record.played_ms or 0) + (end.played_ms or 0)
    record.bytes_downloaded = (record.bytes_downloaded or 0) + (end.bytes_downloaded or 0)
    record.finished_at = end.finished_at
    return True


def _add_segment_end_statement() -> sa.Update:
    """``count_segment_end`` as one atomic UPDATE per counted end (run as an executemany).

    The sums are added in SQL to what the row holds when the UPDATE runs, not to the value
    read at the start of the batch: our reads are not isolated (SQLite's deferred BEGIN,
    PostgreSQL's READ COMMITTED), so a read-add-write could lose an end another writer
    counted in between. The guard (no end counted yet, or an earlier one) makes the
    redelivery check atomic too: an end the row already has is not added twice. The first end
    replaces what a start said: its values come from the caller (``first_*``), which saw the
    batch's start events that are not written yet.
    """
    table = PlayRecord.__table__  # type: ignore[attr-defined]  # SQLModel sets it
    at = sa.bindparam("end_at", type_=UTCDateTime())
    no_end = table.c.finished_at.is_(None)

    def summed(column: sa.Column[int], kind: type[sa.Integer]) -> sa.ColumnElement[int]:
        first = sa.cast(sa.bindparam(f"first_{column.name}"), kind)
        added = sa.cast(sa.bindparam(f"add_{column.name}"), kind)
        return sa.case((no_end, first), else_=sa.func.coalesce(column, 0) + added)

    return (
        sa.update(table)
        .where(
            table.c.session_id == sa.bindparam("record_session"),
            table.c.cluster_id == sa.bindparam("record_cluster"),
            sa.or_(no_end, table.c.finished_at < at),
        )
        .values(
            played_ms=summed(table.c.played_ms, sa.Integer),
            bytes_downloaded=summed(table.c.bytes_downloaded, sa.BigInteger),
            finished_at=at,
        )
    )


_ADD_SEGMENT_END = _add_segment_end_statement()
_SUMMED = ("played_ms", "bytes_downloaded", "finished_at")


def _sum_in_sql(
    record: PlayRecord, end: SegmentEnd, last: datetime | None, sums: list[dict[str, Any]]
) -> None:
    """Hand a counted end (``count_segment_end`` already ran on ``record``, whose end was
    ``last`` before) to ``_ADD_SEGMENT_END``, and keep the ORM from writing the summed
    columns itself: the record keeps the values in memory (for the rest of the batch) as if
    they had been loaded, so its flush leaves them out."""
    if last is not None and end.finished_at is None:
        return  # counted as news, adds nothing
    sums.append(
        {
            "record_session": record.session_id,
            "record_cluster": record.cluster_id,
            "end_at": end.finished_at,
            "first_played_ms": record.played_ms,
            "first_bytes_downloaded": record.bytes_downloaded,
            "add_played_ms": end.played_ms or 0,
            "add_bytes_downloaded": end.bytes_downloaded or 0,
        }
    )
    for name in _SUMMED:
        set_committed_value(record, name, getattr(record, name))


def played_to_end(end: SegmentEnd, planned_end: datetime | None) -> bool:
    """Did an interrupted segment play to its planned end (so the cut took nothing from it)?

    ``planned_end`` is where the dispatcher planned it to stop (``segment_ends``): a stream's
    ``until``, the end of a media run's items. A loaded cluster stops a relay a little after its
    ``until`` and is then cut by the next broadcast, scheduled back to back: listeners heard
    the whole slot, so that is a finished segment, not an interruption. The test is on the
    cluster's own clock (``finished_at`` as reported; the cluster started and stops by that
    clock, so its offset cancels out), with ``END_GRACE`` (100 ms) of timing noise before the
    end: start latency, millisecond timestamps. Whatever the cut (the next broadcast, an
    emergency, a stop), it counts only when it came at or after that point; a cut earlier is
    a real interruption, kept as reported (and resumed by ``scheduler.replay``). No planned
    end known (a resumption ``~r<n>``, a segment the programme no longer has): interrupted.
    """
    return (
        planned_end is not None
        and end.finished_at is not None
        and end.finished_at >= planned_end - END_GRACE
    )


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
        approval_required: bool = False,
    ) -> None:
        self.sessions = sessions
        # auth.approval_required: a programme airs only while its current version is approved
        # (checked at every reconcile and at fire time, so a withdrawal takes it off the air).
        self.approval_required = approval_required
        self.clock = clock
        self.priorities = dict(priorities or DEFAULT_LEVELS)
        self.live_url = live_url  # where clusters hear a live slot; None: live slots are silent
        self.misfire_grace = timedelta(seconds=misfire_grace_s)
        # Called with a cluster id on its birth (the dispatcher re-sends its schedule list).
        self.online_listeners: list[Callable[[str], None]] = []
        # Where acks/events go: None writes each at once (one transaction); the station's
        # DeviceHandlers buffers them and writes batches with ``apply_proof``.
        self.proof_sink: Callable[[ProofUpdate], Awaitable[None]] | None = None

    def cluster_online(self, cluster_id: str) -> None:
        for listener in self.online_listeners:
            listener(cluster_id)

    def _level(self, name: str) -> int:
        return max(0, min(100, self.priorities.get(name, self.priorities.get("scheduled", 50))))

    # -- ScheduleRepository ----------------------------------------------------------------

    async def pending_schedules(self) -> list[ScheduleSpec]:
        async with self.sessions() as db:
            rows = await db.exec(select(Schedule).where(Schedule.status == ScheduleStatus.PENDING))
            found = [s for s in rows if s.id is not None]
            held = await self._unapproved(db, [s.programme_id for s in found])
            return [
                ScheduleSpec(s.id, s.start_at, "pending")
                for s in found
                if s.id is not None and s.programme_id not in held
            ]

    async def _unapproved(self, db: AsyncSession, programme_ids: list[int]) -> set[int]:
        """Programmes waiting for approval (none when approval is not required)."""
        if not self.approval_required:
            return set()
        from station._schedules import unapproved_programmes

        return await unapproved_programmes(db, programme_ids)

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
            if await self._unapproved(db, [schedule.programme_id]):
                return None  # approval withdrawn (or an edit) since it was planned
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
                    rank=schedule.rank,
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
                rank=schedule.rank,
            )

    async def due_occurrences(
        self, window_start: datetime, window_end: datetime
    ) -> list[OccurrenceSpec]:
        from station._schedules import recurrence_of  # station._schedules imports much

        async with self.sessions() as db:
            rows = (
                await db.exec(select(Schedule).where(Schedule.status == ScheduleStatus.ACTIVE))
            ).all()
            held = await self._unapproved(db, [r.programme_id for r in rows])
            found: list[OccurrenceSpec] = []
            for row in rows:
                if row.id is None or row.recurrence == RecurrenceKind.ONCE:
                    continue
                if row.programme_id in held:
                    continue  # waiting for approval: neither dispatched nor recorded missed
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
            # Left out, a held session is withdrawn from the clusters' lists, as on a cancel.
            held = await self._unapproved(db, [r.programme_id for r in rows])
            for row in rows:
                schedule = schedules.get(row.schedule_id) if row.schedule_id else None
                if schedule is None or not _still_airs(schedule, row, recurrence_of):
                    continue
                if row.programme_id in held:
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
                        bridges_of(row.bridges),  # held on again after a restart
                        rank=schedule.rank,
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
                    record.error_code = SEND_FAILED
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
        ends = status in _ENDS
        if k > 0 and not ends:
            return  # a later segment: its start is not the session's; only its end counts
        fields: dict[str, Any] = {}
        if k == 0:  # the session's first segment: its start is the session's
            fields["clock_offset_ms"] = message.clock_offset_ms
            if message.started_at is not None:
                fields["started_at"] = message.started_at
            if message.code is not None:
                fields["error_code"] = message.code
            if not ends and message.bytes_downloaded is not None:
                fields["bytes_downloaded"] = message.bytes_downloaded  # so far; ends count
        if message.interrupted_by is not None:
            fields["interrupted_by"] = base_session_id(message.interrupted_by)[0]
        end = (
            SegmentEnd(message.finished_at, message.played_ms, message.bytes_downloaded)
            if ends
            else None
        )
        # The session ends when its last segment (or resumption) does.
        await self._advance(
            session_id, message.cluster_id, status, segment=k, segment_end=end, **fields
        )

    async def _record(
        self, db: AsyncSession, session_id: str, cluster_id: str
    ) -> PlayRecord | None:
        query = select(PlayRecord).where(
            PlayRecord.session_id == session_id, PlayRecord.cluster_id == cluster_id
        )
        return (await db.exec(query)).first()

    async def _advance(
        self,
        session_id: str,
        cluster_id: str,
        status: PlayRecordStatus,
        *,
        segment: int = 0,
        segment_end: SegmentEnd | None = None,
        **fields: Any,
    ) -> None:
        update = ProofUpdate(session_id, cluster_id, status, segment_end, fields, segment)
        if self.proof_sink is not None:
            await self.proof_sink(update)  # buffered: written in a batch by apply_proof
        else:
            await self.apply_proof([update])

    async def apply_proof(self, updates: Sequence[ProofUpdate]) -> None:
        """Write acks/events to their play records in one transaction, in the given order."""
        if not updates:
            return
        wanted = {(u.session_id, u.cluster_id) for u in updates}
        async with self.sessions() as db:
            rows = await db.exec(
                select(PlayRecord).where(
                    col(PlayRecord.session_id).in_({s for s, _c in wanted}),
                    col(PlayRecord.cluster_id).in_({c for _s, c in wanted}),
                )
            )
            records = {(r.session_id, r.cluster_id): r for r in rows.all()}
            sums: list[dict[str, Any]] = []  # counted segment ends, added in SQL
            for update in await self._judge_cuts(db, updates):
                record = records.get((update.session_id, update.cluster_id))
                if record is None:
                    log.info(
                        "no play record for session %s on %s",
                        update.session_id,
                        update.cluster_id,
                        extra={"session_id": update.session_id, "cluster_id": update.cluster_id},
                    )
                    continue
                last = record.finished_at
                if _advance_record(record, update):
                    db.add(record)
                    if update.segment_end is not None:
                        _sum_in_sql(record, update.segment_end, last, sums)
            if sums:
                await db.exec(_ADD_SEGMENT_END, params=sums)
            await db.commit()

    async def _judge_cuts(
        self, db: AsyncSession, updates: Sequence[ProofUpdate]
    ) -> Sequence[ProofUpdate]:
        """The updates, with each interrupted segment that had played to its planned end
        turned into a finished one (``played_to_end``); planned ends are read only for the
        sessions that have such a cut."""
        cut = {u.session_id for u in updates if _is_cut(u)}
        if not cut:
            return updates
        ends = await segment_ends(db, cut, self.live_url)
        return [
            _finished_if_played(u, ends.get(u.session_id, ())) if _is_cut(u) else u for u in updates
        ]


def _is_cut(update: ProofUpdate) -> bool:
    """An interrupted segment of the session's own plan that had started (it has an end time);
    a resumption's planned end is not kept (``segment_ends``)."""
    end = update.segment_end
    return (
        update.status == PlayRecordStatus.INTERRUPTED
        and end is not None
        and end.finished_at is not None
        and update.segment < RESUME_BASE
    )


def _finished_if_played(update: ProofUpdate, ends: Sequence[datetime]) -> ProofUpdate:
    assert update.segment_end is not None  # checked by _is_cut
    planned = ends[update.segment] if update.segment < len(ends) else None
    if not played_to_end(update.segment_end, planned):
        return update
    # Not cut: whatever came after it (named by the cluster) interrupted nothing.
    fields = {k: v for k, v in update.fields.items() if k != "interrupted_by"}
    return replace(update, status=PlayRecordStatus.FINISHED, fields=fields)


@dataclass(frozen=True, slots=True)
class ProofUpdate:
    """One ack or playback event for one play record, ready to write."""

    session_id: str
    cluster_id: str
    status: PlayRecordStatus
    segment_end: SegmentEnd | None
    fields: dict[str, Any]
    segment: int = 0  # the segment's index in its session (``scheduler.base_session_id``)


def _advance_record(record: PlayRecord, update: ProofUpdate) -> bool:
    """Move a record forward only (in memory); False if the update changes nothing."""
    status, segment_end = update.status, update.segment_end
    if _RANK[status] < _RANK[PlayRecordStatus(record.status)]:
        return False
    if segment_end is not None and not count_segment_end(record, segment_end):
        return False  # a redelivered end: counted already
    record.status = status
    if record.error_code == SEND_FAILED and _RANK[status] >= _RANK[PlayRecordStatus.STARTED]:
        record.error_code = None  # the play went out after all (a schedule list, a resend)
    for name, value in update.fields.items():
        if value is not None:
            setattr(record, name, value)
    if record.started_at is not None:
        record.skew_ms = skew_ms(record.scheduled_start, record.started_at, record.clock_offset_ms)
    return True
