"""The dispatcher: the only I/O of the scheduler. APScheduler fires, the gateway sends.

State lives in the database (behind ``ScheduleRepository``); APScheduler's jobs are an
in-memory cache rebuilt from it at start and on every reconcile, so a restart loses nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from devices import ClusterGateway, gather_sends
from devices.protocol import Command, MediaRef, PlayCommand, StreamCommand

from ._due import OccurrenceFiring, OccurrenceSpec, plan_occurrences
from ._emergency import EmergencyRepository, EmergencyRunner, power_commands, session_length
from ._forward import Forwarder
from ._plan import Firing, ScheduleSpec, plan, play_command_id
from ._session import (
    CodecsFor,
    ItemRef,
    SessionPlan,
    UrlFor,
    segments,
)
from ._streams import StreamRoute, StreamRouter, stream_routes

log = logging.getLogger(__name__)


class ScheduleRepository(Protocol):
    async def pending_schedules(self) -> list[ScheduleSpec]: ...

    async def prepare_session(
        self,
        schedule_id: int,
        start_at: datetime,
        expires_at: datetime,
        *,
        occurrence: datetime | None = None,
    ) -> SessionPlan | None:
        """Create (or return the existing) session of a schedule; None if nothing to play.

        ``occurrence`` (recurring schedules) is the nominal start that names the session;
        ``start_at`` differs from it when the occurrence starts late.
        """
        ...

    async def due_occurrences(
        self, window_start: datetime, window_end: datetime
    ) -> list[OccurrenceSpec]:
        """Occurrences of ``active`` schedules in the window that were never dispatched nor
        recorded missed."""
        ...

    async def mark_occurrence_missed(self, spec: OccurrenceSpec, reason: str) -> None: ...

    async def upcoming_sessions(
        self, window_start: datetime, window_end: datetime
    ) -> list[SessionPlan]:
        """Sessions made and not finished (pending or dispatched) starting in the window."""
        ...

    async def record_dispatch(
        self, schedule_id: int, session_id: str, failures: dict[str, str]
    ) -> None: ...

    async def mark_missed(self, schedule_id: int, reason: str) -> None: ...


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
        horizon_s: float = 3600.0,
        lookback_s: float = 86400.0,
        prefetch_ahead_s: float = 1800.0,
        forward_horizon_s: float = 86400.0,
        emergencies: EmergencyRepository | None = None,
        emergency_delay_s: float = 0.5,
        bridge_warmup_s: float = 5.0,
        emergency_poll_s: float = 1.0,
        clock: Callable[[], datetime] = _now,
        codecs_for: CodecsFor | None = None,
        stream_router: StreamRouter | None = None,
    ) -> None:
        self.repository = repository
        self.stream_router = stream_router
        self.gateway = gateway
        self.url_for = url_for
        self.codecs_for = codecs_for
        self.lead = timedelta(seconds=lead_s)
        self.expiry = timedelta(seconds=expiry_s)
        self.misfire_grace = timedelta(seconds=misfire_grace_s)
        self.reconcile_every_s = reconcile_every_s
        # Occurrences starting within ``horizon`` get their jobs; missed ones as far back as
        # ``lookback`` are recorded (skipped) when the station comes back.
        self.horizon = timedelta(seconds=max(horizon_s, reconcile_every_s * 2 + lead_s))
        self.lookback = timedelta(seconds=lookback_s)
        self._occurrences_in_flight: set[str] = set()
        self.clock = clock
        self.scheduler = AsyncIOScheduler(timezone=ZoneInfo(timezone))
        # Store-and-forward: sessions of the next ``forward_horizon`` are made ahead and listed
        # to their clusters (0 turns it off: ``play`` at start - lead only).
        self.forward_horizon = timedelta(seconds=forward_horizon_s)
        self.forwarder = Forwarder(
            gateway,
            url_for,
            clock,
            codecs_for=codecs_for,
            prefetch_ahead=timedelta(seconds=prefetch_ahead_s),
            expiry=self.expiry,
        )
        self.emergency: EmergencyRunner | None = None
        if emergencies is not None:
            self.emergency = EmergencyRunner(
                emergencies,
                gateway,
                self.segment_commands,
                url_for,
                self.scheduler,
                clock,
                start_delay_s=emergency_delay_s,
                warmup_s=bridge_warmup_s,
                expiry=self.expiry,
            )
        self.emergency_poll_s = emergency_poll_s
        # A bridge gets ``power`` on when the session is dispatched (start - lead) and warms up
        # for this long: keep it <= dispatch_lead_s or bridged sets start late by the rest.
        self.bridge_warmup_s = bridge_warmup_s
        if bridge_warmup_s > lead_s:
            log.warning(
                "bridge warm-up %.1f s exceeds the dispatch lead %.1f s: bridged sets start late",
                bridge_warmup_s,
                lead_s,
            )
        self._prepared: set[str] = set()  # sessions made ahead (by session id)
        self._forward_pending = False
        self._forward_lock = asyncio.Lock()
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
        if self.emergency is not None:
            # Emergencies started elsewhere (the CLI) are picked up within a poll.
            self.scheduler.add_job(
                self.emergency.run,
                "interval",
                seconds=self.emergency_poll_s,
                id="emergencies",
                coalesce=True,
                max_instances=1,
            )
            await self.emergency.run()

    def poke(self) -> None:
        """An emergency was started or stopped in this process: act now, not at the poll."""
        if self.emergency is not None:
            self._spawn(self._run_emergencies())

    async def _run_emergencies(self) -> None:
        assert self.emergency is not None
        try:
            await self.emergency.run()
        except Exception:
            log.exception("emergency pass failed; the next poll retries")

    async def stop(self) -> None:
        if self.scheduler.running:
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
        await self._reconcile_occurrences()

        await self.forward()

    async def forward(self) -> None:
        """Make the sessions of the forward horizon and send changed lists and prefetches."""
        if self.forward_horizon <= timedelta(0):
            return
        async with self._forward_lock:  # a birth and a reconcile at once: one after the other
            await self._forward()

    async def _forward(self) -> None:
        now = self.clock()
        end = now + self.forward_horizon
        for spec in await self.repository.pending_schedules():
            if spec.start_at < end and f"once-{spec.id}" not in self._prepared:
                made = await self.repository.prepare_session(
                    spec.id, spec.start_at, spec.start_at + self.expiry
                )
                if made is not None:
                    self._prepared.add(f"once-{spec.id}")
        for occurrence in await self.repository.due_occurrences(now, end):
            if occurrence.session_id in self._prepared:
                continue
            start = occurrence.occurrence
            made = await self.repository.prepare_session(
                occurrence.schedule_id, start, start + self.expiry, occurrence=start
            )
            if made is not None:
                self._prepared.add(occurrence.session_id)
        failures = await self.forwarder.sync(await self.repository.upcoming_sessions(now, end))
        for cluster_id, error in failures.items():
            log.info(
                "schedule list to %s not sent (%s): retried next reconcile",
                cluster_id,
                error,
                extra={"cluster_id": cluster_id},
            )

    def cluster_online(self, cluster_id: str) -> None:
        """A cluster's birth: it gets its list again (once for a burst of reconnects)."""
        self.forwarder.forget(cluster_id)
        if not self._forward_pending:
            self._forward_pending = True
            self._spawn(self._forward_soon())

    async def _forward_soon(self) -> None:
        await asyncio.sleep(0.5)  # coalesce a burst of births into one sync
        self._forward_pending = False
        try:
            await self.forward()
        except Exception:
            log.exception("forwarding schedule lists failed; next reconcile retries")

    async def _reconcile_occurrences(self) -> None:
        now = self.clock()
        due = await self.repository.due_occurrences(now - self.lookback, now + self.horizon)
        specs = [s for s in due if s.session_id not in self._occurrences_in_flight]
        result = plan_occurrences(specs, now, lead=self.lead)
        for firing in result.later:
            self.scheduler.add_job(
                self._fire_occurrence,
                "date",
                run_date=firing.fire_at,
                args=[firing],
                id=f"occurrence-{firing.spec.session_id}",
                replace_existing=True,
                misfire_grace_time=max(1, int(firing.spec.misfire_grace.total_seconds())),
                coalesce=True,
            )
        for firing in result.now:
            if firing.late:
                log.warning(
                    "session %s starts late at %s",
                    firing.spec.session_id,
                    firing.start_at,
                    extra={"session_id": firing.spec.session_id},
                )
            self._spawn(self._fire_occurrence(firing))
        for spec in result.missed:
            log.warning(
                "session %s missed: station was down past its grace",
                spec.session_id,
                extra={"session_id": spec.session_id},
            )
            await self.repository.mark_occurrence_missed(spec, "station_down")

    async def _fire_occurrence(self, firing: OccurrenceFiring) -> None:
        key = firing.spec.session_id
        if key in self._occurrences_in_flight:
            return
        self._occurrences_in_flight.add(key)
        try:
            await self.dispatch(
                firing.spec.schedule_id, firing.start_at, occurrence=firing.spec.occurrence
            )
        except Exception:  # one failure boundary per firing; the next reconcile retries
            log.exception("dispatching session %s failed", key)
        finally:
            self._occurrences_in_flight.discard(key)

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

    async def dispatch(
        self, schedule_id: int, start_at: datetime, *, occurrence: datetime | None = None
    ) -> SessionPlan | None:
        """Send one schedule's session (``play`` per media run, ``stream`` per relay/live
        slot) to every targeted cluster."""
        expires_at = start_at + self.expiry
        session = await self.repository.prepare_session(
            schedule_id, start_at, expires_at, occurrence=occurrence
        )
        if session is None:
            if occurrence is None:
                await self.repository.mark_missed(schedule_id, "nothing_to_play")
            else:
                spec = OccurrenceSpec(schedule_id, occurrence)
                await self.repository.mark_occurrence_missed(spec, "nothing_to_play")
            return None
        codecs = await self.codecs_for(session.cluster_ids) if self.codecs_for else None
        failures: dict[str, str] = {}
        if session.bridges:  # legacy transmitters/amplifiers on first, off after the last item
            await self._bridges(session)
        routes = await stream_routes(self.stream_router, session)
        for commands in self.segment_commands(session, codecs, routes):
            results = await gather_sends(self.gateway, commands)
            for cid, exc in results.items():
                if exc is not None:
                    failures.setdefault(cid, str(exc))
        await self.repository.record_dispatch(schedule_id, session.session_id, failures)
        self.dispatched += 1
        log.info(
            "session %s: sent to %d clusters (%d failed), start %s",
            session.session_id,
            len(session.cluster_ids) - len(failures),
            len(failures),
            session.start_at.isoformat(),
        )
        return session

    async def _bridges(self, session: SessionPlan) -> None:
        now = self.clock()
        on = power_commands(
            session.bridges, on=True, now=now, warmup_s=self.bridge_warmup_s, expiry=self.expiry
        )
        await gather_sends(self.gateway, on)
        self.scheduler.add_job(
            self._power_off,
            "date",
            run_date=session.start_at + session_length(session),
            args=[session],
            id=f"power-off-{session.session_id}",
            replace_existing=True,
            misfire_grace_time=3600,
            coalesce=True,
        )

    async def _power_off(self, session: SessionPlan) -> None:
        now = self.clock()
        off = power_commands(session.bridges, on=False, now=now, warmup_s=0, expiry=self.expiry)
        await gather_sends(self.gateway, off)

    def segment_commands(
        self,
        session: SessionPlan,
        codecs: Mapping[str, Sequence[str]] | None = None,
        routes: Mapping[str, StreamRoute] | None = None,
    ) -> list[dict[str, Command]]:
        """Per segment (in order), one command per cluster; ``routes`` (by stream URL) give
        each cluster its own URL of a relay/live stream."""
        issued_at = self.clock()
        codecs = codecs or {}
        found: list[dict[str, Command]] = []
        for segment in segments(session):
            start = session.start_at + timedelta(milliseconds=segment.offset_ms)
            commands: dict[str, Command] = {}
            for cluster_id in session.cluster_ids:
                if segment.stream is not None:
                    until = start + timedelta(milliseconds=segment.stream.duration_ms)
                    route = (routes or {}).get(segment.stream.url)
                    commands[cluster_id] = StreamCommand(
                        id=f"{segment.session_id}.{cluster_id}.stream",
                        issued_at=issued_at,
                        expires_at=until,
                        session_id=segment.session_id,
                        url=route.url_for(cluster_id) if route else segment.stream.url,
                        codec=route.codec if route else segment.stream.codec,  # type: ignore[arg-type]
                        start_at=start,
                        until=until,
                        priority=session.priority,
                        volume=session.volume,
                    )
                    continue
                commands[cluster_id] = PlayCommand(
                    id=play_command_id(segment.session_id, cluster_id),
                    issued_at=issued_at,
                    expires_at=session.expires_at + (start - session.start_at),
                    session_id=segment.session_id,
                    start_at=start,
                    volume=session.volume,
                    priority=session.priority,
                    items=[
                        self._media_ref(cluster_id, item.for_codecs(codecs.get(cluster_id)))
                        for item in segment.items
                    ],
                )
            found.append(commands)
        return found

    def play_commands(
        self, session: SessionPlan, codecs: Mapping[str, Sequence[str]] | None = None
    ) -> dict[str, Command]:
        """One play command per cluster; ``codecs`` (by cluster) picks each one's renditions."""
        issued_at = self.clock()
        codecs = codecs or {}
        commands: dict[str, Command] = {}
        for cluster_id in session.cluster_ids:
            commands[cluster_id] = PlayCommand(
                id=play_command_id(session.session_id, cluster_id),
                issued_at=issued_at,
                expires_at=session.expires_at,
                session_id=session.session_id,
                start_at=session.start_at,
                volume=session.volume,
                priority=session.priority,
                items=[
                    self._media_ref(cluster_id, item.for_codecs(codecs.get(cluster_id)))
                    for item in session.items
                ],
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
