"""Each live input reaches clusters the way a broadcaster airs it: a scheduled live slot
(programme item of kind live) is dispatched as ``stream`` commands carrying the station's
``/live/<studio>`` URL signed per cluster; simulated clusters fetch it and report proof of play.

Inputs: (a) a local device read by ffmpeg (a lavfi tone stands in for ``alsa:hw:1``), (b) an
Icecast source client (ffmpeg ``icecast://``, PUT) and (c) the console's microphone WebSocket
(MediaRecorder-sized WebM/Opus chunks, sent at the pace of real time); one station airs the
three in turn (a station start is the slow part). And a slot nobody feeds: clusters hear
silence, the slot still finishes, a ``no_source`` alert is raised.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from sqlmodel import col, select

from devices.protocol import Command, StreamCommand
from simulator import SimulatedFleet
from station import _keys as keys
from station._programmes import ItemInput, add_programme
from station._schedules import ScheduleRequest, create_schedule, make_recurrence
from station._services import register_clusters
from station.app import RunningStation
from station.config import Settings
from station.db import PlayRecord, PlayRecordStatus, PlaySession, Role
from station.live import SOURCE_SERVER, LiveError, LiveHub, MountConfig
from station.live._routing import HubRouter
from tests.api_support import running, user_with_token
from tests.live_support import (
    FFMPEG,
    SOURCE_PASSWORD,
    TONE,
    eventually,
    hub_of,
    listen,
    live_settings,
    max_volume_db,
    unsigned,
    webm_chunks,
)

SLOT_S = 3
LEAD_S = 1.5  # dispatch lead (the router's warm-up is longer: the mount is up at dispatch)
IDS = ["L1", "L2"]
STUDIO = "studio"


@dataclass
class Studio:
    station: RunningStation
    settings: Settings
    hub: LiveHub
    fleet: SimulatedFleet
    sent: list[tuple[str, Command]] = field(default_factory=list)

    @property
    def router(self) -> HubRouter:
        router = self.station.app[keys.DISPATCHER].stream_router
        assert isinstance(router, HubRouter)
        return router


@asynccontextmanager
async def live_station(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str
) -> AsyncIterator[Studio]:
    settings = live_settings(tmp_path, mqtt_url, database_url, station_id, mqtt=False)
    scheduler = settings.scheduler.model_copy(update={"dispatch_lead_s": LEAD_S})
    settings = settings.model_copy(update={"scheduler": scheduler})
    async with running(settings) as station:
        await register_clusters(station.app[keys.SESSIONS], [(cid, cid) for cid in IDS])
        async with SimulatedFleet(station.runtime.mqtt_url, station_id, IDS) as fleet:
            studio = Studio(station, settings, hub_of(station), fleet)
            studio.router.linger_s = 0.5  # mounts let go sooner after a slot (default 2 s)
            gateway = station.app[keys.GATEWAY]
            send = gateway.send

            async def spy(cluster_id: str, command: Command, timeout: float | None = None) -> None:
                studio.sent.append((cluster_id, command))
                await send(cluster_id, command, timeout)

            gateway.send = spy  # type: ignore[method-assign]
            yield studio


async def air_live_slot(studio: Studio, tmp_path: Path, what: str) -> float:
    """Schedule a live slot of ``SLOT_S`` seconds that starts in a few seconds; check the path
    (stream commands, signed URLs) and proof of play of every cluster. Returns the peak level
    (dBFS) that a listener of the studio mount heard during the slot."""
    station, settings = studio.station, studio.settings
    sessions = station.app[keys.SESSIONS]
    programme = await add_programme(
        sessions, f"Trực tiếp {what}", [ItemInput("live", duration_s=SLOT_S)]
    )
    assert programme.id is not None
    now = datetime.now(UTC)
    ahead = timedelta(seconds=LEAD_S + 0.5)  # time to create it before its dispatch
    start = (now + ahead).replace(microsecond=0) + timedelta(seconds=1)
    request = ScheduleRequest(
        programme.id, {"all": True}, make_recurrence("once", at=start), priority="live"
    )
    schedule = (await create_schedule(sessions, settings, request, now)).schedule
    await station.app[keys.DISPATCHER].reconcile()
    await asyncio.sleep(max(0.0, (start - datetime.now(UTC)).total_seconds() + 0.3))
    status, heard = await listen(studio.hub.url_for(STUDIO, "spy"), SLOT_S - 1.0, 1 << 30)
    assert status == 200, what
    done: list[tuple[PlaySession, Sequence[PlayRecord]]] = []

    async def all_finished() -> bool:
        if (found := await _finished(studio, schedule.id)) is not None:
            done.append(found)
        return bool(done)

    await eventually(all_finished, 30)
    session, records = done[0]
    streams = {
        cid: c
        for cid, c in studio.sent
        if isinstance(c, StreamCommand) and c.session_id == session.id
    }
    assert sorted(streams) == IDS, what
    for cid, command in streams.items():
        # Signed per cluster (its expiry is rounded, so compare all but expiry and signature:
        # the proof of play below shows the signature was accepted).
        assert unsigned(command.url) == unsigned(studio.hub.url_for(STUDIO, cid)), what
        assert command.start_at == start and command.until == start + timedelta(seconds=SLOT_S)
    for record in records:  # proof of play: playback_started and playback_finished arrived
        assert record.started_at is not None and record.finished_at is not None, what
        assert record.played_ms is not None and record.played_ms >= (SLOT_S - 1) * 1000, what
        assert record.bytes_downloaded is not None and record.bytes_downloaded > 2_000, what
    for cid, played in studio.fleet.records().items():
        (mine,) = [r for r in played if r.session_id == session.id]
        assert mine.outcome == "finished" and mine.bytes_downloaded > 2_000, (what, cid, mine)
    return await max_volume_db(heard, tmp_path)


async def _finished(
    studio: Studio, schedule_id: int | None
) -> tuple[PlaySession, Sequence[PlayRecord]] | None:
    """The schedule's session and its records once every cluster finished playing it."""
    async with studio.station.app[keys.SESSIONS]() as db:
        query = select(PlaySession).where(col(PlaySession.schedule_id) == schedule_id)
        session = (await db.exec(query)).one_or_none()
        if session is None:
            return None
        found = select(PlayRecord).where(col(PlayRecord.session_id) == session.id)
        records = (await db.exec(found)).all()
    finished = [r for r in records if r.status == PlayRecordStatus.FINISHED]
    return (session, records) if len(finished) == len(IDS) else None


async def test_each_live_input_airs_in_a_scheduled_live_slot(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str
) -> None:
    async with live_station(tmp_path, mqtt_url, database_url, station_id) as studio:
        hub = studio.hub
        # (a) the studio mixer on the sound card: loaxa live start --mount studio --source alsa:..
        await hub.start(STUDIO, TONE)
        assert await air_live_slot(studio, tmp_path, "device") > -30  # the tone, not silence
        await eventually(lambda: studio.router.holding == [])  # the slot let go of it
        assert STUDIO in hub.mounts  # the operator's mount: used, never stopped by a slot
        await hub.stop(STUDIO)

        # (b) BUTT/ffmpeg connects before the slot (sound check): the push starts the mount
        port = studio.station.app[SOURCE_SERVER].port
        push = await asyncio.create_subprocess_exec(
            FFMPEG, "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i", "sine=f=440",
            "-c:a", "libopus", "-b:a", "32k", "-f", "ogg",
            f"icecast://source:{SOURCE_PASSWORD}@127.0.0.1:{port}/{STUDIO}",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            await eventually(
                lambda: STUDIO in hub.mounts and hub.mounts[STUDIO].state == "on_source"
            )
            assert hub.mounts[STUDIO].source == "push"
            assert await air_live_slot(studio, tmp_path, "icecast") > -30
        finally:
            push.terminate()  # the broadcaster hangs up
            await push.wait()
        await eventually(lambda: not any(m["source_connected"] for m in hub.status()))

        # (c) the console's microphone, also connected before the slot
        token = await user_with_token(studio.station, "lan", Role.BROADCASTER)
        seconds = LEAD_S + SLOT_S + 4
        chunks = await webm_chunks(tmp_path, seconds)
        ws_url = f"{studio.station.base_url}/live/{STUDIO}/mic"
        headers = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession() as http, http.ws_connect(ws_url, headers=headers) as ws:

            async def speak() -> None:  # MediaRecorder's pace: each chunk once it is recorded
                for chunk in chunks:
                    await ws.send_bytes(chunk)
                    await asyncio.sleep(seconds / len(chunks))

            speaking = asyncio.create_task(speak())
            try:
                await eventually(lambda: hub.mounts[STUDIO].state == "on_source")
                assert await air_live_slot(studio, tmp_path, "browser") > -30
            finally:
                speaking.cancel()
                await asyncio.gather(speaking, return_exceptions=True)
            await ws.send_str("stop")
        assert not [a for a in hub.alerts if a.kind == "no_source"]
        # nobody holds the on-demand studio mount any more (slot over, client gone): stopped
        await eventually(lambda: STUDIO not in hub.mounts, 15)


async def test_live_slot_without_a_source_airs_silence_and_raises_no_source(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str
) -> None:
    async with live_station(tmp_path, mqtt_url, database_url, station_id) as studio:
        began = datetime.now(UTC)
        # nobody pushes: the router starts the studio mount ahead of the slot all the same
        assert await air_live_slot(studio, tmp_path, "nothing") < -60  # silence
        (alert,) = [a for a in studio.hub.alerts if a.kind == "no_source"]
        assert alert.mount == STUDIO and alert.raised_at > began
        await eventually(lambda: STUDIO not in studio.hub.mounts, 15)  # stopped after the slot
        assert alert.cleared_at is not None


async def test_router_holds_slot_mounts_and_pushes_keep_the_studio_up() -> None:
    hub = LiveHub(FFMPEG, MountConfig(), lambda m, c: f"/live/{m}?c={c}", "t", studio_mount=STUDIO)
    router = HubRouter(lambda: hub, warmup_s=0.5, linger_s=0.2, tick_s=0.1)
    try:
        at = datetime.now(UTC)
        route = await router(
            f"live:{STUDIO}", at + timedelta(seconds=0.3), at + timedelta(seconds=3)
        )
        assert route is not None and route.url_for("C1") == "/live/studio?c=C1"
        await eventually(lambda: STUDIO in hub.mounts)
        assert hub.mounts[STUDIO].source == "push" and router.holding == [STUDIO]
        await hub.stop(STUDIO)  # someone stops it mid-slot: the slot starts it again
        await eventually(lambda: STUDIO in hub.mounts)
        feed = await hub.open_push(STUDIO, "icecast")  # a broadcaster connects during the slot
        with pytest.raises(LiveError) as busy:
            await hub.open_push(STUDIO, "browser")
        assert busy.value.status == 409
        await eventually(lambda: router.holding == [])  # the slot is over...
        assert STUDIO in hub.mounts  # ...but the connected client keeps it up
        await hub.close_push(STUDIO, feed)  # hung up: nobody needs the mount now
        assert STUDIO not in hub.mounts
        with pytest.raises(LiveError) as missing:
            await hub.open_push("xa", "icecast")  # only the studio starts on a push
        assert missing.value.status == 404
    finally:
        await router.close()
        await hub.stop_all()
    with pytest.raises(LiveError):
        await hub.hold(STUDIO, "push", object())  # shut down: nothing starts any more
