"""The emergency runner's look for new and stopped emergencies (its poll): one look after
another, so a slow pass (a stop's sends to a big fleet, its pause, the preemption pass) never
has APScheduler skip the next look with "maximum number of running instances reached"."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from devices import ClusterGateway
from devices.protocol import Command, StopCommand
from scheduler import BridgeHolds, EmergencyRunner, EmergencyWork, SessionPlan
from simulator import SimulatedFleet
from station import _keys as keys
from station._emergency import EmergencyRequest, start_emergency, stop_emergency
from tests.playout_support import outcomes
from tests.test_emergency import ICT, _station, finished, on_air, schedule_programme_soon, until

SKIPPED = "maximum number of running instances"
SLOW_STOP_S = 2.5  # more than two poll periods (1 s): an interval job would be skipped twice


async def test_a_slow_stop_never_has_the_poll_skipped_and_the_programme_resumes(
    tmp_path: Path,
    mqtt_url: str,
    database_url: str,
    station_id: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.WARNING, logger="apscheduler")
    station, media_id = await _station(tmp_path, mqtt_url, database_url, station_id)
    app = station.app
    sessions, settings = app[keys.SESSIONS], app[keys.SETTINGS]
    gateway = app[keys.GATEWAY]
    send = gateway.send
    slow_stops: list[str] = []

    async def slow_send(cluster_id: str, command: Command, timeout: float | None = None) -> None:
        """A stop that takes as long as a thousand clusters' would on a busy broker."""
        if isinstance(command, StopCommand):
            slow_stops.append(cluster_id)
            await asyncio.sleep(SLOW_STOP_S)
        await send(cluster_id, command, timeout)

    monkeypatch.setattr(gateway, "send", slow_send)
    try:
        await schedule_programme_soon(app, tmp_path, 4.0)
        async with SimulatedFleet(station.runtime.mqtt_url, station_id, ICT) as fleet:
            scheduled = await on_air(app, fleet)
            await asyncio.sleep(0.5)
            request = EmergencyRequest(
                {"clusters": ICT}, relay_url="http://vov.example/vov1", duration_s=60
            )
            emergency = await start_emergency(sessions, settings, request, "chairman")
            app[keys.DISPATCHER].poke()
            await until(lambda: all(c.playing == emergency.id for c in fleet.clusters.values()))
            # Stopped from elsewhere (another process): the poll does the slow stop.
            assert await stop_emergency(sessions, "chairman") == [emergency.id]
            records = await finished(sessions, scheduled, 30)
            # The poll is still alive after the slow pass: the next emergency from elsewhere
            # (no poke) airs and plays out.
            again = await start_emergency(
                sessions, settings, EmergencyRequest({"clusters": ICT}, media_id=media_id), "x"
            )
            await finished(sessions, again.id, 20)
            plays = outcomes(fleet)
        assert sorted(slow_stops) == ICT  # the stop went through the slow sends
        for cid in ICT:
            seen = plays[cid]
            assert seen[0] == (scheduled, "preempted"), seen
            assert seen[1] == (emergency.id, "stopped"), seen
            assert seen[2][0].startswith(f"{scheduled}~r") and seen[2][1] == "finished", seen
            assert seen[3] == (again.id, "finished"), seen
            assert records[cid].interrupted_by == emergency.id
        skipped = [r.getMessage() for r in caplog.records if SKIPPED in r.getMessage()]
        assert skipped == []
    finally:
        await station.stop()


class SlowWork:
    """An emergency store whose read is slower than the poll period, and fails once."""

    def __init__(self) -> None:
        self.reads = 0
        self.running = 0
        self.most_at_once = 0
        self.fourth = asyncio.Event()

    async def emergency_work(self) -> EmergencyWork:
        self.reads += 1
        if self.reads == 4:
            self.fourth.set()
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            await asyncio.sleep(0.3)  # six periods of 0.05 s
            if self.reads == 2:
                raise RuntimeError("database gone for a moment")
            return EmergencyWork()
        finally:
            self.running -= 1

    async def record_emergency_start(
        self, session_id: str, start_at: datetime, failures: dict[str, str]
    ) -> None:
        raise AssertionError("nothing to start")

    async def record_emergency_stop(self, session_id: str) -> None:
        raise AssertionError("nothing to stop")

    async def record_emergency_end(self, session_id: str) -> None:
        raise AssertionError("nothing ends")


async def no_commands(plan: SessionPlan) -> list[dict[str, Command]]:
    raise AssertionError(f"nothing to send for {plan.session_id}")


async def test_the_poll_never_overlaps_itself_and_survives_a_failed_pass(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.start()
    work = SlowWork()
    runner = EmergencyRunner(
        work,
        cast(ClusterGateway, None),  # nothing to send: the passes find no work
        no_commands,
        scheduler,
        lambda: datetime.now(UTC),
        cast(BridgeHolds, None),
    )
    try:
        runner.poll_every(0.05)
        # the failed second pass did not end the chain
        await asyncio.wait_for(work.fourth.wait(), 20)
        assert work.most_at_once == 1
    finally:
        scheduler.shutdown(wait=False)
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if SKIPPED in m]
    assert "emergency pass failed; the next poll retries" in messages
