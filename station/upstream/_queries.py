"""Read and operator actions on the upstream tables (used by the CLI; the API can reuse them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlmodel import col, func, select

from station._services import StationError
from station.db import (
    BulletinStatus,
    OutboxMessage,
    OutboxStatus,
    UpstreamBulletin,
    UpstreamCursor,
    UpstreamExchange,
)

from ._bulletin_status import CONFIRMED, enqueue_status, unix_ms
from ._outbox import Sessions

if TYPE_CHECKING:
    from station.api import Actor, Call


class BulletinActionError(StationError):
    """An operator action on a bulletin refused: ``status`` 404, 409 or 422 (API); ``code``
    and ``params`` as for any ``StationError`` (the console says them)."""

    def __init__(
        self, status: int, detail: str, *, code: str | None = None, **params: object
    ) -> None:
        super().__init__(detail, code=code, **params)
        self.status = status
        self.detail = detail


__all__ = [
    "BulletinActionError",
    "OutboxSummary",
    "attach_audio",
    "confirm_emergency",
    "exchanges",
    "inbox",
    "outbox_summary",
]


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


async def inbox(
    sessions: Sessions, include_done: bool = False, status: BulletinStatus | None = None
) -> list[UpstreamBulletin]:
    """Open bulletins, oldest first; every one with ``include_done``; only ``status`` if given."""
    async with sessions() as db:
        query = select(UpstreamBulletin).order_by(col(UpstreamBulletin.id))
        if status is not None:
            query = query.where(UpstreamBulletin.status == status)
        elif not include_done:
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


async def confirm_emergency(
    sessions: Sessions,
    bulletin_id: int,
    who: Call | Actor | None = None,
    now: datetime | None = None,
) -> UpstreamBulletin:
    """An operator confirms an emergency bulletin that waits (``confirm_needed``): it becomes
    ``confirmed``, with an audit entry ``bulletin.confirmed`` and a ``bulletin_status``
    message ``confirmed`` for the upstream system (who and when) in the same transaction. The
    API hands it to the emergency path at once; otherwise the station's next inbox tick does.
    ``who`` is ``cli:<OS login>`` when not given (the CLI's convention). One conditional
    UPDATE: of two operators confirming at once, one wins and the other gets 409."""
    from station.api._audit import Actor, audit_entry

    now = now or datetime.now(UTC)
    async with sessions() as db:
        row = await db.get(UpstreamBulletin, bulletin_id)
        if row is None:
            raise BulletinActionError(404, f"unknown bulletin {bulletin_id}")
        if row.status != BulletinStatus.CONFIRM_NEEDED:
            raise BulletinActionError(
                409,
                f"bulletin {bulletin_id} is {row.status}, not confirm_needed",
                code="bulletin_not_confirm_needed",
                bulletin_id=bulletin_id,
                bulletin_status=str(row.status),
            )
        details = {"class": str(row.bulletin_class), "villages": list(row.villages)}
        entry = audit_entry(
            who or _cli_actor(Actor), "bulletin.confirmed", f"bulletin:{row.upstream_id}", details
        )
        moved = await db.exec(
            sa.update(UpstreamBulletin)
            .where(
                col(UpstreamBulletin.id) == bulletin_id,
                col(UpstreamBulletin.status) == BulletinStatus.CONFIRM_NEEDED,
            )
            .values(status=BulletinStatus.CONFIRMED, decided_by=entry.actor, decided_at=now)
        )
        if moved.rowcount == 0:
            raise BulletinActionError(
                409,
                f"bulletin {bulletin_id} was confirmed meanwhile",
                code="bulletin_confirmed_meanwhile",
                bulletin_id=bulletin_id,
            )
        db.add(entry)
        # A bulletin whose trigger failed is confirmed again: one message per confirmation.
        await enqueue_status(
            db, row.upstream_id, CONFIRMED, now, entry.actor, details, fact=unix_ms(now)
        )
        await db.commit()
        await db.refresh(row)
        return row


def _cli_actor(actor: type[Actor]) -> Actor:
    import getpass

    try:
        login = getpass.getuser()
    except (KeyError, OSError):
        login = "?"
    return actor(f"cli:{login}"[:64], user_agent="loaxa-cli")


OPEN_FOR_AUDIO = (
    BulletinStatus.INBOX,
    BulletinStatus.PROPOSED,
    BulletinStatus.CONFIRM_NEEDED,
    BulletinStatus.CONFIRMED,
)


async def attach_audio(
    sessions: Sessions, who: Call | Actor, bulletin_id: int, media_id: int
) -> UpstreamBulletin:
    """Link a media item (already through the media pipeline) to a bulletin that has no
    recording yet: a text-only one, or one whose download failed. It becomes placeable (or,
    a confirmed emergency, airable). The upstream audio is not fetched any more afterwards:
    the operator's recording wins. Raises ``AttachError`` (404 / 409 / 422)."""
    from station.api._audit import audit_entry
    from station.db import MediaItem

    from ._inbox import AUDIO_MAX_ATTEMPTS

    async with sessions() as db:
        row = await db.get(UpstreamBulletin, bulletin_id)
        if row is None:
            raise BulletinActionError(404, f"unknown bulletin {bulletin_id}")
        if row.status not in OPEN_FOR_AUDIO:
            raise BulletinActionError(
                409,
                f"bulletin {bulletin_id} is {row.status}: already decided",
                code="bulletin_already_decided",
                bulletin_id=bulletin_id,
                bulletin_status=str(row.status),
            )
        if row.media_id is not None:
            raise BulletinActionError(
                409,
                f"bulletin {bulletin_id} already has a recording",
                code="bulletin_has_recording",
                bulletin_id=bulletin_id,
            )
        if await db.get(MediaItem, media_id) is None:
            raise BulletinActionError(
                422,
                f"media_id: no media item {media_id}",
                code="media_unknown",
                media_ids=[media_id],
            )
        row.media_id = media_id
        row.audio_attempts = max(row.audio_attempts, AUDIO_MAX_ATTEMPTS)
        db.add(row)
        db.add(
            audit_entry(
                who, "bulletin.audio", f"bulletin:{row.upstream_id}", {"media_id": media_id}
            )
        )
        await db.commit()
        await db.refresh(row)
        return row
