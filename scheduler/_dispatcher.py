"""The dispatcher: the only I/O of the scheduler. APScheduler fires, the gateway sends.

State lives in the database (behind ``ScheduleRepository``); APScheduler's jobs are an
in-memory cache rebuilt from it at start and on every reconcile, so a restart loses nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from devices import ClusterGateway, gather_sends
from devices.protocol import Command, MediaRef, PlayCommand

from ._plan import Firing, ScheduleSpec, plan, play_command_id

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ItemRef:
    media_id: int
    sha256: str
    size: int
    duration_ms: int
    codec: str = "opus"


@dataclass(frozen=True, slots=True)
class SessionPlan:
    """One broadcast of a schedule: who plays what, when."""

    session_id: str
    start_at: datetime
    expires_at: datetime
    cluster_ids: list[str]
    items: list[ItemRef]
    volume: int | None = None


class ScheduleRepository(Protocol):
    async def pending_schedules(self) -> list[ScheduleSpec]: ...

    async def prepare_session(
        self, schedule_id: int, start_at: datetime, expires_at: datetime
    ) -> SessionPlan | None:
        """Create (or return the existing) session of a schedule; None if nothing to play."""
        ...

    async def record_dispatch(
        self, schedule_id: int, session_id: str, failures: dict[str, str]
    ) -> None: ...

    async def mark_missed(self, schedule_id: int, reason: str) -> None: ...


UrlFor = Callable[[str, ItemRef], str]


def _now() -> datetime:
    return datetime.now(UTC)


class Dispatcher:
    def __init__(
        self,
        repository: ScheduleRepository,
        gateway: ClusterGateway,
        url_for: UrlFor,
        *,
        timezone: str = "Asia/Ho_Chi_Minh",
        lead_s: float = 5.0,
        expiry_s: float = 60.0,
        misfire_grace_s: float = 300.0,
        reconcile_every_s: float = 15.0,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.repository = repository
        self.gateway = gateway
        self.url_for = url_for
        self.lead = timedelta(seconds=lead_s)
        self.expiry = timedelta(seconds=expiry_s)
        self.misfire_grace = timedelta(seconds=misfire_grace_s)
        self.reconcile_every_s = reconcile_every_s
        self.clock = clock
        self.scheduler = AsyncIOScheduler(timezone=ZoneInfo(timezone))
        self._in_flight: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.dispatched = 0

    async def start(self) -> None:
        self.scheduler.start()
        await self.reconcile()
        self.scheduler.add_job(
            self.reconcile,
            "interval",
            seconds=self.reconcile_every_s,
            id="reconcile",
            coalesce=True,
            max_instances=1,
        )

    async def stop(self) -> None:
        self.scheduler.shutdown(wait=False)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def reconcile(self) -> None:
        """Bring APScheduler's jobs in line with the database."""
        specs = [
            s for s in await self.repository.pending_schedules() if s.id not in self._in_flight
        ]
        result = plan(specs, self.clock(), lead=self.lead, misfire_grace=self.misfire_grace)
        for firing in result.later:
            self.scheduler.add_job(
                self._fire,
                "date",
                run_date=firing.fire_at,
                args=[firing],
                id=f"schedule-{firing.schedule_id}",
                replace_existing=True,
                misfire_grace_time=int(self.misfire_grace.total_seconds()),
                coalesce=True,
            )
        for firing in result.now:
            if firing.late:
                log.warning("schedule %d starts late at %s", firing.schedule_id, firing.start_at)
            self._spawn(self._fire(firing))
        for schedule_id in result.missed:
            log.warning("schedule %d missed: station was down past its grace", schedule_id)
            await self.repository.mark_missed(schedule_id, "station_down")

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fire(self, firing: Firing) -> None:
        if firing.schedule_id in self._in_flight:
            return
        self._in_flight.add(firing.schedule_id)
        try:
            await self.dispatch(firing.schedule_id, firing.start_at)
        except Exception:  # one failure boundary per firing; the next reconcile retries
            log.exception("dispatching schedule %d failed", firing.schedule_id)
        finally:
            self._in_flight.discard(firing.schedule_id)

    async def dispatch(self, schedule_id: int, start_at: datetime) -> SessionPlan | None:
        """Send ``play`` for one schedule to every targeted cluster."""
        expires_at = start_at + self.expiry
        session = await self.repository.prepare_session(schedule_id, start_at, expires_at)
        if session is None:
            await self.repository.mark_missed(schedule_id, "nothing_to_play")
            return None
        commands = self.play_commands(session)
        results = await gather_sends(self.gateway, commands)
        failures = {cid: str(exc) for cid, exc in results.items() if exc is not None}
        await self.repository.record_dispatch(schedule_id, session.session_id, failures)
        self.dispatched += 1
        log.info(
            "session %s: play sent to %d clusters (%d failed), start %s",
            session.session_id,
            len(commands) - len(failures),
            len(failures),
            session.start_at.isoformat(),
        )
        return session

    def play_commands(self, session: SessionPlan) -> dict[str, Command]:
        issued_at = self.clock()
        commands: dict[str, Command] = {}
        for cluster_id in session.cluster_ids:
            commands[cluster_id] = PlayCommand(
                id=play_command_id(session.session_id, cluster_id),
                issued_at=issued_at,
                expires_at=session.expires_at,
                session_id=session.session_id,
                start_at=session.start_at,
                volume=session.volume,
                items=[self._media_ref(cluster_id, item) for item in session.items],
            )
        return commands

    def _media_ref(self, cluster_id: str, item: ItemRef) -> MediaRef:
        return MediaRef(
            media_id=str(item.media_id),
            url=self.url_for(cluster_id, item),
            sha256=item.sha256,
            size=item.size,
            duration_ms=item.duration_ms,
            codec=item.codec,  # type: ignore[arg-type]
        )
