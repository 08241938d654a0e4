"""Live alerts into the ``alerts`` table, off the audio path.

``LiveHub.alert`` is called from the mounts' and sources' tasks, the same loop that fans audio
out to every listener: it must never wait for the database. It only appends an event here
(``put``, synchronous); a task held by the writer writes what is pending in one transaction
per batch, in order, and retries with backoff while the database is unreachable (the events
wait in memory, at most ``max_pending``; beyond that the oldest go, logged and counted).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from station._alerts import MountAlertEvent, clear_mount_alerts, write_mount_alerts

from ._tasks import cancel_and_wait

log = logging.getLogger(__name__)

Sessions = async_sessionmaker[AsyncSession]


class AlertWriter:
    """Batches ``MountAlertEvent``s into the database. ``start`` closes the alerts a previous
    run left open and starts the task; ``close`` stops it and writes what is left."""

    def __init__(
        self,
        sessions: Sessions,
        *,
        retry_s: tuple[float, float] = (0.5, 30.0),
        max_pending: int = 10_000,
    ) -> None:
        self.sessions = sessions
        self.retry_s = retry_s
        self.max_pending = max_pending
        self._pending: list[MountAlertEvent] = []
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.written = 0  # events written
        self.failures = 0  # batches that failed (retried)
        self.dropped = 0  # events lost to max_pending (logged)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def put(self, event: MountAlertEvent) -> None:
        """Queue ``event``; never blocks, never raises."""
        self._pending.append(event)
        if len(self._pending) > self.max_pending:
            excess = len(self._pending) - self.max_pending
            del self._pending[:excess]
            self.dropped += excess
            log.error("live alerts: %d not written (database unreachable, queue full)", excess)
        self._wake.set()

    async def start(self) -> None:
        async with self.sessions() as db:
            closed = await clear_mount_alerts(db, datetime.now(UTC))
            await db.commit()
        if closed:
            log.info("live alerts: %d left open by the previous run closed (no mount runs)", closed)
        self._task = asyncio.create_task(self._run(), name="live-alert-writer")

    async def flush(self) -> None:
        """Write what is pending now (one transaction). On failure the events stay queued and
        the error is raised."""
        async with self._lock:
            if not self._pending:
                return
            batch, self._pending = self._pending, []
            try:
                async with self.sessions() as db:
                    await write_mount_alerts(db, batch)
                    await db.commit()
            except BaseException:
                self._pending[:0] = batch  # in order, before what came meanwhile
                raise
            self.written += len(batch)

    async def _run(self) -> None:
        delay = self.retry_s[0]
        while not self._closed:  # as well as the cancellation, which may be lost (``_tasks``)
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
                delay = self.retry_s[0]
            except Exception as exc:
                self.failures += 1
                log.warning("live alerts not written (%.200r); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_s[1])
                self._wake.set()

    async def close(self) -> None:
        """Stop the task and write what is left (logged if that fails). Idempotent."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait([task])
        try:
            await self.flush()
        except Exception:
            log.exception("live alerts: %d not written at shutdown", len(self._pending))
