"""The dispatcher with a fake repository and gateway: recurring occurrences, segments, misses."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from devices import ClusterGateway
from devices.protocol import (
    Command,
    PlayCommand,
    PowerCommand,
    PrefetchCommand,
    ScheduleCommand,
    StreamCommand,
)
from scheduler import (
    BridgePower,
    Dispatcher,
    ItemRef,
    OccurrenceSpec,
    SessionPlan,
    SilencePart,
    StreamPart,
    base_session_id,
    plan_occurrences,
    segments,
    session_id_for,
)

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
LEAD = timedelta(seconds=5)
MEDIA = ItemRef(7, "a" * 64, 1000, 60_000)


def test_occurrences_fire_ahead_late_within_grace_or_are_missed() -> None:
    grace = timedelta(minutes=5)
    ahead = OccurrenceSpec(1, T0 + timedelta(minutes=10), grace)
    soon = OccurrenceSpec(2, T0 + timedelta(seconds=3), grace)
    late = OccurrenceSpec(3, T0 - timedelta(minutes=2), grace)
    gone = OccurrenceSpec(4, T0 - timedelta(minutes=6), grace)
    skip = OccurrenceSpec(5, T0 - timedelta(seconds=1))  # grace 0: skip when late
    result = plan_occurrences([gone, late, soon, ahead, skip], T0, lead=LEAD)
    assert [(f.spec, f.fire_at, f.start_at) for f in result.later] == [
        (ahead, ahead.occurrence - LEAD, ahead.occurrence)
    ]
    assert [(f.spec, f.start_at, f.late) for f in result.now] == [
        (late, T0 + LEAD, True),
        (soon, soon.occurrence, False),
    ]
    assert result.missed == [gone, skip]
    assert late.session_id == session_id_for(3, late.occurrence)  # named by the occurrence
    with pytest.raises(ValueError):
        OccurrenceSpec(1, datetime(2026, 3, 2, 6, 0))
    with pytest.raises(ValueError):
        plan_occurrences([], datetime(2026, 3, 2, 6, 0), lead=LEAD)


def _plan(*parts: Any, volume: int | None = None, priority: int = 40) -> SessionPlan:
    media = [p for p in parts if isinstance(p, ItemRef)]
    return SessionPlan(
        "s1-100", T0, T0 + timedelta(minutes=1), ["C1", "C2"], media, volume, tuple(parts), priority
    )


def test_programme_splits_into_play_and_stream_segments() -> None:
    relay = StreamPart("http://vov.example/vov1", 120_000)
    session = _plan(MEDIA, MEDIA, SilencePart(5_000), relay, MEDIA)
    found = segments(session)
    assert [(s.session_id, s.offset_ms, len(s.items), s.stream) for s in found] == [
        ("s1-100", 0, 2, None),
        ("s1-100~1", 125_100, 0, relay),  # each later segment 100 ms apart (no overlap)
        ("s1-100~2", 245_200, 1, None),
    ]
    assert base_session_id("s1-100~2") == ("s1-100", 2)
    assert base_session_id("s1-100") == ("s1-100", 0)
    # No parts: the media items alone (one-off sessions made before parts existed).
    assert len(segments(SessionPlan("s", T0, T0, ["C1"], [MEDIA, MEDIA]))) == 1


class FakeGateway:
    def __init__(self, failing: set[str] | None = None) -> None:
        self.sent: list[tuple[str, Command]] = []
        self.failing = failing or set()

    async def send(self, cluster_id: str, command: Command, timeout: float | None = None) -> None:
        if cluster_id in self.failing:
            raise ConnectionError("link down")
        self.sent.append((cluster_id, command))


class FakeRepository:
    """Occurrences of one recurring schedule; records what the dispatcher reports."""

    def __init__(self, due: list[OccurrenceSpec], session: SessionPlan | None) -> None:
        self.due = due
        self.session = session
        self.prepared: list[tuple[int, datetime, datetime | None]] = []
        self.dispatched: list[tuple[str, dict[str, str]]] = []
        self.missed: list[tuple[str, str]] = []
        self.made: dict[str, SessionPlan] = {}

    async def pending_schedules(self) -> list[Any]:
        return []

    async def prepare_session(
        self,
        schedule_id: int,
        start_at: datetime,
        expires_at: datetime,
        *,
        occurrence: datetime | None = None,
    ) -> SessionPlan | None:
        self.prepared.append((schedule_id, start_at, occurrence))
        if self.session is None or occurrence is None:
            return None
        sid = session_id_for(schedule_id, occurrence)
        if sid in self.made:
            return self.made[sid]
        self.made[sid] = SessionPlan(
            sid,
            start_at,
            expires_at,
            self.session.cluster_ids,
            self.session.items,
            self.session.volume,
            self.session.parts,
            self.session.priority,
            self.session.bridges,
        )
        return self.made[sid]

    async def upcoming_sessions(self, start: datetime, end: datetime) -> list[SessionPlan]:
        return [s for s in self.made.values() if start <= s.start_at < end]

    async def due_occurrences(self, start: datetime, end: datetime) -> list[OccurrenceSpec]:
        return [
            o
            for o in self.due
            if start <= o.occurrence < end
            and o.session_id not in {d for d, _ in self.dispatched}
            and o.session_id not in {m for m, _ in self.missed}
        ]

    async def mark_occurrence_missed(self, spec: OccurrenceSpec, reason: str) -> None:
        self.missed.append((spec.session_id, reason))

    async def record_dispatch(
        self, schedule_id: int, session_id: str, failures: dict[str, str]
    ) -> None:
        self.dispatched.append((session_id, failures))

    async def mark_missed(self, schedule_id: int, reason: str) -> None:
        raise AssertionError("one-off path not expected")


def _dispatcher(repo: FakeRepository, gateway: FakeGateway, now: datetime) -> Dispatcher:
    return Dispatcher(
        repo,
        cast(ClusterGateway, gateway),
        lambda cid, item: f"http://st/{cid}/{item.sha256}",
        lead_s=5,
        clock=lambda: now,
        horizon_s=3600,
        lookback_s=86400,
    )


async def _drain(dispatcher: Dispatcher) -> None:
    await asyncio.gather(*list(dispatcher._tasks))


async def test_recurring_occurrences_are_sent_scheduled_or_recorded_missed() -> None:
    relay = StreamPart("http://vov.example/vov1", 60_000)
    session = _plan(MEDIA, relay, volume=70, priority=40)
    grace = timedelta(minutes=2)
    now = T0
    due = [
        OccurrenceSpec(9, now - timedelta(days=1), grace),  # station was down: skipped
        OccurrenceSpec(9, now + timedelta(seconds=2), grace),  # inside the lead: now
        OccurrenceSpec(9, now + timedelta(minutes=30), grace),  # a job for later
        OccurrenceSpec(9, now + timedelta(hours=3), grace),  # beyond the horizon
    ]
    repo, gateway = FakeRepository(due, session), FakeGateway(failing={"C2"})
    dispatcher = _dispatcher(repo, gateway, now)
    await dispatcher.reconcile()
    await _drain(dispatcher)
    assert repo.missed == [(due[0].session_id, "station_down")]
    assert repo.dispatched == [(due[1].session_id, {"C2": "link down"})]
    jobs = {job.id: job for job in dispatcher.scheduler.get_jobs()}
    assert set(jobs) == {f"occurrence-{due[2].session_id}"}
    sid = due[1].session_id
    plays = [c for cid, c in gateway.sent if isinstance(c, PlayCommand)]
    streams = [c for cid, c in gateway.sent if isinstance(c, StreamCommand)]
    assert [(p.session_id, p.start_at, p.volume, p.priority) for p in plays] == [
        (sid, due[1].occurrence, 70, 40)
    ]
    assert [(s.session_id, s.url, s.start_at, s.until, s.volume) for s in streams] == [
        (
            f"{sid}~1",
            relay.url,
            due[1].occurrence + timedelta(minutes=1, milliseconds=100),
            due[1].occurrence + timedelta(minutes=2, milliseconds=100),
            70,
        )
    ]
    # A second reconcile sends nothing twice and records nothing twice.
    await dispatcher.reconcile()
    await _drain(dispatcher)
    assert len(repo.dispatched) == 1 and len(repo.missed) == 1
    await dispatcher.stop()


async def test_nothing_to_play_is_recorded_for_the_occurrence() -> None:
    spec = OccurrenceSpec(4, T0 + timedelta(seconds=1))
    repo, gateway = FakeRepository([spec], None), FakeGateway()
    dispatcher = _dispatcher(repo, gateway, T0)
    await dispatcher.reconcile()
    await _drain(dispatcher)
    assert repo.missed == [(spec.session_id, "nothing_to_play")]
    assert gateway.sent == []
    await dispatcher.stop()


async def test_clusters_hold_their_upcoming_sessions_and_get_them_again_on_birth() -> None:
    relay = StreamPart("http://vov.example/vov1", 60_000)
    session = _plan(MEDIA, relay, MEDIA, volume=70, priority=40)
    due = [
        OccurrenceSpec(9, T0 + timedelta(minutes=20)),
        OccurrenceSpec(9, T0 + timedelta(hours=20)),
        OccurrenceSpec(9, T0 + timedelta(hours=30)),  # beyond the 24 h list
    ]
    repo, gateway = FakeRepository(due, session), FakeGateway()
    dispatcher = _dispatcher(repo, gateway, T0)
    await dispatcher.reconcile()
    lists = [(cid, c) for cid, c in gateway.sent if isinstance(c, ScheduleCommand)]
    prefetches = [(cid, c) for cid, c in gateway.sent if isinstance(c, PrefetchCommand)]
    assert sorted(cid for cid, _ in lists) == ["C1", "C2"]
    first, second = due[0].session_id, due[1].session_id
    held = lists[0][1]
    assert isinstance(held, ScheduleCommand)
    # Media runs only (the relay between them needs the link); each at its own start.
    assert [(s.session_id, s.start_at, s.priority, s.volume) for s in held.sessions] == [
        (first, due[0].occurrence, 40, 70),
        (f"{first}~2", due[0].occurrence + timedelta(minutes=2, milliseconds=200), 40, 70),
        (second, due[1].occurrence, 40, 70),
        (f"{second}~2", due[1].occurrence + timedelta(minutes=2, milliseconds=200), 40, 70),
    ]
    assert held.sessions[0].items[0].url == f"http://st/C1/{'a' * 64}"
    # Only the session within 30 minutes is prefetched, its item once.
    assert sorted(cid for cid, _ in prefetches) == ["C1", "C2"]
    assert all(isinstance(c, PrefetchCommand) and len(c.items) == 1 for _, c in prefetches)
    # Nothing changed: nothing is sent again.
    sent = len(gateway.sent)
    await dispatcher.reconcile()
    assert len(gateway.sent) == sent
    # A cluster's birth: its list and prefetch go out again (coalesced), to it alone.
    dispatcher.cluster_online("C2")
    dispatcher.cluster_online("C2")
    await asyncio.sleep(0.6)
    await _drain(dispatcher)
    again = gateway.sent[sent:]
    assert sorted((cid, c.type) for cid, c in again) == [("C2", "prefetch"), ("C2", "schedule")]
    await dispatcher.stop()


async def test_bridged_sessions_power_the_transmitter_on_first_and_off_after() -> None:
    bridges = {"B1": BridgePower("transmitter", ("*12#",))}
    session = replace(_plan(MEDIA), bridges=bridges)
    spec = OccurrenceSpec(4, T0 + timedelta(seconds=1))
    repo, gateway = FakeRepository([spec], session), FakeGateway()
    dispatcher = _dispatcher(repo, gateway, T0)
    await dispatcher.reconcile()
    await _drain(dispatcher)
    kinds = [(cid, c.type) for cid, c in gateway.sent if c.type in ("power", "play")]
    assert kinds[0] == ("B1", "power") and {k for _, k in kinds[1:]} == {"play"}
    first = next(c for _, c in gateway.sent if isinstance(c, PowerCommand))
    assert first.on and first.target == "transmitter" and first.zone_codes == ["*12#"]
    off = dispatcher.scheduler.get_job(f"power-off-{spec.session_id}")
    assert off is not None  # at the end of the last item
    assert off.trigger.run_date == spec.occurrence + timedelta(milliseconds=MEDIA.duration_ms)
    await dispatcher.stop()
