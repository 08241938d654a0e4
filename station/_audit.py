"""The audit log's core [nhật ký thao tác], usable outside HTTP: the CLI, background jobs.

An ``Actor`` is whoever acts without a request: the CLI operator (``cli:<os login>``, or a
named user with ``--as``), the system itself. ``record`` adds the entry to an open transaction
so it commits (or not) with the change; ``record_action`` writes it in its own transaction,
for services that commit on their own. The HTTP side (``station.api._audit``) builds the same
rows from a request. The table is append-only (database triggers refuse UPDATE and DELETE).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from station.db import AuditEntry

__all__ = ["SYSTEM", "Actor", "actor_entry", "record", "record_action"]

Sessions = async_sessionmaker[AsyncSession]


@dataclass(frozen=True)
class Actor:
    """Someone acting outside an HTTP request: the CLI user, the system itself."""

    name: str
    user_id: int | None = None
    ip: str = ""
    user_agent: str = ""


SYSTEM = Actor("system")


def actor_entry(
    who: Actor, action: str, target: str = "", details: Mapping[str, Any] | None = None
) -> AuditEntry:
    # Columns are bounded: truncate rather than lose the entry.
    return AuditEntry(
        user_id=who.user_id,
        actor=who.name[:64],
        action=action,
        target=target[:200],
        details=dict(details or {}),
        ip=who.ip,
        user_agent=who.user_agent,
    )


def record(
    db: AsyncSession,
    who: Actor,
    action: str,
    target: str = "",
    details: Mapping[str, Any] | None = None,
) -> None:
    """Add an entry to an open transaction: it commits (or not) together with the change."""
    db.add(actor_entry(who, action, target, details))


async def record_action(
    sessions: Sessions,
    who: Actor,
    action: str,
    target: str = "",
    details: Mapping[str, Any] | None = None,
) -> None:
    """Record one action in its own transaction (the service already committed its change)."""
    async with sessions() as db:
        record(db, who, action, target, details)
        await db.commit()
