"""Proof of play at a segment's end: a relay or media run the next broadcast cut at (or just
after) its planned end played its whole slot and is finished; a cut before it is an
interruption, as before (and a preempted session still resumes and counts as it did)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from devices.protocol import Event
from scheduler import session_id_for
from simulator import SimulatedFleet
from simulator._media import DownloadError
from simulator._player import Player
from simulator._session import Session
from station import _keys as keys
from station._playout_parts import segment_ends
from station._playout_store import END_GRACE, PlayoutStore, ProofUpdate
from station._programmes import ItemInput, add_programme
from station._schedules import ScheduleRequest, create_schedule, make_recurrence
from station._services import Sessions, register_clusters
from station.app import start_station
from station.config import Settings
from station.db import (
    Cluster,
    PlayRecord,
    PlayRecordStatus,
    Village,
)
from station.demo import demo_settings
from tests.db_support import media_row, seeded
from tests.playout_support import records_by_session
from tests.test_preempt_e2e import _schedule
from tests.test_relay import Upstream

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = datetime(2026, 3, 2, 5, 0, tzinfo=HCM)
START = datetime(2026, 3, 2, 6, 0, tzinfo=HCM).astimezone(UTC)
SECOND = timedelta(seconds=1)
NEXT = "s99-1772405100"  # the next broadcast, back to back


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[Sessions]:
    village = Village(id="T01", name="Thôn 1")
    clusters = [Cluster(id=cid, village_id="T01") for cid in ("C01", "C02")]
    async with seeded(database_url, [village, *clusters, media_row("a", 60_000, 1000)]) as factory:
        yield factory


async def _session(
    sessions: Sessions, store: PlayoutStore, *items: ItemInput, at: datetime = START
) -> str:
    """A one-off session of ``items`` at ``at`` on C01 and C02."""
    programme = await add_programme(sessions, "Sáng", list(items))
    assert programme.id is not None
    request = ScheduleRequest(
        programme.id, {"clusters": ["C01", "C02"]}, make_recurrence("once", at=at)
    )
    result = await create_schedule(sessions, Settings(), request, NOW)
    assert result.schedule.id is not None
    plan = await store.prepare_session(result.schedule.id, at, at + 10 * SECOND)
    assert plan is not None
    return plan.session_id


def _relay(seconds: int) -> ItemInput:
    return ItemInput("relay", url="http://vov.example/vov1", duration_s=seconds)


def _cut(sid: str, at: datetime, played_ms: int, *, by: str = NEXT, cluster: str = "C01") -> Event:
    """How a cluster reports a segment it was playing when ``by`` started."""
    return Event(
        cluster_id=cluster,
        type="playback_interrupted",
        session_id=sid,
        ts=at,
        started_at=START,
        finished_at=at,
        played_ms=played_ms,
        bytes_downloaded=5000,
        clock_offset_ms=0,
        detail="preempted",
        interrupted_by=by,
    )


async def _record(sessions: Sessions, sid: str, cluster: str = "C01") -> PlayRecord:
    async with sessions() as db:
        query = select(PlayRecord).where(
            PlayRecord.session_id == sid, PlayRecord.cluster_id == cluster
        )
        return (await db.exec(query)).one()


async def test_planned_ends_follow_the_segments_sent(sessions: Sessions) -> None:
    """A media run ends with its items, a stream at its ``until``; silences shift what
    follows, and each later segment starts a guard (100 ms) after the one before."""
    store = PlayoutStore(sessions)
    sid = await _session(
        sessions,
        store,
        ItemInput("media", media_id=1),
        ItemInput("silence", duration_s=5),
        _relay(120),
        ItemInput("media", media_id=1),
    )
    async with sessions() as db:
        ends = await segment_ends(db, [sid, "nobody"], None)
    ms = timedelta(milliseconds=1)
    assert ends == {sid: (START + 60 * SECOND, START + 185_100 * ms, START + 245_200 * ms)}


async def test_a_relay_stopped_late_and_cut_by_the_next_broadcast_is_finished(
    sessions: Sessions,
) -> None:
    """The cluster was loaded: it still played the relay 0.5 s after its ``until`` when the
    next broadcast started and cut it. Its slot was over: finished, cut by nobody."""
    store = PlayoutStore(sessions)
    sid = await _session(sessions, store, _relay(60))
    until = START + 60 * SECOND
    await store.on_event(_cut(sid, until + SECOND / 2, 60_000))
    record = await _record(sessions, sid)
    assert record.status == PlayRecordStatus.FINISHED
    assert record.interrupted_by is None
    assert record.played_ms == 60_000 and record.finished_at == until + SECOND / 2
    assert record.bytes_downloaded == 5000 and record.skew_ms == 0


async def test_a_cut_within_the_grace_before_the_end_is_finished_one_before_is_not(
    sessions: Sessions,
) -> None:
    """``END_GRACE`` before ``until`` is timing noise; a cut just before that is a cut."""
    store = PlayoutStore(sessions)
    sid = await _session(sessions, store, _relay(60))
    until = START + 60 * SECOND
    await store.on_event(_cut(sid, until - END_GRACE, 59_900))
    early = until - END_GRACE - timedelta(milliseconds=1)
    await store.on_event(_cut(sid, early, 59_899, cluster="C02"))
    assert (await _record(sessions, sid)).status == PlayRecordStatus.FINISHED
    other = await _record(sessions, sid, "C02")
    assert other.status == PlayRecordStatus.INTERRUPTED and other.interrupted_by == NEXT


async def test_a_relay_cut_well_before_its_end_stays_interrupted(sessions: Sessions) -> None:
    store = PlayoutStore(sessions)
    sid = await _session(sessions, store, _relay(60))
    await store.on_event(_cut(sid, START + 40 * SECOND, 40_000, by="e0123"))
    record = await _record(sessions, sid)
    assert record.status == PlayRecordStatus.INTERRUPTED
    assert record.interrupted_by == "e0123" and record.played_ms == 40_000


async def test_the_last_segment_is_judged_by_its_own_end(sessions: Sessions) -> None:
    """Media then a relay: the relay (``~1``, a guard after the media) cut 0.3 s after its
    own ``until`` ends the session finished; cut at the session's nominal end minus 10 s, the
    session is interrupted by what cut it."""
    store = PlayoutStore(sessions)
    sid = await _session(sessions, store, ItemInput("media", media_id=1), _relay(60))
    until = START + 120 * SECOND + timedelta(milliseconds=100)
    for cluster in ("C01", "C02"):
        await store.on_event(
            Event(
                cluster_id=cluster,
                type="playback_finished",
                session_id=sid,
                ts=START + 60 * SECOND,
                started_at=START,
                finished_at=START + 60 * SECOND,
                played_ms=60_000,
            )
        )
    await store.on_event(_cut(f"{sid}~1", until + 3 * SECOND / 10, 60_000))
    await store.on_event(_cut(f"{sid}~1", until - 10 * SECOND, 50_000, cluster="C02"))
    record = await _record(sessions, sid)
    assert record.status == PlayRecordStatus.FINISHED and record.interrupted_by is None
    assert record.played_ms == 120_000
    other = await _record(sessions, sid, "C02")
    assert other.status == PlayRecordStatus.INTERRUPTED and other.interrupted_by == NEXT
    assert other.played_ms == 110_000


async def test_media_cut_at_the_end_of_its_items_is_finished(sessions: Sessions) -> None:
    store = PlayoutStore(sessions)
    sid = await _session(sessions, store, ItemInput("media", media_id=1))
    await store.on_event(_cut(sid, START + 60 * SECOND + SECOND / 5, 60_000))
    record = await _record(sessions, sid)
    assert record.status == PlayRecordStatus.FINISHED and record.interrupted_by is None


async def test_media_preempted_midway_and_resumed_counts_as_before(sessions: Sessions) -> None:
    """An emergency cuts the programme 10 s in (interrupted, by the emergency); it resumes
    (``~r<n>``) and plays to its end (finished, the whole minute counted). A resumption cut
    by the next broadcast has no planned end on record: it stays interrupted."""
    store = PlayoutStore(sessions)
    sid = await _session(sessions, store, ItemInput("media", media_id=1))
    await store.on_event(_cut(sid, START + 10 * SECOND, 10_000, by="e0123"))
    record = await _record(sessions, sid)
    assert record.status == PlayRecordStatus.INTERRUPTED and record.interrupted_by == "e0123"
    resumed = Event(
        cluster_id="C01",
        type="playback_finished",
        session_id=f"{sid}~r40",
        ts=START + 90 * SECOND,
        finished_at=START + 90 * SECOND,
        played_ms=50_000,
    )
    await store.on_event(resumed)
    record = await _record(sessions, sid)
    assert record.status == PlayRecordStatus.FINISHED and record.played_ms == 60_000
    await store.on_event(_cut(sid, START + 10 * SECOND, 10_000, by="e0123", cluster="C02"))
    await store.on_event(_cut(f"{sid}~r40", START + 90 * SECOND, 50_000, cluster="C02"))
    other = await _record(sessions, sid, "C02")
    assert other.status == PlayRecordStatus.INTERRUPTED and other.interrupted_by == NEXT


async def test_a_batch_judges_each_cut_by_its_own_session(sessions: Sessions) -> None:
    """Buffered proof (``apply_proof``): several sessions' cuts in one batch, each against its
    own planned end; a redelivered cut changes nothing."""
    store = PlayoutStore(sessions)
    relay = await _session(sessions, store, _relay(60))
    news = await _session(sessions, store, ItemInput("media", media_id=1), at=START + 60 * SECOND)
    batch: list[ProofUpdate] = []

    async def sink(update: ProofUpdate) -> None:
        batch.append(update)

    store.proof_sink = sink
    late = _cut(relay, START + 60 * SECOND + SECOND / 2, 60_000, by=news)
    for event in (
        late,
        _cut(relay, START + 30 * SECOND, 30_000, by="e0123", cluster="C02"),
        _cut(news, START + 121 * SECOND, 60_000),
        late,
    ):
        await store.on_event(event)
    await store.apply_proof(batch)
    assert [r.status for r in [await _record(sessions, relay), await _record(sessions, news)]] == [
        PlayRecordStatus.FINISHED,
        PlayRecordStatus.FINISHED,
    ]
    assert (await _record(sessions, relay)).played_ms == 60_000
    cut = await _record(sessions, relay, "C02")
    assert cut.status == PlayRecordStatus.INTERRUPTED and cut.interrupted_by == "e0123"


async def test_back_to_back_relays_on_clusters_that_stop_late(
    tmp_path: Path,
    mqtt_url: str,
    database_url: str,
    station_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two 3 s relays back to back on the simulator, whose clusters keep playing the first
    past its ``until`` (a loaded device) until the second starts and cuts it: the clusters
    report the first interrupted by the second, proof of play records both finished."""
    radio = Upstream()
    await radio.start()
    settings = demo_settings(
        tmp_path, mqtt_url=mqtt_url, database_url=database_url, station_id=station_id
    )
    station = await start_station(settings)
    ids = ["L1", "L2"]
    try:
        app = station.app
        sessions = app[keys.SESSIONS]
        await register_clusters(sessions, [(cid, cid) for cid in ids])
        app[keys.GATEWAY].remember(ids)
        now = datetime.now(HCM)
        t0 = (now + timedelta(seconds=settings.scheduler.dispatch_lead_s + 3)).replace(
            microsecond=0
        ) + timedelta(seconds=1)
        relay = [ItemInput("relay", url=radio.url, duration_s=3)]
        first_id = await _schedule(station, relay, t0, ids, "relay")
        second_id = await _schedule(station, relay, t0 + 3 * SECOND, ids, "relay")
        first = session_id_for(first_id, t0)
        second = session_id_for(second_id, t0 + 3 * SECOND)
        listen = Player._listen

        async def stops_late(self: Player, session: Session) -> DownloadError | None:
            problem = await listen(self, session)
            if session.plan.session_id == first:
                await asyncio.Event().wait()  # still on air until the next broadcast cuts it
            return problem

        monkeypatch.setattr(Player, "_listen", stops_late)
        wanted = {(sid, cid) for sid in (first, second) for cid in ids}
        async with SimulatedFleet(station.runtime.mqtt_url, station_id, ids) as fleet:
            await app[keys.DISPATCHER].reconcile()
            async with asyncio.timeout(45):
                while True:
                    records = await records_by_session(sessions)
                    ended = {k for k, r in records.items() if r.finished_at is not None}
                    if wanted <= ended:
                        break
                    await asyncio.sleep(0.2)
            seen = {cid: list(rs) for cid, rs in fleet.records().items()}
        until = t0.astimezone(UTC) + 3 * SECOND
        for cid in ids:
            plays = [(r.session_id, r.outcome) for r in seen[cid]]
            assert plays == [(first, "preempted"), (second, "finished")], plays  # the device's view
            cut = records[(first, cid)]
            assert cut.status == PlayRecordStatus.FINISHED and cut.interrupted_by is None
            assert cut.finished_at is not None and cut.finished_at >= until
            assert cut.played_ms is not None and cut.played_ms <= 3000
            assert records[(second, cid)].status == PlayRecordStatus.FINISHED
    finally:
        await station.stop()
        await radio.stop()
