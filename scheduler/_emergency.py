"""Emergency broadcasts on air (I/O, run by the dispatcher): power bridges, play now, stop.

An emergency is a session made by the station (``station._emergency``) and picked up here
within a second (or at once when the station pokes the dispatcher): legacy bridges switch their
transmitter/amplifier on first (with the configured warm-up and the zone codes of the targeted
FM/wired sets), every targeted cluster starts at the same ``start_at`` a moment from now at
emergency priority (same-level newcomers win on the clusters: the newest emergency wins), and
bridges switch off when it ends or is stopped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from devices import ClusterGateway, gather_sends
from devices.protocol import Command, MediaRef, PlayCommand, PowerCommand, StopCommand

from ._session import BridgePower, ItemRef, SessionPlan, UrlFor, resume_id, segments

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EmergencyPlan:
    session: SessionPlan
    bridges: Mapping[str, BridgePower] = field(default_factory=dict)  # bridge id -> power


@dataclass(frozen=True, slots=True)
class Resumption:
    """A session an emergency preempted on one cluster, to resume at ``offset_ms``."""

    cluster_id: str
    session: SessionPlan
    offset_ms: int
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class EmergencyWork:
    to_start: list[EmergencyPlan] = field(default_factory=list)
    to_stop: list[EmergencyPlan] = field(default_factory=list)


class EmergencyRepository(Protocol):
    async def emergency_work(self) -> EmergencyWork: ...

    async def record_emergency_start(
        self, session_id: str, start_at: datetime, failures: dict[str, str]
    ) -> None: ...

    async def record_emergency_stop(self, session_id: str) -> None: ...

    async def resumptions(self, emergency_id: str, now: datetime) -> list[Resumption]:
        """Sessions it preempted that are still inside their window (the others stay
        recorded as interrupted by it)."""
        ...


CommandsFor = Callable[[SessionPlan], list[dict[str, Command]]]


def session_length(session: SessionPlan) -> timedelta:
    found = segments(session)
    if not found:
        return timedelta(0)
    last = found[-1]
    ms = last.stream.duration_ms if last.stream else sum(i.duration_ms for i in last.items)
    return timedelta(milliseconds=last.offset_ms + ms)


class EmergencyRunner:
    def __init__(
        self,
        repository: EmergencyRepository,
        gateway: ClusterGateway,
        commands_for: CommandsFor,
        url_for: UrlFor,
        scheduler: AsyncIOScheduler,
        clock: Callable[[], datetime],
        *,
        start_delay_s: float = 0.5,
        warmup_s: float = 5.0,
        expiry: timedelta = timedelta(minutes=1),
    ) -> None:
        self.repository = repository
        self.gateway = gateway
        self.commands_for = commands_for
        self.url_for = url_for
        self.scheduler = scheduler
        self.clock = clock
        self.start_delay = timedelta(seconds=start_delay_s)
        self.warmup_s = warmup_s
        self.expiry = expiry
        self._lock = asyncio.Lock()
        self.started: list[str] = []

    async def run(self) -> None:
        """Start the new emergencies and stop the stopped ones (one pass, serialised)."""
        async with self._lock:
            work = await self.repository.emergency_work()
            for plan in work.to_start:
                await self._start(plan)
            for plan in work.to_stop:
                await self._stop(plan)

    async def _start(self, plan: EmergencyPlan) -> None:
        now = self.clock()
        warmup = self.warmup_s if plan.bridges else 0.0
        start_at = now + self.start_delay + timedelta(seconds=warmup)
        session = replace(plan.session, start_at=start_at, expires_at=start_at + self.expiry)
        failures: dict[str, str] = {}
        if plan.bridges:
            failures.update(await self._power(plan.bridges, on=True, now=now))
        for commands in self.commands_for(session):
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
        self.scheduler.add_job(
            self._ended,
            "date",
            run_date=start_at + session_length(session) + timedelta(milliseconds=200),
            args=[plan],
            id=f"ended-{session.session_id}",
            replace_existing=True,
            misfire_grace_time=3600,
            coalesce=True,
        )

    async def _ended(self, plan: EmergencyPlan) -> None:
        """It played out: bridges off, what it preempted resumes."""
        now = self.clock()
        if plan.bridges:
            await self._power(plan.bridges, on=False, now=now)
        await self._resume(plan.session.session_id, now)

    async def _resume(self, emergency_id: str, now: datetime) -> None:
        start_at = now + self.start_delay
        commands: dict[str, Command] = {}
        for r in await self.repository.resumptions(emergency_id, now):
            first = segments(r.session)[0]
            if not first.items:
                continue  # the store only offers media runs
            sid = resume_id(r.session.session_id, r.attempt)
            commands[r.cluster_id] = PlayCommand(
                id=f"{sid}.{r.cluster_id}.play",
                issued_at=now,
                expires_at=start_at + self.expiry,
                session_id=sid,
                start_at=start_at,
                items=[self._refs(r.cluster_id, i) for i in first.items],
                volume=r.session.volume,
                priority=r.session.priority,
                offset_ms=r.offset_ms,
            )
        if commands:
            await gather_sends(self.gateway, commands)
            log.info("resumed %d preempted sessions after %s", len(commands), emergency_id)

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
        if plan.bridges:
            await self._power(plan.bridges, on=False, now=now)
        await self.repository.record_emergency_stop(session.session_id)
        log.warning("EMERGENCY %s stopped", session.session_id)
        await asyncio.sleep(0.3)  # let the clusters report the interruption first
        await self._resume(session.session_id, self.clock())

    def _refs(self, cluster_id: str, item: ItemRef) -> MediaRef:
        return MediaRef(
            media_id=str(item.media_id),
            url=self.url_for(cluster_id, item),
            sha256=item.sha256,
            size=item.size,
            duration_ms=item.duration_ms,
            codec=item.codec,  # type: ignore[arg-type]
        )

    async def _power(
        self, bridges: Mapping[str, BridgePower], *, on: bool, now: datetime
    ) -> dict[str, str]:
        commands = power_commands(
            bridges, on=on, now=now, warmup_s=self.warmup_s, expiry=self.expiry
        )
        results = await gather_sends(self.gateway, commands)
        return {cid: str(exc) for cid, exc in results.items() if exc is not None}


def power_commands(
    bridges: Mapping[str, BridgePower],
    *,
    on: bool,
    now: datetime,
    warmup_s: float,
    expiry: timedelta,
) -> dict[str, Command]:
    """One ``power`` per bridge: on (with warm-up and its zone codes) or off."""
    stamp = int(now.timestamp() * 1000)
    return {
        bridge: PowerCommand(
            id=f"power.{bridge}.{'on' if on else 'off'}.{stamp}",
            issued_at=now,
            expires_at=now + expiry,
            target=power.target,  # type: ignore[arg-type]
            on=on,
            warmup_s=warmup_s if on else 0,
            zone_codes=list(power.zone_codes),
        )
        for bridge, power in bridges.items()
    }


def bridge_targets(kinds: Sequence[str]) -> str:
    """The output a bridge switches for the legacy kinds behind it: FM sets need the
    transmitter, wired lines the amplifier."""
    return "transmitter" if "fm" in kinds else "amplifier"
