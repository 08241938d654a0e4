"""The audit log [nhật ký thao tác]: who did what, when, from where. Append-only.

Call ``await audit(call, "schedule.create", f"schedule:{id}", {...})`` from a handler, or
``audit_in(db, call, ...)`` to write the entry in the same transaction as the change. The CLI and
background jobs pass an ``Actor`` (its core is ``station._audit``, which needs no request).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from station import _keys as keys
from station._audit import SYSTEM, Actor, actor_entry
from station.db import AuditEntry

from ._auth import client_ip, user_agent
from ._framework import Call

__all__ = ["SYSTEM", "Actor", "audit", "audit_csv", "audit_entry", "audit_in"]

Sessions = async_sessionmaker[AsyncSession]
CSV_COLUMNS = ("id", "at", "actor", "user_id", "action", "target", "ip", "user_agent", "details")


def audit_entry(
    who: Call | Actor, action: str, target: str = "", details: Mapping[str, Any] | None = None
) -> AuditEntry:
    if isinstance(who, Call):
        principal = who.principal
        name = principal.username if principal else ""
        if principal is not None and principal.via == "token":
            name = f"{principal.username} (token {principal.token_id})"
        return AuditEntry(
            user_id=principal.user_id if principal else None,
            actor=name[:64],
            action=action,
            target=target[:200],
            details=dict(details or {}),
            ip=client_ip(who.request),
            user_agent=user_agent(who.request),
        )
    return actor_entry(who, action, target, details)


def audit_in(
    db: AsyncSession,
    who: Call | Actor,
    action: str,
    target: str = "",
    details: Mapping[str, Any] | None = None,
) -> None:
    """Add an entry to an open transaction: it commits (or not) together with the change."""
    db.add(audit_entry(who, action, target, details))


async def audit(
    who: Call | Actor,
    action: str,
    target: str = "",
    details: Mapping[str, Any] | None = None,
    *,
    sessions: Sessions | None = None,
) -> None:
    """Record one action in its own transaction. ``sessions`` is needed for an ``Actor``."""
    if sessions is None:
        if not isinstance(who, Call):
            raise TypeError("audit(Actor, ...) needs sessions=")
        sessions = who.app[keys.SESSIONS]
    async with sessions() as db:
        audit_in(db, who, action, target, details)
        await db.commit()


def audit_csv(entries: Iterable[AuditEntry]) -> str:
    import json

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for e in entries:
        writer.writerow(
            _cell(v)
            for v in [
                e.id,
                e.at.isoformat(),
                e.actor,
                "" if e.user_id is None else e.user_id,
                e.action,
                e.target,
                e.ip,
                e.user_agent,
                json.dumps(e.details, ensure_ascii=False, sort_keys=True),
            ]
        )
    return out.getvalue()


def _cell(value: object) -> object:
    """Neutralise spreadsheet formulas (CSV injection): text starting =, +, -, @ gets a quote."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
