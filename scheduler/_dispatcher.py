"""The dispatcher: the only I/O of the scheduler. APScheduler fires, the gateway sends.

State lives in the database (behind ``ScheduleRepository``); APScheduler's jobs are an
in-memory cache rebuilt from it at start and on every reconcile, so a restart loses nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, runtime_checkable
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from devices import ClusterGateway, gather_sends
from devices.protocol import Command, MediaRef, PlayCommand, PowerCommand, StreamCommand

from ._bridges import BridgeNeed, Output, needs_of, session_length, switch_off, zone_codes_on
from ._due import OccurrenceFiring, OccurrenceSpec, plan_occurrences
from ._emergency import EmergencyRepository, EmergencyRunner
from ._forward import Forwarder
from ._jobs import JobExecutor
from ._plan import Firing, ScheduleSpec, plan, play_command_id
from ._preempt import Action, Aired, Comeback, Position, replay
from ._priority import on_air_rank
from ._session import (
    SEGMENT_GUARD_MS,
    BridgePower,
    CodecsFor,
    ItemRef,
    SessionPlan,
    UrlFor,
    resume_tail,
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


@dataclass(frozen=True, slots=True)
class OnAir:
    """A session that went on air: as the preemption rules see it, and as sent."""

    aired: Aired
    plan: SessionPlan


@runtime_checkable
class PreemptionRepository(Protocol):
    async def on_air(self, window_start: datetime, window_end: datetime) -> list[OnAir]:
        """Sessions dispatched (emergencies too, ended or stopped) starting in the window,
        each on the clusters that did not fail it."""
        ...

    async def record_interrupted(self, session_id: str, cluster_id: str, by: str | None) -> None:
        """It will not come back on this cluster: proof of play says interrupted (by ``by``)."""
        ...


def _now() -> datetime:
    return datetime.now(UTC)


class BridgeSwitch:
    """Legacy bridges' outputs on and off (I/O; the decision is ``scheduler._bridges``).

    Every session that needs a bridge holds its output from its ``power`` on until its end
    (dispatched programmes, resumptions, emergencies). An output is switched off when a holder
    ends (or is stopped) and no session needs it then: broadcasts back to back, an emergency
    and the programme it cut, keep it on between them.
    """

    def __init__(
        self,
        gateway: ClusterGateway,
        scheduler: AsyncIOScheduler,
        clock: Callable[[], datetime],
        *,
        warmup_s: float,
        expiry: timedelta,
    ) -> None:
        self.gateway = gateway
        self.scheduler = scheduler
        self.clock = clock
        self.warmup_s = warmup_s
        self.expiry = expiry
        self._needs: dict[str, list[BridgeNeed]] = {}  # session id -> its needs
        self._powered: set[Output] = set()  # switched on (or maybe on, after a restart)
        self._lock = asyncio.Lock()
        self.switched_off = 0

    def needs(self) -> list[BridgeNeed]:
        return [n for found in self._needs.values() for n in found]

    async def hold(
        self,
        session_id: str,
        bridges: Mapping[str, BridgePower],
        since: datetime,
        until: datetime,
        *,
        switch_on: bool = True,
        timer: bool = True,
    ) -> dict[str, str]:
        """``session_id`` needs ``bridges`` from ``since`` until ``until``: switch them on
        (unless ``switch_on`` is False: rebuilt after a restart, they were) and check at
        ``until`` (``timer``) whether they can go off. Returns the sends that failed."""
        async with self._lock:
            now = self.clock()
            mine = needs_of(session_id, bridges, since, until)
            self._needs[session_id] = mine
            self._powered.update(n.output for n in mine if n.since <= now)
            if timer:
                self._timer(session_id, until)
            if not switch_on or not mine:
                return {}
            everyone = self.needs()
            batches: list[dict[str, Command]] = []
            for need in mine:
                command = self._command(
                    need, on=True, now=now, codes=zone_codes_on(everyone, need, now)
                )
                batch = next((b for b in batches if need.bridge not in b), None)
                if batch is None:
                    batches.append(batch := {})
                batch[need.bridge] = command
            failures: dict[str, str] = {}
            for batch in batches:
                for cid, exc in (await gather_sends(self.gateway, batch)).items():
                    if exc is not None:
                        failures.setdefault(cid, str(exc))
            return failures

    def release(self, session_id: str, at: datetime) -> None:
        """``session_id`` needs its bridges no longer after ``at`` (stopped or ended early)."""
        found = self._needs.get(session_id)
        if found:
            self._needs[session_id] = [
                replace(n, until=min(n.until, max(at, n.since))) for n in found
            ]

    async def switch_off_idle(self) -> None:
        """Switch off every output no session needs now; forget the needs that are over."""
        async with self._lock:
            now = self.clock()
            decision = switch_off(self.needs(), self._powered, now)
            batches: list[dict[str, Command]] = []
            for (bridge, target), codes in decision.off:
                need = BridgeNeed("", bridge, target, now, now, codes)
                batch = next((b for b in batches if bridge not in b), None)
                if batch is None:
                    batches.append(batch := {})
                batch[bridge] = self._command(need, on=False, now=now, codes=codes)
                self._powered.discard((bridge, target))
            self._needs = {
                sid: found
                for sid, found in self._needs.items()
                if any(n.until > now for n in found)
            }
            for batch in batches:
                for cid, exc in (await gather_sends(self.gateway, batch)).items():
                    self.switched_off += exc is None
                    if exc is not None:
                        log.warning(
                            "bridge %s not switched off (%s)",
                            cid,
                            exc,
                            extra={"cluster_id": cid},
                        )

    def _timer(self, session_id: str, until: datetime) -> None:
        self.scheduler.add_job(
            self.switch_off_idle,
            "date",
            run_date=until,
            id=f"power-off-{session_id}",
            replace_existing=True,
            misfire_grace_time=None,  # however late: the check still runs
            coalesce=True,
        )

    def _command(
        self, need: BridgeNeed, *, on: bool, now: datetime, codes: Sequence[str]
    ) -> PowerCommand:
        stamp = int(now.timestamp() * 1000)
        return PowerCommand(
            id=f"power.{need.bridge}.{need.target}.{'on' if on else 'off'}.{stamp}",
            issued_at=now,
            expires_at=now + self.expiry,
            target=need.target,  # type: ignore[arg-type]
            on=on,
            warmup_s=self.warmup_s if on else 0,
            zone_codes=list(codes),
        )


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
        preemptions: PreemptionRepository | None = None,
        preempt_lookback_s: float = 6 * 3600.0,
        resume_delay_s: float = 0.5,
    ) -> None:
        self.repository = repository
        self.stream_router = stream_router
        self.gateway = gateway
        self.url_for = url_for
        self.codecs_for = codecs_for
        # A bridge is powered on when its session is dispatched and needs ``bridge_warmup_s``
        # before the start: dispatch at least that early, or bridged sets would start late.
        lead_s = max(lead_s, bridge_warmup_s)
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
        self._jobs = JobExecutor()
        self.scheduler = AsyncIOScheduler(
            timezone=ZoneInfo(timezone), executors={"default": self._jobs}
        )
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
            bridge_warmup=timedelta(seconds=bridge_warmup_s),  # held sessions' power specs
        )
        # Preemption: clusters arbitrate clashes; the station brings back what was preempted
        # (``preempt``). The emergency store serves the sessions unless another is given.
        if preemptions is None and isinstance(emergencies, PreemptionRepository):
            preemptions = emergencies
        self.preemptions = preemptions
        self.preempt_lookback = timedelta(seconds=preempt_lookback_s)
        self.resume_delay = timedelta(seconds=resume_delay_s)
        self._comebacks: set[tuple[str, str, datetime]] = set()  # acted on (session, cluster, at)
        self._preempt_lock = asyncio.Lock()
        self.resumed = 0
        # A bridge gets ``power`` on when the session is dispatched (start - lead, and the lead
        # is at least the warm-up) and warms up for ``bridge_warmup_s``.
        self.bridges = BridgeSwitch(
            gateway, self.scheduler, clock, warmup_s=bridge_warmup_s, expiry=self.expiry
        )
        self.emergency: EmergencyRunner | None = None
        if emergencies is not None:
            self.emergency = EmergencyRunner(
                emergencies,
                gateway,
                self.session_commands,
                self.scheduler,
                clock,
                self.bridges,
                start_delay_s=emergency_delay_s,
                warmup_s=bridge_warmup_s,
                expiry=self.expiry,
                ended=self.preempt,
            )
        self.emergency_poll_s = emergency_poll_s
        self.bridge_warmup_s = bridge_warmup_s
        self._prepared: set[str] = set()  # sessions made ahead (by session id)
        self._forward_pending = False
        self._forward_lock = asyncio.Lock()
        self._in_flight: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.dispatched = 0

    async def start(self) -> None:
        self.scheduler.start()
        await self._rebuild_bridges()
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
            # Emergencies started elsewhere (the CLI) are picked up within a poll (one look
            # after another: a slow pass never has the next one skipped over it).
            self.emergency.poll_every(self.emergency_poll_s)
            await self.emergency.run()
        # After the emergencies' holds are back: what nothing needs now goes off.
        await self.bridges.switch_off_idle()

    async def _rebuild_bridges(self) -> None:
        """After a restart: the sessions pending or on air hold their bridges again (their
        ``power`` on went out, or goes out at dispatch); those that ended meanwhile leave
        their outputs to be switched off."""
        now = self.clock()
        found = await self.repository.upcoming_sessions(
            now - self.preempt_lookback, now + self.horizon
        )
        for session in found:
            if session.bridges:
                await self.bridges.hold(
                    session.session_id,
                    session.bridges,
                    session.start_at - self.lead,
                    session.start_at + session_length(session),
                    switch_on=False,
                    timer=session.start_at + session_length(session) > now,
                )

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
        """Cancel the running jobs and tasks and wait until they have ended (a job cancelled
        in a transaction rolls it back before the database is closed)."""
        running = self.scheduler.running
        if running:
            self.scheduler.shutdown(wait=False)
        for task in list(self._tasks):
            task.cancel()
        if running:
            await self._jobs.wait_stopped()
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
        await self.preempt()

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
        if self.preemptions is not None:  # it may preempt, or be held off by, another
            self._spawn(self.preempt())
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
        end = session.start_at + session_length(session)
        failures = await self.bridges.hold(session.session_id, session.bridges, now, end)
        for cid, error in failures.items():
            log.warning(
                "bridge %s not switched on for %s (%s)",
                cid,
                session.session_id,
                error,
                extra={"cluster_id": cid, "session_id": session.session_id},
            )

    async def session_commands(self, session: SessionPlan) -> list[dict[str, Command]]:
        """``segment_commands`` with each cluster's renditions and the stream routes."""
        codecs = await self.codecs_for(session.cluster_ids) if self.codecs_for else None
        routes = await stream_routes(self.stream_router, session)
        return self.segment_commands(session, codecs, routes)

    # -- preemption: what a higher session cut comes back when it ends ---------------------

    async def preempt(self) -> None:
        """One pass: rebuild what went on air from the database (``replay``), bring back the
        preempted sessions whose preemptor ended (resume at their position, or record them
        interrupted) and set the timer for the next one. Safe to run any time, repeatedly."""
        if self.preemptions is None:
            return
        try:
            async with self._preempt_lock:
                await self._preempt(self.preemptions)
        except Exception:
            log.exception("preemption pass failed; the next reconcile retries")

    async def _preempt(self, repository: PreemptionRepository) -> None:
        now = self.clock()
        on_air = await repository.on_air(now - self.preempt_lookback, now + self.horizon)
        result = replay([o.aired for o in on_air], now)
        plans = {o.plan.session_id: o for o in on_air}
        groups: dict[tuple[str, datetime, Position], list[Comeback]] = {}
        for comeback in result.due:
            d = comeback.decision
            key = (d.session_id, comeback.cluster, d.at)
            if key in self._comebacks or d.session_id not in plans:
                continue
            back = d.action in (Action.RESUME, Action.START) and d.position is not None
            if back and now < plans[d.session_id].aired.session.window_end:
                assert d.position is not None
                groups.setdefault((d.session_id, d.at, d.position), []).append(comeback)
                continue
            await repository.record_interrupted(d.session_id, comeback.cluster, comeback.by)
            self._comebacks.add(key)
            log.info(
                "session %s on %s will not come back (%s, cut by %s)",
                d.session_id,
                comeback.cluster,
                d.reason or d.action,
                comeback.by,
                extra={"session_id": d.session_id, "cluster_id": comeback.cluster},
            )
        for (session_id, at, position), comebacks in groups.items():
            # A cluster ends a programme of k segments (k - 1) guards after its nominal end.
            by = plans.get(comebacks[0].by or "")
            guards = max(0, len(segments(by.plan)) - 1) if by is not None else 0
            delay = self.resume_delay + timedelta(milliseconds=SEGMENT_GUARD_MS * guards)
            await self._resume(plans[session_id].plan, at, position, comebacks, now, delay)
            self._comebacks.update((session_id, c.cluster, at) for c in comebacks)
        if result.next_at is not None:
            self.scheduler.add_job(
                self.preempt,
                "date",
                run_date=max(result.next_at, now),
                id="preempt",
                replace_existing=True,
                misfire_grace_time=None,
                coalesce=True,
            )

    async def _resume(
        self,
        session: SessionPlan,
        at: datetime,
        position: Position,
        comebacks: list[Comeback],
        now: datetime,
        delay: timedelta,
    ) -> None:
        offset_ms = round(position.offset.total_seconds() * 1000)
        clusters = sorted(c.cluster for c in comebacks)
        start_at = max(at, now) + delay
        tail = resume_tail(session, position.item, offset_ms, at, start_at, clusters, self.expiry)
        if tail is None:
            return
        bridges = {b: p for b, p in session.bridges.items() if b in clusters}
        if bridges:  # a resumed programme needs its bridges again (on if they went off)
            end = tail.plan.start_at + session_length(tail.plan)
            await self.bridges.hold(tail.plan.session_id, bridges, now, end)
        batches = await self.session_commands(tail.plan)
        if batches and tail.offset_ms:  # the first media run starts where it stopped
            batches[0] = {
                cid: c.model_copy(update={"start_at": tail.start_at, "offset_ms": tail.offset_ms})
                if isinstance(c, PlayCommand)
                else c
                for cid, c in batches[0].items()
            }
        for commands in batches:
            await gather_sends(self.gateway, commands)
        self.resumed += len(clusters)
        log.info(
            "session %s comes back on %d clusters at %s (%s, %d ms in)",
            session.session_id,
            len(clusters),
            start_at.isoformat(),
            comebacks[0].decision.action,
            offset_ms,
            extra={"session_id": session.session_id},
        )

    def segment_commands(
        self,
        session: SessionPlan,
        codecs: Mapping[str, Sequence[str]] | None = None,
        routes: Mapping[str, StreamRoute] | None = None,
    ) -> list[dict[str, Command]]:
        """Per segment (in order), one command per cluster; ``routes`` (by stream URL) give
        each cluster its own URL of a relay/live stream, or its MQTT topic (MQTT-only)."""
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
                    # an MQTT-only receiver gets the topic of the live packets, no URL
                    topic = route.topic_for(cluster_id) if route else None
                    url = segment.stream.url if route is None else None
                    if route is not None and topic is None:
                        url = route.url_for(cluster_id)
                    commands[cluster_id] = StreamCommand(
                        id=f"{segment.session_id}.{cluster_id}.stream",
                        issued_at=issued_at,
                        expires_at=until,
                        session_id=segment.session_id,
                        transport="mqtt" if topic else "http",
                        topic=topic,
                        url=url,
                        codec=route.codec if route else segment.stream.codec,  # type: ignore[arg-type]
                        start_at=start,
                        until=until,
                        priority=session.priority,
                        rank=on_air_rank(session.rank),
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
                    rank=on_air_rank(session.rank),
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
                rank=on_air_rank(session.rank),
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
