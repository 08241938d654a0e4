"""Collectors: turn station data into outbox rows. Each run is idempotent (keys are derived
from the data, and a key already in the outbox is skipped), so running twice, or again after a
crash, adds nothing new.

- schedules: one message per version of a schedule (key ``schedule:<id>:<updated_at>``);
- proof of play: one message per play record once it is final (finished, interrupted, failed,
  nacked) or ``play_report_after_s`` after its start (key ``play:<session>:<cluster>``);
- cluster status: one snapshot per ``status_interval_s`` bucket (key ``status:<bucket>``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from station.db import (
    Cluster,
    OutboxMessage,
    PlayRecord,
    PlayRecordStatus,
    PlaySession,
    Schedule,
)

from ._outbox import Sessions

PLAY_BATCH = 200
FINAL_PLAY = (
    PlayRecordStatus.FINISHED,
    PlayRecordStatus.INTERRUPTED,
    PlayRecordStatus.FAILED,
    PlayRecordStatus.NACKED,
)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


async def _add_missing(db: AsyncSession, kind: str, items: Iterable[tuple[str, Any]]) -> int:
    wanted = dict(items)
    if not wanted:
        return 0
    have: set[str] = set()
    keys = list(wanted)
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        found = await db.exec(select(OutboxMessage.key).where(col(OutboxMessage.key).in_(chunk)))
        have.update(found.all())
    added = 0
    for key, payload in wanted.items():  # dict order = the query's order = delivery order
        if key not in have:
            db.add(OutboxMessage(kind=kind, key=key, payload=payload))
            added += 1
    return added


def schedule_payload(schedule: Schedule) -> dict[str, Any]:
    return {
        "schedule_id": schedule.id,
        "programme_id": schedule.programme_id,
        "start_at": _iso(schedule.start_at),
        "status": str(schedule.status),
        "recurrence": str(schedule.recurrence),
        "time_of_day": schedule.time_of_day.isoformat() if schedule.time_of_day else None,
        "weekdays": schedule.weekdays,
        "valid_from": schedule.valid_from.isoformat() if schedule.valid_from else None,
        "valid_to": schedule.valid_to.isoformat() if schedule.valid_to else None,
        "timezone": schedule.timezone,
        "priority": schedule.priority,
        "targets": dict(schedule.targets),
        "updated_at": _iso(schedule.updated_at),
    }


def play_payload(record: PlayRecord, programme_id: int | None) -> dict[str, Any]:
    return {
        "session_id": record.session_id,
        "cluster_id": record.cluster_id,
        "programme_id": programme_id,
        "status": str(record.status),
        "scheduled_start": _iso(record.scheduled_start),
        "started_at": _iso(record.started_at),
        "finished_at": _iso(record.finished_at),
        "skew_ms": record.skew_ms,
        "played_ms": record.played_ms,
        "error_code": record.error_code,
    }


async def collect_schedules(sessions: Sessions, now: datetime, window: timedelta) -> int:
    async with sessions() as db:
        rows = await db.exec(
            select(Schedule)
            .where(Schedule.updated_at >= now - window)
            .order_by(col(Schedule.updated_at), col(Schedule.id))
        )
        items = [
            (f"schedule:{s.id}:{int(s.updated_at.timestamp() * 1000)}", schedule_payload(s))
            for s in rows
        ]
        added = await _add_missing(db, "schedule", items)
        await db.commit()
        return added


def _play_key() -> sa.ColumnElement[str]:
    return sa.literal("play:") + col(PlayRecord.session_id) + ":" + col(PlayRecord.cluster_id)


async def collect_plays(
    sessions: Sessions,
    now: datetime,
    window: timedelta,
    report_after: timedelta,
    batch: int = PLAY_BATCH,
) -> int:
    """Queue proof of play not queued yet, ``batch`` rows per transaction (the anti-join on
    the unique key index finds them without reading what was sent before)."""
    added = 0
    while True:
        async with sessions() as db:
            rows = (
                await db.exec(
                    select(PlayRecord, PlaySession.programme_id)
                    .join(PlaySession, col(PlaySession.id) == col(PlayRecord.session_id))
                    .where(PlayRecord.scheduled_start >= now - window)
                    .where(
                        col(PlayRecord.status).in_(FINAL_PLAY)
                        | (PlayRecord.scheduled_start <= now - report_after)
                    )
                    .where(~sa.exists().where(col(OutboxMessage.key) == _play_key()))
                    .order_by(col(PlayRecord.scheduled_start), col(PlayRecord.id))
                    .limit(batch)
                )
            ).all()
            db.add_all(
                OutboxMessage(
                    kind="proof_of_play",
                    key=f"play:{r.session_id}:{r.cluster_id}",
                    payload=play_payload(r, programme_id),
                )
                for r, programme_id in rows
            )
            await db.commit()
        added += len(rows)
        if len(rows) < batch:
            return added
        await asyncio.sleep(0)  # let the loop breathe between batches


async def collect_cluster_status(sessions: Sessions, now: datetime, interval_s: float) -> int:
    bucket = int(now.timestamp() // interval_s)
    async with sessions() as db:
        clusters = (await db.exec(select(Cluster).order_by(col(Cluster.id)))).all()
        payload = {
            "at": now.isoformat(),
            "clusters": [
                {
                    "cluster_id": c.id,
                    "kind": str(c.kind),
                    "status": str(c.status),
                    "online": c.online,
                    "village_id": c.village_id,
                    "last_seen_at": _iso(c.last_seen_at),
                }
                for c in clusters
            ],
        }
        added = await _add_missing(
            db, "cluster_status", [(f"status:{int(interval_s)}:{bucket}", payload)]
        )
        await db.commit()
        return added
