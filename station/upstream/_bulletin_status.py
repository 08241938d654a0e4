"""``bulletin_status`` messages: what the station did with a bulletin, told to the province.

One mapping for every class (docs/upstream.md, "bulletin_status"): ``bulletin_id`` (the full
upstream id), ``status``, ``decided_at`` (when the station reached that status),
``decided_by`` (who: an operator, ``cli:<login>`` or ``system``) and ``details``.

- priority / normal (``_placement``): ``scheduled`` or ``declined``, the operator's decision;
- emergency: ``confirmed`` (an operator confirmed it: ``_queries.confirm_emergency``),
  ``on_air`` (the station's ``EmergencyTrigger`` started emergency session ``emergency_id``),
  ``trigger_failed`` (the trigger raised; the bulletin waits for a new confirmation) and, once
  that session is over (finished or stopped), ``aired`` with how many of its targeted clusters
  played it (``collect_aired``, run by the upstream collector).

Every message is enqueued in the transaction of the change it reports; the keys come from the
facts (the bulletin, the emergency session, the time of a confirmation or failure), so a retry,
a restart or a second collector run never queues one twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from station.db import (
    BulletinClass,
    BulletinStatus,
    OutboxMessage,
    PlayRecord,
    PlayRecordStatus,
    PlaySession,
    PlaySessionStatus,
    UpstreamBulletin,
)

from ._outbox import Sessions, enqueue, outbox_key

__all__ = [
    "AIRED",
    "CONFIRMED",
    "ON_AIR",
    "SYSTEM_NAME",
    "TRIGGER_FAILED",
    "collect_aired",
    "enqueue_status",
    "record_on_air",
    "status_key",
    "status_payload",
    "unix_ms",
]

KIND = "bulletin_status"
CONFIRMED = "confirmed"
ON_AIR = "on_air"
TRIGGER_FAILED = "trigger_failed"
AIRED = "aired"
SYSTEM_NAME = "system"  # ``decided_by`` of what the station did by itself
EMERGENCY_KIND = "emergency"  # ``PlaySession.kind`` of an emergency session
# A cluster "played" the emergency when its record got this far (as the proof-of-play ratios).
PLAYED = (PlayRecordStatus.STARTED, PlayRecordStatus.FINISHED, PlayRecordStatus.INTERRUPTED)
SETTLED = (
    PlayRecordStatus.FINISHED,
    PlayRecordStatus.INTERRUPTED,
    PlayRecordStatus.FAILED,
    PlayRecordStatus.NACKED,
)
OVER = (PlaySessionStatus.DONE, PlaySessionStatus.FAILED)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def status_key(upstream_id: str, status: str, fact: str = "") -> str:
    """``bulletin:<upstream id>:<status>``, plus ``:<fact>`` when the status can recur for
    one bulletin (a second confirmation after a failed trigger, a second failure)."""
    key = f"bulletin:{upstream_id}:{status}"
    return f"{key}:{fact}" if fact else key


def unix_ms(at: datetime) -> str:
    return str(round(at.timestamp() * 1000))


def status_payload(
    upstream_id: str, status: str, at: datetime, by: str, details: dict[str, Any]
) -> dict[str, Any]:
    return {
        "bulletin_id": upstream_id,
        "status": status,
        "decided_at": at.isoformat(),
        "decided_by": by,
        "details": dict(details),
    }


async def enqueue_status(
    db: AsyncSession,
    upstream_id: str,
    status: str,
    at: datetime,
    by: str,
    details: dict[str, Any],
    *,
    fact: str = "",
) -> bool:
    """Queue one ``bulletin_status`` message in ``db``'s transaction (False: already queued)."""
    return await enqueue(
        db,
        KIND,
        status_key(upstream_id, status, fact),
        status_payload(upstream_id, status, at, by, details),
    )


async def _record_counts(db: AsyncSession, session_id: str) -> dict[str, int]:
    rows = await db.exec(
        select(PlayRecord.status, func.count())
        .where(PlayRecord.session_id == session_id)
        .group_by(PlayRecord.status)
    )
    return {str(status): int(n) for status, n in rows.all()}


async def record_on_air(
    sessions: Sessions, bulletin: UpstreamBulletin, emergency_id: str, at: datetime
) -> bool:
    """The trigger started emergency session ``emergency_id`` for ``bulletin`` (now
    ``triggered``): link them (``programme_id`` = the emergency's programme, which is how
    ``collect_aired`` finds the session later) and queue ``on_air``, in one transaction.
    Returns False when it was reported already."""
    async with sessions() as db:
        session = await db.get(PlaySession, emergency_id)
        targeted = None
        if session is not None:
            targeted = sum((await _record_counts(db, emergency_id)).values())
            await db.exec(
                sa.update(UpstreamBulletin)
                .where(
                    col(UpstreamBulletin.id) == bulletin.id,
                    col(UpstreamBulletin.status) == BulletinStatus.TRIGGERED,
                )
                .values(programme_id=session.programme_id)
            )
        added = await enqueue_status(
            db,
            bulletin.upstream_id,
            ON_AIR,
            at,
            SYSTEM_NAME,
            {
                "emergency_id": emergency_id,
                "started_at": _iso(session.start_at if session is not None else at),
                "targeted": targeted,
                "confirmed_by": bulletin.decided_by or None,
                "triggered_by": session.triggered_by if session is not None else None,
            },
            fact=emergency_id,
        )
        await db.commit()
        return added


def aired_details(session: PlaySession, counts: dict[str, int]) -> dict[str, Any]:
    ended = "stopped" if session.stopped_at is not None else "finished"
    if session.status == PlaySessionStatus.FAILED:
        ended = "failed"
    return {
        "emergency_id": session.id,
        "ended": ended,
        "started_at": _iso(session.start_at),
        "stopped_at": _iso(session.stopped_at),
        "stopped_by": session.stopped_by,
        "targeted": sum(counts.values()),
        "played": sum(counts.get(str(s), 0) for s in PLAYED),
        "by_status": dict(sorted(counts.items())),
    }


async def collect_aired(
    sessions: Sessions, now: datetime, window: timedelta, report_after: timedelta
) -> int:
    """Queue ``aired`` for each triggered emergency bulletin whose session is over (finished,
    stopped or failed: ``done``/``failed``) and whose proof of play is in: every record final
    (finished, interrupted, failed, nacked), or ``report_after`` past the session's start, the
    rule proof of play follows. Once per session (key ``bulletin:<id>:aired:<emergency id>``);
    sessions older than ``window`` are left alone. Returns the rows added."""
    async with sessions() as db:
        found = (
            await db.exec(
                select(UpstreamBulletin, PlaySession)
                .join(
                    PlaySession,
                    col(PlaySession.programme_id) == col(UpstreamBulletin.programme_id),
                )
                .where(
                    UpstreamBulletin.bulletin_class == BulletinClass.EMERGENCY,
                    UpstreamBulletin.status == BulletinStatus.TRIGGERED,
                    PlaySession.kind == EMERGENCY_KIND,
                    col(PlaySession.status).in_(OVER),
                    PlaySession.start_at >= now - window,
                )
                .order_by(col(PlaySession.start_at), col(PlaySession.id))
            )
        ).all()
        if not found:
            return 0
        wanted = {outbox_key(status_key(b.upstream_id, AIRED, s.id)): (b, s) for b, s in found}
        have = set(
            (
                await db.exec(
                    select(OutboxMessage.key).where(col(OutboxMessage.key).in_(list(wanted)))
                )
            ).all()
        )
        added = 0
        for key, (bulletin, session) in wanted.items():
            if key in have:
                continue
            counts = await _record_counts(db, session.id)
            settled = all(PlayRecordStatus(s) in SETTLED for s in counts)
            if not settled and session.start_at > now - report_after:
                continue  # proof of play still coming in
            ended = await db.exec(
                select(func.max(PlayRecord.finished_at)).where(PlayRecord.session_id == session.id)
            )
            at = session.stopped_at or ended.one() or now
            added += await enqueue_status(
                db,
                bulletin.upstream_id,
                AIRED,
                at,
                SYSTEM_NAME,
                aired_details(session, counts),
                fact=session.id,
            )
        await db.commit()
        return added
