"""Queue a report for the Source Information System through the durable upstream outbox.

Key: ``report:<kind>:<period>:<16 hex of the SHA-256 of the JSON export without its
generation time>``. Pushing the same numbers twice queues one message (the upstream counts it
once); corrected numbers are a new version with a new key.
"""

from __future__ import annotations

import hashlib
import json

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from station.upstream import enqueue

from ._model import Report

__all__ = ["push_report", "report_key"]

Sessions = async_sessionmaker[AsyncSession]


def report_key(report: Report) -> str:
    data = report.as_json()
    data.pop("generated_at", None)
    digest = hashlib.sha256(
        json.dumps(data, sort_keys=True, ensure_ascii=False).encode("utf-8")
    ).hexdigest()
    return f"report:{report.kind}:{report.period.label}:{digest[:16]}"


async def push_report(sessions: Sessions, report: Report) -> tuple[str, bool]:
    """Enqueue ``report``'s JSON export; returns (key, False if that version was queued before)."""
    key = report_key(report)
    async with sessions() as db:
        added = await enqueue(db, "report", key, report.as_json())
        await db.commit()
    return key, added
