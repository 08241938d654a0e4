"""Cluster status history and batched device writes: every lifecycle/availability change is a
``cluster_status_changes`` row written with the change; births, wills, heartbeats, fault
events, acks and playback events are written in batches (one transaction each), in order,
and a batch that fails is retried per cluster/message, the rest logged and counted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import col, select

from devices import ClusterGateway
from devices.protocol import Ack, Event, Heartbeat, Status, Topics, encode
from station._monitor import DeviceHandlers, FleetMonitor, MonitorSettings
from station._playout_store import PlayoutStore
from station._registry import (
    ClusterSpec,
    Endpoints,
    provision_cluster,
    register_cluster,
    replace_cluster,
    retire_cluster,
)
from station._registry_import import import_clusters
from station._services import Sessions, register_clusters
from station.db import (
    Alert,
    AlertKind,
    Cluster,
    ClusterKind,
    ClusterStatus,
    PlayRecord,
    PlayRecordStatus,
    PlaySession,
    Programme,
)
from station.db.models_fleet import ClusterStatusChange
from station.reports import inventory_report, period_between
from tests.fleet_support import Clock, clusters_a_and_b

T0 = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
REGISTERED_AT = datetime(2023, 1, 1, tzinfo=UTC)  # the fixture's clusters, before any message
ENDPOINTS = Endpoints("xa-test", "mqtt://broker:1883", "http://station:8080")


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[Sessions]:
    async with clusters_a_and_b(database_url, at=REGISTERED_AT) as factory:
        yield factory


class Flaky:
    """A session factory whose first ``fail`` sessions (or those writing ``cluster``) fail."""

    def __init__(self, sessions: Sessions, fail: int = 0, cluster: str | None = None) -> None:
        self.sessions, self.fail, self.cluster = sessions, fail, cluster
        self.opened = 0

    def __call__(self) -> Any:
        self.opened += 1
        if self.fail > 0:
            self.fail -= 1
            raise ConnectionError("database went away")
        session = self.sessions()
        if self.cluster is not None:
            # Refused where the database would refuse: when the rows are sent (a flush, or the
            # commit's own flush).
            bad, flush, commit = self.cluster, session.flush, session.commit

            def check() -> None:
                if any(getattr(o, "cluster_id", None) == bad for o in session.new | session.dirty):
                    raise ConnectionError(f"row of {bad} refused")

            async def refuse_flush(*args: Any, **kwargs: Any) -> None:
                check()
                await flush(*args, **kwargs)

            async def refuse_commit() -> None:
                check()
                await commit()

            session.flush = refuse_flush  # type: ignore[method-assign]
            session.commit = refuse_commit  # type: ignore[method-assign]
        return session


def beat(cluster_id: str, at: datetime, **fields: Any) -> Heartbeat:
    return Heartbeat(cluster_id=cluster_id, ts=at, state="idle").model_copy(update=fields)


def status(cluster_id: str, state: str) -> Status:
    return Status(cluster_id=cluster_id, state=state)  # type: ignore[arg-type]


async def history(sessions: Sessions, cluster_id: str) -> list[tuple[Any, ...]]:
    async with sessions() as db:
        rows = await db.exec(
            select(ClusterStatusChange)
            .where(ClusterStatusChange.cluster_id == cluster_id)
            .order_by(col(ClusterStatusChange.id))
        )
        return [(r.from_status, r.to_status, r.online, r.reason, r.at) for r in rows.all()]


async def test_monitor_writes_a_row_per_change_in_the_same_batch(sessions: Sessions) -> None:
    clock = Clock(T0)
    monitor = FleetMonitor(sessions, MonitorSettings(batch_s=0.2), clock=clock)
    await monitor.on_status(status("A", "online"))
    clock.advance(5)
    await monitor.on_heartbeat(beat("A", clock()))  # no change: no row
    clock.advance(5)
    fault = Event(cluster_id="A", type="playback_started", session_id="s", ts=clock())
    await monitor.on_fault_event(fault.model_copy(update={"type": "fault_raised", "fault": "amp"}))
    clock.advance(5)
    await monitor.on_status(status("A", "offline"))  # faulty stays faulty, availability goes
    registration = (None, ClusterStatus.REGISTERED, False, "registered", REGISTERED_AT)
    assert await history(sessions, "A") == [registration]  # the rest is buffered
    await monitor.flush()
    t = [T0 + timedelta(seconds=s) for s in (0, 10, 15)]
    assert await history(sessions, "A") == [
        registration,
        (ClusterStatus.REGISTERED, ClusterStatus.ONLINE, True, "birth", t[0]),
        (ClusterStatus.ONLINE, ClusterStatus.FAULTY, True, "fault_raised: amp", t[1]),
        (ClusterStatus.FAULTY, ClusterStatus.FAULTY, False, "will: connection lost", t[2]),
    ]
    clock.advance(60)
    await monitor.on_heartbeat(beat("B", clock()))
    clock.advance(200)  # B silent for more than 3 x 30 s
    assert await monitor.sweep() == ["B"]
    assert [h[:4] for h in await history(sessions, "B")] == [
        (None, ClusterStatus.REGISTERED, False, "registered"),
        (ClusterStatus.REGISTERED, ClusterStatus.ONLINE, True, "heartbeat"),
        (ClusterStatus.ONLINE, ClusterStatus.OFFLINE, False, "no heartbeat for 90 s"),
    ]


async def test_registry_lifecycle_is_recorded(sessions: Sessions) -> None:
    await register_cluster(sessions, ClusterSpec(id="C1", kind=ClusterKind.BRIDGE), ENDPOINTS)
    await register_cluster(
        sessions, ClusterSpec(id="L1", kind=ClusterKind.FM, bridge_id="C1"), ENDPOINTS
    )
    await provision_cluster(sessions, "C1", ENDPOINTS)  # provisioned already: no change
    await replace_cluster(sessions, "C1", ClusterSpec(id="C2", kind=ClusterKind.BRIDGE), ENDPOINTS)
    await retire_cluster(sessions, "L1")
    reg, prov, ret = ClusterStatus.REGISTERED, ClusterStatus.PROVISIONED, ClusterStatus.RETIRED
    assert [h[:4] for h in await history(sessions, "C1")] == [
        (None, prov, False, "registered"),
        (prov, ret, False, "replaced by C2"),
    ]
    assert [h[:4] for h in await history(sessions, "C2")] == [
        (None, prov, False, "registered, replaces C1")
    ]
    assert [h[:4] for h in await history(sessions, "L1")] == [
        (None, reg, False, "registered"),  # legacy clusters get no credentials
        (reg, ret, False, "retired"),
    ]
    for row in await history(sessions, "C1"):
        assert row[4].tzinfo is not None and row[4].utcoffset() == timedelta(0)


async def test_a_failed_batch_is_retried_per_cluster_and_counted(sessions: Sessions) -> None:
    clock = Clock(T0)
    monitor = FleetMonitor(sessions, MonitorSettings(batch_s=0.2), clock=clock)
    flaky = Flaky(sessions, fail=1)
    monitor.sessions = cast(Sessions, flaky)
    await monitor.on_status(status("A", "online"))
    await monitor.on_status(status("B", "online"))
    await monitor.flush()  # the batch fails once; each cluster is then written alone
    assert monitor.failed == 0 and flaky.opened == 3
    assert (await sessions().get(Cluster, "A")).online  # type: ignore[union-attr]
    assert (await sessions().get(Cluster, "B")).online  # type: ignore[union-attr]

    monitor.sessions = cast(Sessions, Flaky(sessions, cluster="B"))  # B's rows keep failing
    await monitor.on_status(status("A", "offline"))
    await monitor.on_heartbeat(beat("B", clock(), faults=["amp"]))
    await monitor.on_status(status("B", "offline"))
    await monitor.flush()  # never raises: A is written, B's two messages are counted
    assert monitor.failed == 2
    async with sessions() as db:
        a, b = await db.get(Cluster, "A"), await db.get(Cluster, "B")
    assert a is not None and not a.online and b is not None and b.online


async def test_immediate_mode_raises_so_the_gateway_counts_it(sessions: Sessions) -> None:
    monitor = FleetMonitor(sessions, MonitorSettings(), clock=Clock(T0))
    monitor.sessions = cast(Sessions, Flaky(sessions, fail=2))
    with pytest.raises(RuntimeError, match="not written"):
        await monitor.on_status(status("A", "online"))
    assert monitor.failed == 0  # counted once, by the gateway's handler_error


async def test_a_flush_cancelled_midway_keeps_its_batch(sessions: Sessions) -> None:
    monitor = FleetMonitor(sessions, MonitorSettings(batch_s=0.2))
    committing, never = asyncio.Event(), asyncio.Event()

    def stuck() -> Any:  # a session whose commit hangs (the station stopping meanwhile)
        session = sessions()

        async def commit() -> None:
            committing.set()
            await never.wait()

        session.commit = commit  # type: ignore[method-assign]
        return session

    monitor.sessions = cast(Sessions, stuck)
    await monitor.on_status(status("A", "online"))
    flushing = asyncio.create_task(monitor.flush())
    await committing.wait()
    await monitor.on_heartbeat(beat("A", T0))  # arrives while the batch is being written
    flushing.cancel()
    await asyncio.gather(flushing, return_exceptions=True)
    assert monitor.queued == 2  # the batch is back, before what came later
    monitor.sessions = sessions
    await monitor.flush()
    assert [h[3] for h in await history(sessions, "A")] == ["registered", "birth"]
    async with sessions() as db:
        assert (await db.get(Cluster, "A")).online  # type: ignore[union-attr]


async def _session_with_records(sessions: Sessions, ids: list[str]) -> str:
    async with sessions() as db:
        programme = Programme(title="p")
        db.add(programme)
        await db.flush()
        assert programme.id is not None
        db.add(PlaySession(id="s1-100", programme_id=programme.id, start_at=T0, expires_at=T0))
        await db.flush()
        for cid in ids:
            db.add(
                PlayRecord(
                    session_id="s1-100",
                    cluster_id=cid,
                    status=PlayRecordStatus.SENT,
                    scheduled_start=T0,
                )
            )
        await db.commit()
    return "s1-100"


async def records(sessions: Sessions) -> dict[str, PlayRecord]:
    async with sessions() as db:
        return {r.cluster_id: r for r in (await db.exec(select(PlayRecord))).all()}


async def test_acks_and_events_are_written_in_batches_in_order(sessions: Sessions) -> None:
    sid = await _session_with_records(sessions, ["A", "B"])
    store = PlayoutStore(sessions)
    clock = Clock(T0)
    handlers = DeviceHandlers(
        store, FleetMonitor(sessions, MonitorSettings(batch_s=0.2), clock=clock)
    )
    started = T0 + timedelta(milliseconds=40)
    ack = Ack(cluster_id="A", cmd_id=f"{sid}.A.play", ok=True, ts=T0)
    await handlers.on_ack(ack)
    await handlers.on_event(
        Event(cluster_id="A", type="playback_started", session_id=sid, ts=started,
              started_at=started, clock_offset_ms=10)
    )  # fmt: skip
    await handlers.on_event(
        Event(cluster_id="A", type="playback_finished", session_id=sid, ts=started,
              finished_at=started + timedelta(seconds=30), played_ms=30_000)
    )  # fmt: skip
    await handlers.on_ack(ack)  # a late duplicate ack: never moves a finished record back
    await handlers.on_ack(Ack(cluster_id="B", cmd_id=f"{sid}.B.play", ok=False, ts=T0, code="busy"))
    await handlers.on_ack(Ack(cluster_id="B", cmd_id="other.B.time", ok=True, ts=T0))  # ignored
    assert {r.status for r in (await records(sessions)).values()} == {PlayRecordStatus.SENT}
    assert await handlers.flush() == 0
    got = await records(sessions)
    assert got["A"].status == PlayRecordStatus.FINISHED and got["A"].skew_ms == 30
    assert got["A"].played_ms == 30_000
    assert got["B"].status == PlayRecordStatus.NACKED and got["B"].error_code == "busy"


async def test_failed_proof_writes_are_retried_then_counted(sessions: Sessions) -> None:
    sid = await _session_with_records(sessions, ["A", "B"])
    store = PlayoutStore(sessions)
    handlers = DeviceHandlers(store, FleetMonitor(sessions, MonitorSettings(batch_s=0.2)))
    store.sessions = cast(Sessions, Flaky(sessions, fail=1))
    for cid in ("A", "B"):
        await handlers.on_ack(Ack(cluster_id=cid, cmd_id=f"{sid}.{cid}.play", ok=True, ts=T0))
    assert await handlers.flush() == 0  # the batch failed, each ack then went alone
    assert {r.status for r in (await records(sessions)).values()} == {PlayRecordStatus.ACKED}
    store.sessions = cast(Sessions, Flaky(sessions, fail=3))  # batch and both retries fail
    for cid in ("A", "B"):
        event = Event(cluster_id=cid, type="playback_started", session_id=sid, ts=T0,
                      started_at=T0, clock_offset_ms=0)  # fmt: skip
        await handlers.on_event(event)
    assert await handlers.flush() == 2  # logged and counted, reported once
    assert await handlers.flush() == 0


class _Link:
    """Just what ClusterGateway.serve needs of an MqttLink."""

    def __init__(self) -> None:
        self.messages: asyncio.Queue[Any] = asyncio.Queue(100)

    def on_connected(self, callback: Any) -> None:
        pass


class _Inbound:
    def __init__(self, topic: str, payload: bytes) -> None:
        self.topic, self.payload = topic, payload


async def test_gateway_flushes_on_its_interval_and_when_it_stops(sessions: Sessions) -> None:
    sid = await _session_with_records(sessions, ["A", "B"])
    monitor = FleetMonitor(sessions, MonitorSettings(batch_s=0.05))
    handlers = DeviceHandlers(PlayoutStore(sessions), monitor)
    topics = Topics("xa-test")
    link = _Link()
    gateway = ClusterGateway(link, topics, handlers)  # type: ignore[arg-type]
    gateway.remember(["A", "B"])
    serving = asyncio.create_task(gateway.serve())
    ack = Ack(cluster_id="A", cmd_id=f"{sid}.A.play", ok=True, ts=T0)
    await link.messages.put(_Inbound(topics.cluster("A", "ack"), encode(ack)))
    await link.messages.put(_Inbound(topics.cluster("A", "status"), encode(status("A", "online"))))
    for _ in range(200):  # written by the gateway's flush timer
        if (await records(sessions))["A"].status == PlayRecordStatus.ACKED:
            break
        await asyncio.sleep(0.02)
    assert (await records(sessions))["A"].status == PlayRecordStatus.ACKED
    async with sessions() as db:
        assert (await db.get(Cluster, "A")).online  # type: ignore[union-attr]
    handlers.batch_s = 3600.0  # no more timed flushes
    monitor.settings = MonitorSettings(batch_s=3600.0)
    await asyncio.sleep(0.1)  # the flusher picks the new interval up
    nack = Ack(cluster_id="B", cmd_id=f"{sid}.B.play", ok=False, ts=T0, code="busy")
    await link.messages.put(_Inbound(topics.cluster("B", "ack"), encode(nack)))
    await link.messages.put(_Inbound(topics.cluster("B", "status"), encode(status("B", "online"))))
    serving.cancel()  # stopping: queued and buffered messages are written, not lost
    await asyncio.gather(serving, return_exceptions=True)
    assert (await records(sessions))["B"].status == PlayRecordStatus.NACKED
    async with sessions() as db:
        assert (await db.get(Cluster, "B")).online  # type: ignore[union-attr]
        offline = (await db.exec(select(Alert).where(Alert.kind == AlertKind.OFFLINE))).all()
    assert offline == [] and gateway.dropped["handler_error"] == 0


# ------------------------------------------------------------------- inventory as of period end


def _local(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh"))


async def test_inventory_reports_status_as_of_the_period_end(sessions: Sessions) -> None:
    clock = Clock(T0)
    monitor = FleetMonitor(sessions, MonitorSettings(), clock=clock)

    async def at(when: datetime, message: Any) -> None:
        clock.now = when.astimezone(UTC)
        if isinstance(message, Status):
            await monitor.on_status(message)
        else:
            await monitor.on_fault_event(message)

    def fault(kind: str, when: datetime) -> Event:
        e = Event(cluster_id="B", type="playback_started", session_id="s", ts=when)
        return e.model_copy(update={"type": kind, "fault": "amp"})

    await at(_local(2023, 12, 20), status("B", "online"))
    await at(_local(2024, 1, 10), status("A", "online"))
    await at(_local(2024, 1, 15), fault("fault_raised", _local(2024, 1, 15)))
    await at(_local(2024, 1, 20), status("A", "offline"))
    await at(_local(2024, 2, 5), status("A", "online"))
    await at(_local(2024, 2, 10), fault("fault_cleared", _local(2024, 2, 10)))
    # registered now (2026): C did not exist in 2024, D was installed before and entered late
    await register_cluster(sessions, ClusterSpec(id="C"), ENDPOINTS)
    await register_cluster(sessions, ClusterSpec(id="D", installed_on=date(2023, 5, 1)), ENDPOINTS)
    async with sessions() as db:  # E: no history at all (older than it): its current status
        db.add(Cluster(id="E", name="E", status=ClusterStatus.OFFLINE))
        await db.commit()

    tz = ZoneInfo("Asia/Ho_Chi_Minh")
    january = await inventory_report(
        sessions, period_between(date(2024, 1, 1), date(2024, 1, 31)), tz
    )
    rows = {
        r["cluster"]: (r["status"], r["availability"])
        for r in january.table("by_cluster").as_dicts()
    }
    assert rows == {
        "A": ("offline", round(10 / 31, 4)),  # registered before: online 10 of 31 days
        "B": ("faulty", 1.0),  # faulty but connected all month
        "D": ("provisioned", None),
        "E": ("offline", None),
    }
    statuses = {(r["kind"], r["status"]): r["count"] for r in january.table("by_status").as_dicts()}
    assert statuses == {("ict", "faulty"): 1, ("ict", "offline"): 2, ("ict", "provisioned"): 1}
    assert (january.summary["clusters_total"], january.summary["clusters_working"]) == (4, 3)

    february = await inventory_report(
        sessions, period_between(date(2024, 2, 1), date(2024, 2, 29)), tz
    )
    rows = {
        r["cluster"]: (r["status"], r["availability"])
        for r in february.table("by_cluster").as_dicts()
    }
    assert rows["A"] == ("online", round(25 / 29, 4)) and rows["B"] == ("online", 1.0)
    now = await inventory_report(sessions, period_between(date(2026, 1, 1), date(2099, 12, 31)), tz)
    current = {r["cluster"]: r["status"] for r in now.table("by_cluster").as_dicts()}
    assert current == {
        "A": "online",
        "B": "online",
        "C": "provisioned",
        "D": "provisioned",
        "E": "offline",
    }


# ------------------------------------------------------------------- registration rows


async def test_every_way_of_registering_writes_the_registered_row(sessions: Sessions) -> None:
    text = "id,kind,status\nI1,ict,\nI2,ict,faulty\nI3,ict,retired\nI4,ict,broken\n"
    before = datetime.now(UTC)
    report = await import_clusters(sessions, text)
    await register_clusters(sessions, [("R1", "R1"), ("A", "A")])  # A is known: no new row
    await register_cluster(sessions, ClusterSpec(id="R2"), ENDPOINTS)
    after = datetime.now(UTC)
    assert report.imported == ["I1", "I2", "I3"] and len(report.errors) == 1
    imported = "registered by CSV import"
    expected = {
        "I1": (None, ClusterStatus.REGISTERED, False, imported),
        "I2": (None, ClusterStatus.FAULTY, False, imported),
        "I3": (None, ClusterStatus.RETIRED, False, imported),
        "R1": (None, ClusterStatus.REGISTERED, False, "registered"),
        "R2": (None, ClusterStatus.PROVISIONED, False, "registered"),
    }
    for cid, row in expected.items():
        [got] = await history(sessions, cid)
        assert got[:4] == row, cid
        assert before <= got[4] <= after, cid
    assert await history(sessions, "I4") == []  # refused row: nothing written
    assert len(await history(sessions, "A")) == 1  # only the fixture's registration
    async with sessions() as db:
        retired = await db.get(Cluster, "I3")
    assert retired is not None and retired.retired_at == (await history(sessions, "I3"))[0][4]


async def test_a_failed_import_row_writes_no_history(sessions: Sessions) -> None:
    text = "id,kind,bridge\nL1,fm,NOPE\n"  # the bridge is not registered: refused in the check
    report = await import_clusters(sessions, text)
    assert [r.id for r in report.errors] == ["L1"]
    async with sessions() as db:
        assert await db.get(Cluster, "L1") is None
    assert await history(sessions, "L1") == []


async def test_inventory_availability_counts_from_a_mid_period_registration(
    sessions: Sessions,
) -> None:
    clock = Clock(T0)
    monitor = FleetMonitor(sessions, MonitorSettings(), clock=clock)
    await register_cluster(sessions, ClusterSpec(id="M"), ENDPOINTS, at=_local(2024, 1, 11))
    await import_clusters(sessions, "id,name\nN,N\n", at=_local(2024, 1, 16))
    await import_clusters(sessions, "id,name\nQ,Q\n", at=_local(2024, 1, 16))  # never connects
    for cid, day in (("M", 21), ("N", 26)):
        clock.now = _local(2024, 1, day).astimezone(UTC)
        await monitor.on_status(status(cid, "online"))
    assert [h[0] for h in await history(sessions, "N")] == [None, ClusterStatus.REGISTERED]
    assert (await history(sessions, "N"))[0][4] == _local(2024, 1, 16)
    tz = ZoneInfo("Asia/Ho_Chi_Minh")
    january = await inventory_report(
        sessions, period_between(date(2024, 1, 1), date(2024, 1, 31)), tz
    )
    rows = {
        r["cluster"]: (r["status"], r["availability"])
        for r in january.table("by_cluster").as_dicts()
    }
    assert rows["M"] == ("online", round(11 / 21, 4))  # online Jan 21 - Feb 1 of Jan 11 - Feb 1
    assert rows["N"] == ("online", round(6 / 16, 4))
    assert rows["Q"] == ("registered", 0.0)  # known since Jan 16, never online
    december = await inventory_report(
        sessions, period_between(date(2023, 12, 1), date(2023, 12, 31)), tz
    )
    assert not {"M", "N", "Q"} & {r["cluster"] for r in december.table("by_cluster").as_dicts()}
