"""Fleet monitoring without a broker: the pure decisions, then FleetMonitor on a real database
with a hand-driven clock. Heartbeat fields of protocol v1.1 are set with ``model_copy`` so the
tests hold whether or not the protocol models declare them yet."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from devices.protocol import Event, Heartbeat, Status
from station._monitor import (
    FleetMonitor,
    MonitorSettings,
    data_use_delta,
    heartbeat_overdue,
    is_flapping,
)
from station._services import Sessions, register_clusters
from station.db import (
    Alert,
    AlertKind,
    Cluster,
    ClusterStatus,
    ClusterTelemetry,
    DataUse,
    create_engine_for,
    session_factory,
    upgrade_async,
)

T0 = datetime(2026, 11, 26, 16, 0, tzinfo=UTC)  # 23:00 in Hà Nội: the day turns in an hour


def test_heartbeat_overdue_after_three_intervals() -> None:
    assert not heartbeat_overdue(None, 30, T0)
    assert not heartbeat_overdue(T0, 30, T0 + timedelta(seconds=89))
    assert heartbeat_overdue(T0, 30, T0 + timedelta(seconds=91))
    assert not heartbeat_overdue(T0, 60, T0 + timedelta(seconds=91))
    assert heartbeat_overdue(T0, 30, T0 + timedelta(seconds=61), missed=2)


def test_flapping_counts_transitions_inside_the_window() -> None:
    window = timedelta(minutes=10)
    times = [T0 + timedelta(minutes=m) for m in (0, 3, 6, 9)]
    assert is_flapping(times, T0 + timedelta(minutes=9), 4, window)
    assert not is_flapping(times, T0 + timedelta(minutes=11), 4, window)  # the first aged out
    assert not is_flapping(times[:3], T0 + timedelta(minutes=9), 4, window)


def test_data_use_delta_handles_reboots() -> None:
    assert data_use_delta(None, None, 5000, 10) == 0  # first sample: nothing known before
    assert data_use_delta(5000, 10, 7000, 40) == 2000
    assert data_use_delta(7000, 40, 300, 5) == 300  # counter went down: rebooted
    assert data_use_delta(300, 500, 9000, 20) == 9000  # uptime went down: rebooted, counted more
    assert data_use_delta(9000, 20, 9000, 50) == 0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[Sessions]:
    await upgrade_async(database_url)
    engine = create_engine_for(database_url)
    try:
        factory = session_factory(engine)
        await register_clusters(factory, [("A", "A"), ("B", "B")])
        yield factory
    finally:
        await engine.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def monitor(sessions: Sessions, clock: Clock) -> FleetMonitor:
    settings = MonitorSettings(low_cache_bytes=1000, flap_count=3)
    return FleetMonitor(sessions, settings, clock=clock)


def beat(cluster_id: str, clock: Clock, **fields: Any) -> Heartbeat:
    base = Heartbeat(cluster_id=cluster_id, ts=clock(), state="idle")
    return base.model_copy(update=fields)


def status(cluster_id: str, state: str) -> Status:
    return Status(cluster_id=cluster_id, state=state)  # type: ignore[arg-type]


async def alerts(sessions: Sessions, kind: AlertKind | None = None) -> list[Alert]:
    query = select(Alert).order_by(col(Alert.id))
    if kind is not None:
        query = query.where(Alert.kind == kind)
    async with sessions() as db:
        return list((await db.exec(query)).all())


async def cluster(sessions: Sessions, cluster_id: str) -> Cluster:
    async with sessions() as db:
        row = await db.get(Cluster, cluster_id)
    assert row is not None
    return row


async def test_will_raises_offline_and_birth_clears_it(
    monitor: FleetMonitor, sessions: Sessions, clock: Clock
) -> None:
    await monitor.on_status(status("A", "online"))
    assert (await cluster(sessions, "A")).status == ClusterStatus.ONLINE
    clock.advance(5)
    await monitor.on_status(status("A", "offline"))
    await monitor.on_status(status("A", "offline"))  # a repeated will: still one alert
    row = await cluster(sessions, "A")
    assert not row.online and row.status == ClusterStatus.OFFLINE
    [alert] = await alerts(sessions)
    assert alert.kind == AlertKind.OFFLINE and alert.cleared_at is None
    assert alert.raised_at == clock.now
    clock.advance(5)
    await monitor.on_status(status("A", "online"))
    [alert] = await alerts(sessions)
    assert alert.cleared_at == clock.now
    assert (await cluster(sessions, "A")).online


async def test_silence_is_detected_by_the_sweep(
    monitor: FleetMonitor, sessions: Sessions, clock: Clock
) -> None:
    await monitor.on_status(status("A", "online"))
    await monitor.on_heartbeat(beat("A", clock))
    await monitor.on_status(status("B", "online"))
    await monitor.on_heartbeat(beat("B", clock, interval_s=10))  # B says it beats every 10 s
    clock.advance(60)
    assert await monitor.sweep() == ["B"]
    clock.advance(31)
    assert await monitor.sweep() == ["A"]
    assert await monitor.sweep() == []
    assert {a.cluster_id for a in await alerts(sessions, AlertKind.OFFLINE)} == {"A", "B"}
    assert "no heartbeat" in (await alerts(sessions))[0].detail
    await monitor.on_heartbeat(beat("A", clock))  # a late heartbeat: alive again
    assert (await cluster(sessions, "A")).online
    assert [a.cluster_id for a in await alerts(sessions) if a.cleared_at is None] == ["B"]


async def test_flapping_is_raised_and_calms_down(
    monitor: FleetMonitor, sessions: Sessions, clock: Clock
) -> None:
    for _ in range(3):
        await monitor.on_status(status("A", "online"))
        clock.advance(60)
        await monitor.on_status(status("A", "offline"))
        clock.advance(60)
    [flap] = await alerts(sessions, AlertKind.FLAPPING)
    assert flap.cleared_at is None
    await monitor.on_status(status("A", "online"))
    clock.advance(11 * 60)
    await monitor.sweep()
    [flap] = await alerts(sessions, AlertKind.FLAPPING)
    assert flap.cleared_at == clock.now


async def test_thresholds_and_faults_from_heartbeats(
    monitor: FleetMonitor, sessions: Sessions, clock: Clock
) -> None:
    await monitor.on_status(status("A", "online"))
    for _ in range(2):
        await monitor.on_heartbeat(
            beat("A", clock, clock_offset_ms=-900, free_cache_bytes=10, faults=["amplifier"])
        )
    open_kinds = sorted((a.kind, a.code) for a in await alerts(sessions) if a.cleared_at is None)
    assert open_kinds == [
        (AlertKind.CLOCK, ""),
        (AlertKind.FAULT, "amplifier"),
        (AlertKind.LOW_CACHE, ""),
    ]
    assert (await cluster(sessions, "A")).status == ClusterStatus.FAULTY
    await monitor.on_heartbeat(beat("A", clock, faults=["amplifier", "power"]))
    assert len(await alerts(sessions, AlertKind.FAULT)) == 2
    await monitor.on_heartbeat(
        beat("A", clock, clock_offset_ms=20, free_cache_bytes=10**9, faults=[], signal_dbm=-71)
    )
    assert all(a.cleared_at is not None for a in await alerts(sessions))
    row = await cluster(sessions, "A")
    assert row.status == ClusterStatus.ONLINE
    async with sessions() as db:
        telemetry = await db.get(ClusterTelemetry, "A")
    assert telemetry is not None and telemetry.signal_dbm == -71 and telemetry.faults == []


async def test_fault_events_raise_and_clear(
    monitor: FleetMonitor, sessions: Sessions, clock: Clock
) -> None:
    await monitor.on_status(status("A", "online"))
    event = Event(cluster_id="A", type="playback_started", session_id="s", ts=clock())
    raised = event.model_copy(update={"type": "fault_raised", "fault": "speaker"})
    await monitor.on_fault_event(raised)
    await monitor.on_fault_event(raised)
    [alert] = await alerts(sessions)
    assert (alert.kind, alert.code, alert.cleared_at) == (AlertKind.FAULT, "speaker", None)
    assert (await cluster(sessions, "A")).status == ClusterStatus.FAULTY
    await monitor.on_status(status("A", "offline"))
    assert (await cluster(sessions, "A")).status == ClusterStatus.FAULTY  # still faulty
    await monitor.on_fault_event(raised.model_copy(update={"type": "fault_cleared"}))
    assert (await cluster(sessions, "A")).status == ClusterStatus.OFFLINE


async def test_data_use_per_day_across_a_reboot(
    monitor: FleetMonitor, sessions: Sessions, clock: Clock
) -> None:
    await monitor.on_heartbeat(beat("A", clock, bytes_downloaded=1_000, uptime_s=100))
    clock.advance(30)
    await monitor.on_heartbeat(beat("A", clock, bytes_downloaded=4_000, uptime_s=130))
    clock.advance(3600)  # past midnight in Hà Nội
    await monitor.on_heartbeat(beat("A", clock, bytes_downloaded=10_000, uptime_s=3730))
    clock.advance(30)
    await monitor.on_heartbeat(beat("A", clock, bytes_downloaded=500, uptime_s=20))  # rebooted
    async with sessions() as db:
        rows = (await db.exec(select(DataUse).order_by(col(DataUse.day)))).all()
    assert [(r.day, r.bytes) for r in rows] == [
        (date(2026, 11, 26), 3_000),
        (date(2026, 11, 27), 6_500),
    ]


async def test_retired_and_unknown_clusters_are_ignored(
    monitor: FleetMonitor, sessions: Sessions, clock: Clock
) -> None:
    async with sessions() as db:
        row = await db.get(Cluster, "B")
        assert row is not None
        row.status = ClusterStatus.RETIRED
        db.add(row)
        await db.commit()
    await monitor.on_status(status("B", "offline"))
    await monitor.on_heartbeat(beat("Z", clock))
    assert await alerts(sessions) == []
    assert not await monitor.on_unknown_cluster("Z", status("Z", "online"))


async def test_batched_heartbeats_are_written_on_flush_and_before_a_will(
    sessions: Sessions, clock: Clock
) -> None:
    monitor = FleetMonitor(sessions, MonitorSettings(batch_s=0.25), clock=clock)
    await monitor.on_heartbeat(beat("A", clock, bytes_downloaded=100, uptime_s=1))
    await monitor.on_heartbeat(beat("A", clock, bytes_downloaded=900, uptime_s=2))
    await monitor.on_heartbeat(beat("B", clock, clock_offset_ms=5000))
    assert (await cluster(sessions, "A")).last_seen_at is None  # still buffered
    await monitor.flush()
    assert (await cluster(sessions, "A")).online and (await cluster(sessions, "B")).online
    assert [a.kind for a in await alerts(sessions)] == [AlertKind.CLOCK]
    async with sessions() as db:
        use = (await db.exec(select(DataUse))).all()
    assert [(u.cluster_id, u.bytes) for u in use] == [("A", 800)]  # deltas within a batch count
    clock.advance(1)
    await monitor.on_heartbeat(beat("A", clock))
    await monitor.on_status(status("A", "offline"))  # the will comes after a buffered heartbeat
    assert not (await cluster(sessions, "A")).online
    await monitor.flush()
    assert not (await cluster(sessions, "A")).online


async def test_a_heartbeat_without_a_fault_list_keeps_event_faults(
    monitor: FleetMonitor, sessions: Sessions, clock: Clock
) -> None:
    event = Event(cluster_id="A", type="playback_started", session_id="s", ts=clock())
    await monitor.on_fault_event(
        event.model_copy(update={"type": "fault_raised", "fault": "power"})
    )
    await monitor.on_heartbeat(beat("A", clock))  # no "faults" field sent: clears nothing
    assert (await cluster(sessions, "A")).status == ClusterStatus.FAULTY
    await monitor.on_heartbeat(beat("A", clock, faults=[]))  # an explicit empty list does
    assert (await cluster(sessions, "A")).status == ClusterStatus.ONLINE
