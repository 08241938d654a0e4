"""Proof of play by day [nhật ký phát]: what each cluster played, and each schedule's ratio."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import col, select

from station._services import Sessions
from station.db import PlayRecord, PlayRecordStatus, PlaySession

ON_TIME_MS = 1000  # started within this of the scheduled time (after clock correction)
_PLAYED = (PlayRecordStatus.STARTED, PlayRecordStatus.FINISHED, PlayRecordStatus.INTERRUPTED)


@dataclass(frozen=True, slots=True)
class PlayRow:
    session: PlaySession
    record: PlayRecord

    @property
    def on_time(self) -> bool:
        r = self.record
        return r.status in _PLAYED and r.skew_ms is not None and abs(r.skew_ms) <= ON_TIME_MS


@dataclass(frozen=True, slots=True)
class ScheduleRatio:
    key: str  # "schedule 12" or "emergency"
    targeted: int
    on_time: int

    @property
    def ratio(self) -> float:
        return self.on_time / self.targeted if self.targeted else 0.0


async def plays_on(
    sessions: Sessions, day: date, timezone: str, *, schedule_id: int | None = None
) -> list[PlayRow]:
    tz = ZoneInfo(timezone)
    start = datetime.combine(day, time(), tz)
    end = start + timedelta(days=1)
    query = (
        select(PlaySession, PlayRecord)
        .join(PlayRecord, col(PlayRecord.session_id) == col(PlaySession.id))
        .where(col(PlayRecord.scheduled_start) >= start, col(PlayRecord.scheduled_start) < end)
        .order_by(col(PlayRecord.scheduled_start), col(PlayRecord.cluster_id))
    )
    if schedule_id is not None:
        query = query.where(PlaySession.schedule_id == schedule_id)
    async with sessions() as db:
        return [PlayRow(s, r) for s, r in (await db.exec(query)).all()]


def ratios(rows: Sequence[PlayRow]) -> list[ScheduleRatio]:
    """Played on time / targeted, per schedule (emergencies together)."""
    counts: dict[str, list[int]] = {}
    for row in rows:
        sid = row.session.schedule_id
        key = f"schedule {sid}" if sid is not None else row.session.kind
        tally = counts.setdefault(key, [0, 0])
        tally[0] += 1
        tally[1] += row.on_time
    return [ScheduleRatio(k, t, o) for k, (t, o) in counts.items()]
