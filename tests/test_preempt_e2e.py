"""Preemption between scheduled sessions on the simulator: a bulletin cuts a programme and a
relay on some clusters; when it ends the programme resumes where it stopped, the relay rejoins
what is on air, and a programme past its window is recorded interrupted by the bulletin."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web

from devices.protocol import Command, PlayCommand, StreamCommand
from simulator import SimulatedFleet
from station import _keys as keys
from station._programmes import ItemInput, add_programme
from station._schedules import ScheduleRequest, create_schedule, make_recurrence
from station._services import register_clusters
from station.app import RunningStation, start_station
from station.db import PlayRecordStatus
from station.demo import demo_settings
from tests.playout_support import (
    records_by_session,
    session_of,
    spy_on_sends,
    start_after_lead,
    synthesized_media,
)
from tests.test_relay import Upstream

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
IDS = ["P1", "P2", "P3", "P4"]


async def _media(app: web.Application, tmp_path: Path, seconds: float) -> int:
    return await synthesized_media(app, tmp_path, seconds, f"{seconds} s")


async def _spied_clusters(
    app: web.Application, ids: list[str], monkeypatch: pytest.MonkeyPatch
) -> list[tuple[str, Command]]:
    """Clusters ``ids`` registered and heard from; what the station sends them (spied)."""
    gateway = app[keys.GATEWAY]
    sent = spy_on_sends(gateway, monkeypatch)
    await register_clusters(app[keys.SESSIONS], [(cid, cid) for cid in ids])
    gateway.remember(ids)
    return sent


async def _schedule(
    station: RunningStation,
    items: list[ItemInput],
    at: datetime,
    clusters: list[str],
    priority: str,
    grace: int | None = None,
) -> int:
    sessions, settings = station.app[keys.SESSIONS], station.app[keys.SETTINGS]
    programme = await add_programme(sessions, f"{priority} {clusters}", items)
    assert programme.id is not None
    request = ScheduleRequest(
        programme.id,
        {"clusters": clusters},
        make_recurrence("once", at=at),
        priority=priority,
        misfire_grace_s=grace,
    )
    result = await create_schedule(sessions, settings, request, datetime.now(HCM))
    assert result.schedule.id is not None
    return result.schedule.id


def _sid(command: Command) -> str:
    return getattr(command, "session_id", None) or ""


async def test_bulletin_preempts_then_media_resume_at_offset_and_relays_rejoin(
    tmp_path: Path,
    mqtt_url: str,
    database_url: str,
    station_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    radio = Upstream()
    await radio.start()
    settings = demo_settings(
        tmp_path, mqtt_url=mqtt_url, database_url=database_url, station_id=station_id
    )
    station = await start_station(settings)
    try:
        app = station.app
        sessions = app[keys.SESSIONS]
        sent = await _spied_clusters(app, IDS, monkeypatch)
        long, short = await _media(app, tmp_path, 3.0), await _media(app, tmp_path, 1.0)
        t0 = start_after_lead(settings, datetime.now(HCM))
        # P1, P2: a 3 s programme; P3: the same with no grace (its window ends with it);
        # P4: a 6 s relay. At +2 s a 2 s bulletin cuts in on P1, P3 and P4.
        news = await _schedule(
            station, [ItemInput("media", media_id=long)], t0, ["P1", "P2"], "scheduled"
        )
        strict = await _schedule(
            station, [ItemInput("media", media_id=long)], t0, ["P3"], "scheduled", grace=0
        )
        vov = await _schedule(
            station, [ItemInput("relay", url=radio.url, duration_s=6)], t0, ["P4"], "relay"
        )
        bulletin = await _schedule(
            station,
            [ItemInput("media", media_id=short), ItemInput("media", media_id=short)],
            t0 + timedelta(seconds=2),
            ["P1", "P3", "P4"],
            "bulletin",
        )
        async with SimulatedFleet(station.runtime.mqtt_url, station_id, IDS) as fleet:
            await app[keys.DISPATCHER].reconcile()  # sessions are made ahead (store-and-forward)
            s_news, s_strict, s_vov, s_bulletin = [
                await session_of(sessions, s) for s in (news, strict, vov, bulletin)
            ]
            wanted = {
                (s_news, "P1"): PlayRecordStatus.FINISHED,
                (s_news, "P2"): PlayRecordStatus.FINISHED,
                (s_strict, "P3"): PlayRecordStatus.INTERRUPTED,
                (s_vov, "P4"): PlayRecordStatus.FINISHED,
                **{(s_bulletin, c): PlayRecordStatus.FINISHED for c in ("P1", "P3", "P4")},
            }
            async with asyncio.timeout(30):
                while True:
                    records = await records_by_session(sessions)
                    got = {k: records[k].status for k in wanted if k in records}
                    if got == wanted and all(r.finished_at for r in records.values()):
                        break
                    await asyncio.sleep(0.2)
            seen = {cid: list(rs) for cid, rs in fleet.records().items()}
        records = await records_by_session(sessions)
        # P1: cut 2 s in, resumed after the bulletin for the last second only.
        plays = [(r.session_id, r.outcome) for r in seen["P1"]]
        assert plays[:2] == [(s_news, "preempted"), (s_bulletin, "finished")], plays
        resumed = seen["P1"][2]
        assert resumed.session_id.startswith(f"{s_news}~r") and resumed.outcome == "finished"
        assert resumed.played_ms is not None and 600 <= resumed.played_ms <= 1500
        [command] = [c for cid, c in sent if cid == "P1" and _sid(c) == resumed.session_id]
        assert isinstance(command, PlayCommand)
        assert 1800 <= command.offset_ms <= 2200  # where it stopped, not from the top
        assert records[(s_news, "P1")].interrupted_by == s_bulletin  # proof: what cut in
        assert records[(s_news, "P2")].interrupted_by is None
        assert [r.outcome for r in seen["P2"]] == ["finished"]
        # P3: past its window when the bulletin ended: interrupted by it, never resumed.
        assert records[(s_strict, "P3")].interrupted_by == s_bulletin
        assert not any(_sid(c).startswith(f"{s_strict}~r") for _, c in sent)
        # P4: the relay rejoins what is on air until its slot's end; no offset.
        plays = sorted((r.session_id, r.outcome) for r in seen["P4"])
        assert plays == [
            (s_vov, "preempted"),
            (f"{s_vov}~r4", "finished"),
            (s_bulletin, "finished"),
        ]
        [again] = [c for cid, c in sent if cid == "P4" and _sid(c).startswith(f"{s_vov}~r")]
        assert isinstance(again, StreamCommand)
        slot_end = t0.astimezone(UTC) + timedelta(seconds=6)
        assert again.until is not None and abs(again.until - slot_end) < timedelta(milliseconds=5)
        [rejoined] = [r for r in seen["P4"] if r.session_id == again.session_id]
        assert rejoined.bytes_downloaded > 0  # audio from the relay mount
        assert records[(s_vov, "P4")].interrupted_by == s_bulletin
    finally:
        await station.stop()
        await radio.stop()
