"""Emergency broadcasts on air (I/O, run by the dispatcher): power bridges, play now, stop.

An emergency is a session made by the station (``station._emergency``) and picked up here
within a second (or at once when the station pokes the dispatcher): legacy bridges switch their
transmitter/amplifier on first (with the configured warm-up and the zone codes of the targeted
FM/wired sets), every targeted cluster starts at the same ``start_at`` a moment from now at
emergency priority (same-level newcomers win on the clusters: the newest emergency wins), and
bridges switch off when it ends or is stopped, unless another session still needs them (what
it preempted, resumed; the next broadcast): the dispatcher's ``BridgeSwitch`` decides. Its end
timer is rebuilt from the database after a restart. What it preempted comes back through the
dispatcher's preemption pass (``Dispatcher.preempt``), called when it ends or is stopped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from devices import ClusterGateway, gather_sends
from devices.protocol import Command, StopCommand

from ._bridges import session_length
from ._session import BridgePower, SessionPlan, segments

log = logging.getLogger(__name__)

POLL_JOB = "emergencies"  # the APScheduler id of the look for new and stopped emergencies


@dataclass(frozen=True, slots=True)
class EmergencyPlan:
    session: SessionPlan
    bridges: Mapping[str, BridgePower] = field(default_factory=dict)  # bridge id -> power


@dataclass(frozen=True, slots=True)
class EmergencyWork:
    to_start: list[EmergencyPlan] = field(default_factory=list)
    to_stop: list[EmergencyPlan] = field(default_factory=list)
    # Dispatched, not stopped, not ended: each needs its end timer (after a restart too).
    on_air: list[EmergencyPlan] = field(default_factory=list)


class EmergencyRepository(Protocol):
    async def emergency_work(self) -> EmergencyWork: ...

    async def record_emergency_start(
        self, session_id: str, start_at: datetime, failures: dict[str, str]
    ) -> None: ...

    async def record_emergency_stop(self, session_id: str) -> None: ...

    async def record_emergency_end(self, session_id: str) -> None:
        """It played out: done (no end timer again after a restart)."""
        ...


# Per segment, one command per cluster (the dispatcher's: renditions and stream routes).
CommandsFor = Callable[[SessionPlan], Awaitable[list[dict[str, Command]]]]


class BridgeHolds(Protocol):
    """The dispatcher's bridge switch (``BridgeSwitch``): sessions hold bridges on."""

    async def hold(
        self,
        session_id: str,
        bridges: Mapping[str, BridgePower],
        since: datetime,
        until: datetime,
        *,
        switch_on: bool = True,
        timer: bool = True,
    ) -> dict[str, str]: ...

    def release(self, session_id: str, at: datetime) -> None: ...

    async def switch_off_idle(self) -> None: ...


class EmergencyRunner:
    def __init__(
        self,
        repository: EmergencyRepository,
        gateway: ClusterGateway,
        commands_for: CommandsFor,
        scheduler: AsyncIOScheduler,
        clock: Callable[[], datetime],
        bridges: BridgeHolds,
        *,
        start_delay_s: float = 0.5,
        warmup_s: float = 5.0,
        expiry: timedelta = timedelta(minutes=1),
        ended: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.repository = repository
        self.gateway = gateway
        self.commands_for = commands_for
        # Called when an emergency ended or was stopped: the dispatcher brings back what it
        # preempted (scheduler._preempt.replay over the sessions in the database).
        self.ended = ended
        self.scheduler = scheduler
        self.clock = clock
        self.bridges = bridges
        self.start_delay = timedelta(seconds=start_delay_s)
        self.warmup_s = warmup_s
        self.expiry = expiry
        self._lock = asyncio.Lock()
        self._poll_period = timedelta(seconds=1)
        self._ended_ids: set[str] = set()
        self.started: list[str] = []

    def poll_every(self, seconds: float) -> None:
        """Look for emergencies started or stopped elsewhere (the CLI) every ``seconds``.

        Each look schedules the next one when it is over, so there is never more than one:
        a pass can take longer than the period (a stop's sends to a thousand clusters, its
        0.3 s pause and the preemption pass, or waiting for a poked pass to let go of the
        lock), and an interval job would then fire over it and APScheduler would skip it with
        a warning ("maximum number of running instances reached") every time. The pass runs
        as APScheduler's job, so the scheduler's shutdown cancels it: no task is left over.
        """
        self._poll_period = timedelta(seconds=seconds)
        self._next_poll()

    def _next_poll(self) -> None:
        if not self.scheduler.running:
            return  # shut down (the dispatcher stopped): no more looks
        self.scheduler.add_job(
            self._poll,
            "date",
            # The scheduler's own time, not ``clock`` (a test's clock may stand still).
            run_date=datetime.now(UTC) + self._poll_period,
            id=POLL_JOB,
            replace_existing=True,
            misfire_grace_time=None,  # however late (a busy loop): a look dropped ends the chain
            coalesce=True,
        )

    async def _poll(self) -> None:
        try:
            await self.run()
        except Exception:
            log.exception("emergency pass failed; the next poll retries")
        self._next_poll()  # not after a cancel: that is the shutdown

    async def run(self) -> None:
        """Start the new emergencies and stop the stopped ones (one pass, serialised: a stop
        and the start of the next emergency keep their order, and a session is never started
        or stopped twice by two passes at once)."""
        async with self._lock:
            work = await self.repository.emergency_work()
            for plan in work.to_start:
                await self._start(plan)
            for plan in work.to_stop:
                await self._stop(plan)
            for plan in work.on_air:
                await self._arm(plan)

    async def _arm(self, plan: EmergencyPlan) -> None:
        """Its end timer, made again after a restart: the end is in the database."""
        if self.scheduler.get_job(f"ended-{plan.session.session_id}") is not None:
            return
        end = plan.session.start_at + session_length(plan.session) + timedelta(milliseconds=200)
        if plan.bridges:  # after a restart: it holds its bridges on again until it ends
            since = plan.session.start_at - timedelta(seconds=self.warmup_s)
            await self.bridges.hold(
                plan.session.session_id, plan.bridges, since, end, switch_on=False, timer=False
            )
        if end <= self.clock():
            await self._ended(plan)
            return
        self._end_job(plan, end)

    def _end_job(self, plan: EmergencyPlan, end: datetime) -> None:
        self.scheduler.add_job(
            self._ended,
            "date",
            run_date=end,
            args=[plan],
            id=f"ended-{plan.session.session_id}",
            replace_existing=True,
            misfire_grace_time=None,  # however late (a busy loop): it still ends
            coalesce=True,
        )

    async def _start(self, plan: EmergencyPlan) -> None:
        now = self.clock()
        warmup = self.warmup_s if plan.bridges else 0.0
        start_at = now + self.start_delay + timedelta(seconds=warmup)
        session = replace(plan.session, start_at=start_at, expires_at=start_at + self.expiry)
        end = start_at + session_length(session) + timedelta(milliseconds=200)
        failures: dict[str, str] = {}
        if plan.bridges:  # its end (``_ended``) checks whether they can go off: no timer
            failures.update(
                await self.bridges.hold(session.session_id, plan.bridges, now, end, timer=False)
            )
        for commands in await self.commands_for(session):
            for cid, exc in (await gather_sends(self.gateway, commands)).items():
                if exc is not None:
                    failures.setdefault(cid, str(exc))
        await self.repository.record_emergency_start(session.session_id, start_at, failures)
        self.started.append(session.session_id)
        log.warning(
            "EMERGENCY %s on %d clusters at %s (%d failed)",
            session.session_id,
            len(session.cluster_ids),
            start_at.isoformat(),
            len(failures),
        )
        self._end_job(plan, end)

    async def _ended(self, plan: EmergencyPlan) -> None:
        """It played out: done, what it preempted comes back, bridges nothing else needs off
        (after the comebacks hold theirs: no off and on again in between)."""
        if plan.session.session_id in self._ended_ids:
            return  # its timer and a poll after a restart at once
        self._ended_ids.add(plan.session.session_id)
        self.bridges.release(plan.session.session_id, self.clock())
        await self.repository.record_emergency_end(plan.session.session_id)
        log.warning("EMERGENCY %s ended", plan.session.session_id)
        if self.ended is not None:
            await self.ended()
        await self.bridges.switch_off_idle()

    async def _stop(self, plan: EmergencyPlan) -> None:
        now = self.clock()
        session = plan.session
        commands: dict[str, list[Command]] = {}
        for segment in segments(session):
            for cid in session.cluster_ids:
                commands.setdefault(cid, []).append(
                    StopCommand(
                        id=f"{segment.session_id}.{cid}.stop",
                        issued_at=now,
                        expires_at=now + self.expiry,
                        session_id=segment.session_id,
                    )
                )
        for k in range(max((len(c) for c in commands.values()), default=0)):
            batch = {cid: cmds[k] for cid, cmds in commands.items() if k < len(cmds)}
            await gather_sends(self.gateway, batch)
        job = self.scheduler.get_job(f"ended-{session.session_id}")
        if job is not None:
            job.remove()
        self.bridges.release(session.session_id, now)
        await self.repository.record_emergency_stop(session.session_id)
        log.warning("EMERGENCY %s stopped", session.session_id)
        await asyncio.sleep(0.3)  # let the clusters report the interruption first
        if self.ended is not None:
            await self.ended()
        await self.bridges.switch_off_idle()


def bridge_targets(kinds: Sequence[str]) -> str:
    """The output a bridge switches for the legacy kinds behind it: FM sets need the
    transmitter, wired lines the amplifier."""
    return "transmitter" if "fm" in kinds else "amplifier"
