"""Fleet monitoring without a broker: the pure decisions, then FleetMonitor on a real database
with a hand-driven clock. Heartbeat fields of protocol v1.1 are set with ``model_copy`` so the
tests hold whether or not the protocol models declare them yet."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from devices.protocol import Event, Heartbeat, Status
from station._alerts import AlertLog, OpenAlerts, Raised
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
)
from tests.fleet_support import Clock, clusters_a_and_b

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


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[Sessions]:
    async with clusters_a_and_b(database_url) as factory:
        yield factory


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


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


async def test_the_sweep_line_counts_every_silent_cluster(
    sessions: Sessions, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """The line names at most 20 clusters, and says how many there were."""
    ids = [f"S{i:02d}" for i in range(25)]
    await register_clusters(sessions, [(cid, cid) for cid in ids])
    monitor = FleetMonitor(sessions, MonitorSettings(batch_s=0.25), clock=clock)
    for cid in ids:
        await monitor.on_heartbeat(beat(cid, clock))
    await monitor.flush()
    clock.advance(91)
    caplog.set_level(logging.WARNING, logger="station._monitor")
    assert sorted(await monitor.sweep()) == ids
    [line] = [r.getMessage() for r in caplog.records if r.name == "station._monitor"]
    named = line.removeprefix("25 clusters silent, marked offline: ").split(", ")
    assert named[-1] == "..." and len(named) == 21 and set(named[:-1]) < set(ids)
    clock.advance(1)
    await monitor.on_heartbeat(beat("S00", clock))
    clock.advance(91)
    caplog.clear()
    assert await monitor.sweep() == ["S00"]
    assert [r.getMessage() for r in caplog.records if r.name == "station._monitor"] == [
        "1 cluster silent, marked offline: S00"
    ]


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
    # Registered elsewhere (the CLI in another process) but new to the gateway: taken, unless
    # retired; a message other than a birth counts too (its birth may have been missed).
    assert await monitor.on_unknown_cluster("A", beat("A", clock))
    assert not await monitor.on_unknown_cluster("B", status("B", "online"))


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
    clock.advance(1)
    await monitor.on_status(status("B", "offline"))
    await monitor.on_status(status("B", "online"))  # and B reconnected within the batch
    assert monitor.queued == 4 and (await cluster(sessions, "A")).online  # all still buffered
    await monitor.flush()
    assert not (await cluster(sessions, "A")).online  # in order: the will came last
    assert (await cluster(sessions, "B")).online
    opened = {(a.cluster_id, a.kind): a.cleared_at for a in await alerts(sessions)}
    assert opened[("A", AlertKind.OFFLINE)] is None
    assert opened[("B", AlertKind.OFFLINE)] == clock()  # raised and cleared in the same batch


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


# ------------------------------------------------------------------------ bounded alert logs


def _alert_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "station._alerts"]


async def test_a_will_storm_is_logged_in_a_bounded_number_of_lines(
    sessions: Sessions, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    ids = [f"C{i:04d}" for i in range(1000)]
    await register_clusters(sessions, [(cid, cid) for cid in ids])
    monitor = FleetMonitor(sessions, MonitorSettings(batch_s=0.25, batch_max=5000), clock=clock)
    for cid in ids:
        await monitor.on_status(status(cid, "online"))
    await monitor.flush()
    clock.advance(5)
    caplog.set_level(logging.WARNING, logger="station._alerts")
    for cid in ids:
        await monitor.on_status(status(cid, "offline"))
    await monitor.flush()  # one batch: 1,000 offline alerts
    offline = await alerts(sessions, AlertKind.OFFLINE)
    assert sorted(a.cluster_id for a in offline) == ids  # every alert is still a row
    lines = _alert_lines(caplog)
    assert len(lines) == 11  # ten of their own, one summary
    assert all(line.startswith("alert on C0") for line in lines[:10])
    assert lines[10].startswith("alerts: offline on 1,000 clusters (990 not logged one by one)")
    assert "e.g. C0010, C0011, C0012, C0013, C0014, ..." in lines[10]


async def test_a_single_alert_still_logs_its_cluster(
    monitor: FleetMonitor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="station._alerts")
    await monitor.on_status(status("A", "online"))
    await monitor.on_status(status("A", "offline"))
    assert _alert_lines(caplog) == ["alert on A: offline will: connection lost"]


def test_alert_log_bounds_lines_per_interval_and_summaries(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    alert_log = AlertLog(logging.getLogger("station._alerts"), clock=lambda: now[0])
    caplog.set_level(logging.WARNING, logger="station._alerts")
    for i in range(1000):  # one alert per batch (immediate mode), all within a second
        alert_log.emit([Raised(AlertKind.OFFLINE, f"C{i}", "will: connection lost")])
    lines = _alert_lines(caplog)
    assert len(lines) == 11  # ten of their own; the first overflow is summarised at once
    assert lines[10] == "alerts: offline on 11 clusters (1 not logged one by one), e.g. C10"
    now[0] = 4.0
    alert_log.flush()  # the next summary is not due yet
    assert len(_alert_lines(caplog)) == 11
    now[0] = 5.0
    alert_log.emit([Raised(AlertKind.FAULT, "C5", "fault: amp")])  # still over the budget
    lines = _alert_lines(caplog)
    assert lines[11:] == [
        "alerts: offline on 989 clusters (989 not logged one by one), "
        "e.g. C11, C12, C13, C14, C15, ...",
        "alerts: fault on 1 cluster (1 not logged one by one), e.g. C5",
    ]
    now[0] = 65.0  # a new interval: lines of their own again
    alert_log.emit([Raised(AlertKind.CLOCK, "C7", "clock off by 900 ms")])
    assert _alert_lines(caplog)[13:] == ["alert on C7: clock clock off by 900 ms"]


async def retire_in_another_session(sessions: Sessions, cluster_id: str) -> None:
    async with sessions() as db:
        row = await db.get(Cluster, cluster_id)
        assert row is not None
        row.status, row.retired_at, row.online = ClusterStatus.RETIRED, T0, False
        db.add(row)
        await db.commit()


@pytest.mark.parametrize("writer", ["will", "sweep"])
async def test_a_retirement_between_the_monitors_read_and_write_is_kept(
    monitor: FleetMonitor,
    sessions: Sessions,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    writer: str,
) -> None:
    # The monitor reads the cluster rows, then its alerts; a technician retires A in between
    # (CI saw it: the will of a cluster retired that moment put it back to "offline").
    await monitor.on_status(status("A", "online"))
    await monitor.on_heartbeat(beat("A", clock))
    load_many = OpenAlerts.load_many
    retired: list[str] = []

    async def load_then_retire(*args: Any, **kwargs: Any) -> Any:
        loaded = await load_many(*args, **kwargs)
        if not retired:
            retired.append("A")
            await retire_in_another_session(sessions, "A")
        return loaded

    monkeypatch.setattr(OpenAlerts, "load_many", load_then_retire)
    if writer == "will":
        await monitor.on_status(status("A", "offline"))
    else:
        clock.advance(600)
        assert await monitor.sweep() == []  # A was retired, not silent
    assert retired == ["A"]
    row = await cluster(sessions, "A")
    assert row.status == ClusterStatus.RETIRED and row.retired_at is not None
    assert await alerts(sessions, AlertKind.OFFLINE) == []
    assert monitor.failed == 0
