"""Read and operator actions on the upstream tables (used by the CLI; the API can reuse them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import col, func, select

from station.db import (
    BulletinStatus,
    OutboxMessage,
    OutboxStatus,
    UpstreamBulletin,
    UpstreamCursor,
    UpstreamExchange,
)

from ._outbox import Sessions

__all__ = ["OutboxSummary", "confirm_emergency", "exchanges", "inbox", "outbox_summary"]


@dataclass(frozen=True)
class OutboxSummary:
    by_status: dict[str, int]
    oldest_pending: datetime | None
    head: OutboxMessage | None  # the pending row delivered next
    failed: list[OutboxMessage]
    last_exchange: UpstreamExchange | None
    bulletin_cursor: str


async def outbox_summary(sessions: Sessions) -> OutboxSummary:
    async with sessions() as db:
        counts = await db.exec(
            select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
        )
        by_status = {str(s): n for s, n in counts}
        pending = OutboxMessage.status == OutboxStatus.PENDING
        head = (
            await db.exec(select(OutboxMessage).where(pending).order_by(col(OutboxMessage.id)))
        ).first()
        failed = (
            await db.exec(
                select(OutboxMessage)
                .where(OutboxMessage.status == OutboxStatus.FAILED)
                .order_by(col(OutboxMessage.id))
                .limit(50)
            )
        ).all()
        last = (
            await db.exec(select(UpstreamExchange).order_by(col(UpstreamExchange.id).desc()))
        ).first()
        cursor = await db.get(UpstreamCursor, "bulletins")
    return OutboxSummary(
        by_status,
        head.created_at if head is not None else None,
        head,
        list(failed),
        last,
        cursor.value if cursor is not None else "",
    )


async def exchanges(
    sessions: Sessions, limit: int = 50, status: str | None = None
) -> list[UpstreamExchange]:
    async with sessions() as db:
        query = select(UpstreamExchange).order_by(col(UpstreamExchange.id).desc()).limit(limit)
        if status:
            query = query.where(UpstreamExchange.status == status)
        return list(reversed((await db.exec(query)).all()))


async def inbox(sessions: Sessions, include_done: bool = False) -> list[UpstreamBulletin]:
    async with sessions() as db:
        query = select(UpstreamBulletin).order_by(col(UpstreamBulletin.id))
        if not include_done:
            query = query.where(
                col(UpstreamBulletin.status).in_(
                    [
                        BulletinStatus.INBOX,
                        BulletinStatus.PROPOSED,
                        BulletinStatus.CONFIRM_NEEDED,
                        BulletinStatus.CONFIRMED,
                    ]
                )
            )
        return list((await db.exec(query)).all())


async def confirm_emergency(sessions: Sessions, bulletin_id: int) -> UpstreamBulletin:
    """An operator confirms an emergency bulletin; the running station triggers it next tick."""
    from station._services import StationError

    async with sessions() as db:
        row = await db.get(UpstreamBulletin, bulletin_id)
        if row is None:
            raise StationError(f"unknown bulletin {bulletin_id}")
        if row.status != BulletinStatus.CONFIRM_NEEDED:
            raise StationError(f"bulletin {bulletin_id} is {row.status}, not confirm_needed")
        row.status = BulletinStatus.CONFIRMED
        db.add(row)
        await db.commit()
        await db.refresh(row)
        return row
