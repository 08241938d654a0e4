"""The durable outbox: rows in ``upstream_outbox``, delivered in order by one sender task.

- ``enqueue(db, kind, key, payload)`` adds a row inside the caller's transaction (so a change
  and the message it causes commit together); a key already present is left alone.
- ``OutboxSender.run()`` delivers the oldest pending row; transient failures
  (``UpstreamUnavailable``) are retried with exponential backoff and jitter, the head of the
  queue waiting (order is kept); a refusal (``UpstreamRejected``, 4xx) marks the row failed
  (kept and visible, ``loaxa upstream retry`` re-queues it) and the queue moves on.
- A row is marked sent only after the upstream system acknowledged it, so a crash in between
  re-sends it; the idempotency key makes the upstream count it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from station.db import OutboxMessage, OutboxStatus, UpstreamExchange

from ._protocol import (
    MESSAGE_KINDS,
    Envelope,
    UpstreamAdapter,
    UpstreamRejected,
    UpstreamUnavailable,
)

log = logging.getLogger(__name__)

Sessions = async_sessionmaker[AsyncSession]


def _utcnow() -> datetime:
    return datetime.now(UTC)


KEY_LIMIT = 200  # characters of ``upstream_outbox.key`` (and of the Idempotency-Key sent)
_HASHED_TAIL = 1 + 64  # "~" and a SHA-256 in hex


def outbox_key(key: str) -> str:
    """``key`` itself if it fits in ``KEY_LIMIT``, else its head and the SHA-256 of the whole.

    Keys are built from ids of up to 200 characters themselves (a bulletin's ``upstream_id``
    in ``bulletin:<id>:<status>``). Cutting them would make different messages share a key,
    and the upstream system would then count only one of them; refusing them would leave a
    valid bulletin undecidable. The hash keeps one key per message: the same long key always
    maps to the same bounded one (de-duplication holds), different ones to different keys.
    """
    if len(key) <= KEY_LIMIT:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"{key[: KEY_LIMIT - _HASHED_TAIL]}~{digest}"


async def enqueue(db: AsyncSession, kind: str, key: str, payload: dict[str, Any]) -> bool:
    """Add an outbox row in ``db``'s transaction (the caller commits). False if the key exists.

    A key longer than ``KEY_LIMIT`` is stored bounded (``outbox_key``)."""
    if kind not in MESSAGE_KINDS:
        raise ValueError(f"unknown upstream message kind {kind!r}")
    if not key:
        raise ValueError("an idempotency key cannot be empty")
    key = outbox_key(key)
    existing = await db.exec(select(OutboxMessage.id).where(OutboxMessage.key == key))
    if existing.first() is not None:
        return False
    db.add(OutboxMessage(kind=kind, key=key, payload=payload))
    return True


def log_exchange(
    db: AsyncSession,
    direction: str,
    kind: str,
    status: str,
    *,
    key: str = "",
    http_status: int | None = None,
    attempt: int = 0,
    error: str = "",
) -> None:
    db.add(
        UpstreamExchange(
            direction=direction,
            kind=kind,
            key=key[:200],
            status=status,
            http_status=http_status,
            attempt=attempt,
            error=error[:1000],
        )
    )


def backoff_s(attempt: int, low: float, high: float, rand: Callable[[], float]) -> float:
    """Exponential backoff with "equal jitter": between half and all of min(high, low*2^(n-1))."""
    ceiling = min(high, low * 2.0 ** max(attempt - 1, 0))
    return ceiling / 2 + rand() * ceiling / 2


class OutboxSender:
    """Delivers the outbox through an ``UpstreamAdapter``; one instance per station."""

    def __init__(
        self,
        sessions: Sessions,
        adapter: UpstreamAdapter,
        station_id: str,
        *,
        retry_min_s: float = 2.0,
        retry_max_s: float = 600.0,
        idle_poll_s: float = 2.0,
        clock: Callable[[], datetime] = _utcnow,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.sessions = sessions
        self.adapter = adapter
        self.station_id = station_id
        self.retry_min_s = retry_min_s
        self.retry_max_s = retry_max_s
        self.idle_poll_s = idle_poll_s
        self.clock = clock
        self.rand = rand
        self.delivered = 0
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """New rows were committed in this process: look now instead of at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                wait_s = await self.step()
            except (OperationalError, InterfaceError) as exc:  # database briefly unavailable
                log.warning(
                    "outbox: database error, trying again in %.1f s: %s", self.idle_poll_s, exc
                )
                wait_s = self.idle_poll_s
            if wait_s > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait_s):
                        await self._wake.wait()

    async def step(self) -> float:
        """Try the head of the queue once; return how long to wait before the next step."""
        async with self.sessions() as db:
            query = (
                select(OutboxMessage)
                .where(col(OutboxMessage.status) == OutboxStatus.PENDING)
                .order_by(col(OutboxMessage.id))
                .limit(1)
            )
            row = (await db.exec(query)).first()
        if row is None:
            return self.idle_poll_s
        due_in = (row.next_attempt_at - self.clock()).total_seconds()
        if due_in > 0:
            return min(due_in, self.idle_poll_s)  # short naps: an operator retry is seen soon
        await self._deliver(row)
        return 0.0

    async def _deliver(self, row: OutboxMessage) -> None:
        assert row.id is not None
        envelope = Envelope(row.key, row.kind, self.station_id, row.created_at, row.payload)
        attempt = row.attempts + 1
        try:
            accepted = await self.adapter.push(envelope)
        except UpstreamUnavailable as exc:
            delay = backoff_s(attempt, self.retry_min_s, self.retry_max_s, self.rand)
            log.warning(
                "upstream push %s failed (attempt %d, retry in %.1f s): %s",
                row.key,
                attempt,
                delay,
                exc.detail,
            )
            await self._finish(row, "retry", attempt, exc, timedelta(seconds=delay))
            return
        except UpstreamRejected as exc:
            log.error("upstream refused %s (%s); marked failed", row.key, exc.detail)
            await self._finish(row, "failed", attempt, exc)
            return
        self.delivered += 1
        await self._finish(row, "ok" if accepted else "duplicate", attempt, None)

    async def _finish(
        self,
        row: OutboxMessage,
        outcome: str,
        attempt: int,
        exc: UpstreamUnavailable | UpstreamRejected | None,
        delay: timedelta | None = None,
    ) -> None:
        """Record an attempt with one conditional UPDATE: only a row still pending changes
        (an operator may have changed it meanwhile), and ``attempts`` is counted in SQL, not
        written back from the value read before the push."""
        http_status = exc.http_status if exc is not None else None
        error = exc.detail if exc is not None else ""
        values: dict[str, Any] = {
            "attempts": col(OutboxMessage.attempts) + 1,
            "http_status": http_status,
            "last_error": error,
        }
        if outcome in ("ok", "duplicate"):
            values |= {"status": OutboxStatus.SENT, "sent_at": self.clock()}
        elif outcome == "failed":
            values["status"] = OutboxStatus.FAILED
        else:
            values["next_attempt_at"] = self.clock() + (delay or timedelta())
        async with self.sessions() as db:
            changed = await db.exec(
                update(OutboxMessage)
                .where(
                    col(OutboxMessage.id) == row.id,
                    col(OutboxMessage.status) == OutboxStatus.PENDING,
                )
                .values(values)
            )
            if changed.rowcount == 0:
                return  # changed by an operator meanwhile
            log_exchange(
                db,
                "up",
                row.kind,
                outcome,
                key=row.key,
                attempt=attempt,
                http_status=http_status,
                error=error,
            )
            await db.commit()


async def retry_failed(sessions: Sessions, ids: list[int] | None = None) -> int:
    """Put failed rows (all, or the given ids) back in the queue; returns how many.

    One UPDATE of the rows failed at that moment, so a row the sender changes meanwhile is
    not written back from a stale read."""
    query = (
        update(OutboxMessage)
        .where(col(OutboxMessage.status) == OutboxStatus.FAILED)
        .values(status=OutboxStatus.PENDING, next_attempt_at=_utcnow(), attempts=0)
    )
    if ids:
        query = query.where(col(OutboxMessage.id).in_(ids))
    async with sessions() as db:
        changed = await db.exec(query)
        await db.commit()
        return int(changed.rowcount)


async def retry_now(sessions: Sessions, ids: list[int] | None = None) -> tuple[int, int]:
    """An operator's "retry now": failed rows go back in the queue (``retry_failed``) and
    pending rows waiting out a backoff become due at once. Returns (re-queued, hastened)."""
    requeued = await retry_failed(sessions, ids)
    now = _utcnow()
    query = (
        update(OutboxMessage)
        .where(
            col(OutboxMessage.status) == OutboxStatus.PENDING,
            col(OutboxMessage.next_attempt_at) > now,
        )
        .values(next_attempt_at=now)
    )
    if ids:
        query = query.where(col(OutboxMessage.id).in_(ids))
    async with sessions() as db:
        changed = await db.exec(query)
        await db.commit()
        return requeued, int(changed.rowcount)
