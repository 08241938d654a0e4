"""Scheduled live slots reach receivers that take live audio over MQTT only, and scale-out
clusters are sent to the Icecast edge.

End to end: one HTTP cluster and one MQTT-only cluster (its birth announces
``capabilities.live: ["mqtt"]``; the simulator nacks a transport it did not announce) take the
same scheduled live slot: the HTTP one gets the station's signed ``/live/studio`` URL, the
MQTT-only one ``transport: mqtt`` with the mount's topic, and with ``live.mqtt: false`` the
mount publishes its packets only while that slot holds it. Both play, both have proof of play
with bytes. Without a station: the router's routes (edge URL signed per cluster, MQTT topic),
the Icecast URL-auth answer, and the broker rights of a receiver on live topics.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlmodel import col, select

from devices import TopicPolicy
from devices._mosquitto import acl_text
from devices.protocol import Command, StreamCommand, Topics
from simulator import SimulatedFleet
from station import _keys as keys
from station._delivery_state import Sessions, UrlSigner
from station._programmes import ItemInput, add_programme
from station._schedules import ScheduleRequest, create_schedule, make_recurrence
from station._services import register_clusters
from station.app import RunningStation
from station.config import Settings
from station.db import PlayRecord, PlayRecordStatus, PlaySession
from station.live import LiveHub, MountConfig, MqttSink, edge_url, mqtt_only_clusters
from station.live._routes import signed_name
from station.live._routing import HubRouter
from tests.api_support import running
from tests.live_support import (
    FFMPEG,
    ICECAST_PASSWORD,
    TONE,
    eventually,
    hub_of,
    icecast_server,
    listen,
    live_settings,
    unsigned,
)

SLOT_S = 3
LEAD_S = 1.5
HTTP_ID, MQTT_ID = "H1", "M1"
STUDIO = "studio"
SECRET = b"0123456789abcdef0123456789abcdef"


def _spy(station: RunningStation) -> list[tuple[str, Command]]:
    """Every command the station's gateway sends, from now on."""
    gateway = station.app[keys.GATEWAY]
    sent: list[tuple[str, Command]] = []
    send = gateway.send

    async def spy(cluster_id: str, command: Command, timeout: float | None = None) -> None:
        sent.append((cluster_id, command))
        await send(cluster_id, command, timeout)

    gateway.send = spy  # type: ignore[method-assign]
    return sent


async def _records(sessions: Sessions, schedule_id: int | None, count: int) -> list[PlayRecord]:
    """The schedule's records once ``count`` clusters finished it (else none)."""
    async with sessions() as db:
        query = select(PlaySession).where(col(PlaySession.schedule_id) == schedule_id)
        session = (await db.exec(query)).one_or_none()
        if session is None:
            return []
        found = select(PlayRecord).where(col(PlayRecord.session_id) == session.id)
        records: Sequence[PlayRecord] = (await db.exec(found)).all()
    finished = [r for r in records if r.status == PlayRecordStatus.FINISHED]
    return finished if len(finished) >= count else []


async def _air_slot(
    station: RunningStation, settings: Settings, ids: list[str], slot_s: int
) -> tuple[list[PlayRecord], dict[str, StreamCommand]]:
    """A live slot of ``slot_s`` scheduled for all clusters a few seconds ahead: the finished
    proof-of-play records of ``ids`` and the stream command each one got."""
    sessions = station.app[keys.SESSIONS]
    router = station.app[keys.DISPATCHER].stream_router
    assert isinstance(router, HubRouter)
    router.linger_s = 0.5  # let go sooner after the slot (default 2 s)
    sent = _spy(station)
    programme = await add_programme(sessions, "Trực tiếp", [ItemInput("live", duration_s=slot_s)])
    assert programme.id is not None
    now = datetime.now(UTC)
    start = (now + timedelta(seconds=LEAD_S + 0.5)).replace(microsecond=0) + timedelta(seconds=1)
    request = ScheduleRequest(
        programme.id, {"all": True}, make_recurrence("once", at=start), priority="live"
    )
    schedule = (await create_schedule(sessions, settings, request, now)).schedule
    await station.app[keys.DISPATCHER].reconcile()
    done: list[list[PlayRecord]] = []

    async def finished() -> bool:
        if found := await _records(sessions, schedule.id, len(ids)):
            done.append(found)
        return bool(done)

    await eventually(finished, 30)
    streams = {cid: c for cid, c in sent if isinstance(c, StreamCommand)}
    assert sorted(streams) == sorted(ids)
    for record in done[0]:  # proof of play: started and finished, with what it received
        assert record.started_at is not None and record.finished_at is not None
        assert record.played_ms is not None and record.played_ms >= (slot_s - 1) * 1000
        assert record.bytes_downloaded is not None and record.bytes_downloaded > 0
    await eventually(lambda: router.holding == [])  # the slot let go of its mount
    return done[0], streams


def _settings(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str, **live: Any
) -> Settings:
    settings = live_settings(tmp_path, mqtt_url, database_url, station_id, mqtt=False, **live)
    scheduler = settings.scheduler.model_copy(update={"dispatch_lead_s": LEAD_S})
    return settings.model_copy(update={"scheduler": scheduler})


async def test_http_and_mqtt_only_clusters_both_play_a_scheduled_live_slot(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str
) -> None:
    settings = _settings(tmp_path, mqtt_url, database_url, station_id)
    ids = [HTTP_ID, MQTT_ID]
    async with running(settings) as station:
        sessions = station.app[keys.SESSIONS]
        await register_clusters(sessions, [(cid, cid) for cid in ids])
        station.app[keys.GATEWAY].remember(ids)  # take their births (capabilities) at once
        fleet = SimulatedFleet(station.runtime.mqtt_url, station_id, ids, live={MQTT_ID: ["mqtt"]})
        async with fleet:
            # the births are in the registry: M1 announced MQTT only
            await eventually(lambda: _is_mqtt_only(sessions, {MQTT_ID}))
            hub = hub_of(station)
            mount = await hub.start(STUDIO, TONE)  # the studio mixer (operator's mount)
            (sink,) = [s for s in mount.sinks if isinstance(s, MqttSink)]
            await asyncio.sleep(1.0)
            assert sink.sent == 0 and not hub.mqtt_wanted(STUDIO)  # idle: nobody on MQTT

            _, streams = await _air_slot(station, settings, ids, SLOT_S)
            http, mqtt = streams[HTTP_ID], streams[MQTT_ID]
            assert http.transport == "http"
            assert unsigned(http.url) == unsigned(hub.url_for(STUDIO, HTTP_ID))
            assert http.topic is None
            assert mqtt.transport == "mqtt" and mqtt.url is None
            assert mqtt.topic == f"{Topics(station_id).prefix}/live/{STUDIO}"
            assert sink.sent > 0  # published while the slot held the mount
            played = fleet.records()
            (over_mqtt,) = [r for r in played[MQTT_ID] if r.session_id == mqtt.session_id]
            assert over_mqtt.outcome == "finished" and over_mqtt.bytes_downloaded > 0
            (over_http,) = [r for r in played[HTTP_ID] if r.session_id == http.session_id]
            assert over_http.outcome == "finished" and over_http.bytes_downloaded > 2_000
            # the slot let go: the operator's mount stays, its MQTT publishing stops
            assert STUDIO in hub.mounts and not hub.mqtt_wanted(STUDIO)
            await hub.stop(STUDIO)


async def _is_mqtt_only(sessions: Sessions, expected: set[str]) -> bool:
    return await mqtt_only_clusters(sessions) == expected


def _hub(receivers: frozenset[str]) -> LiveHub:
    def url_for(mount: str, cluster_id: str) -> str:
        return f"https://station/live/{mount}?c={cluster_id}"

    hub = LiveHub(FFMPEG, MountConfig(), url_for, "loaxa/v1/xa")

    async def mqtt_only() -> frozenset[str]:
        return receivers

    hub.mqtt_receivers = mqtt_only
    return hub


async def test_router_hands_out_edge_urls_signed_per_cluster_and_mqtt_topics() -> None:
    signer = UrlSigner(SECRET, 3600)
    hub = _hub(frozenset({"M1"}))
    router = HubRouter(lambda: hub)
    start = datetime.now(UTC) + timedelta(hours=1)  # nothing is started: the slot is far
    try:
        route = await router("live:studio", start, start + timedelta(seconds=30))
        assert route is not None
        # no edge configured: the station's own URL
        assert route.url_for("C1") == "https://station/live/studio?c=C1"
        hub.edge_url_for = lambda mount, cid: edge_url("https://edge:8000", signer, mount, cid)
        url = route.url_for("C1")
        assert url.startswith("https://edge:8000/studio?c=C1&e=")
        assert url != route.url_for("C2")  # per cluster
        query = dict(p.split("=", 1) for p in url.split("?", 1)[1].split("&"))
        assert signer.check("C1", signed_name("studio"), query["e"], query["s"]) is None
        assert signer.check("C2", signed_name("studio"), query["e"], query["s"]) is not None
        relay = await router("https://vov.example/vov1.mp3", start, start + timedelta(seconds=9))
        assert relay is not None and "/relay-" in relay.url_for("C1")
        assert relay.url_for("C1").startswith("https://edge:8000/relay-")
        # MQTT-only receivers get the topic (and the mount is then published on MQTT)
        assert route.topic_for("C1") is None
        assert route.topic_for("M1") == "loaxa/v1/xa/live/studio"
        assert router._windows["studio"].mqtt
    finally:
        await router.close()
    assert hub.mounts == {}


async def test_mp3_mount_hands_mqtt_only_receivers_no_topic() -> None:
    hub = _hub(frozenset({"M1"}))
    hub.config = MountConfig(codec="mp3", bitrate="48k")
    router = HubRouter(lambda: hub)
    start = datetime.now(UTC) + timedelta(hours=1)
    try:
        route = await router("live:studio", start, start + timedelta(seconds=30))
        assert route is not None and route.codec == "mp3"
        assert route.topic_for("M1") is None  # MQTT carries Opus pages only
    finally:
        await router.close()


async def test_icecast_edge_auth_checks_the_cluster_signature(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str
) -> None:
    settings = live_settings(
        tmp_path,
        mqtt_url,
        database_url,
        station_id,
        mqtt=False,
        icecast_push_url="icecast://source:pw@127.0.0.1:9/",
        icecast_edge_url="https://edge.example:8000",
    )
    async with running(settings) as station:
        hub = hub_of(station)
        url = hub.cluster_url(STUDIO, "C1")
        assert url.startswith("https://edge.example:8000/studio?c=C1&")
        asked = url.removeprefix("https://edge.example:8000")
        auth = f"{station.base_url}/live/icecast-auth"
        async with aiohttp.ClientSession() as http:

            async def answer(mount: str, action: str = "listener_add") -> str | None:
                form = {"action": action, "mount": mount, "client": "1", "ip": "10.0.0.9"}
                async with http.post(auth, data=form) as response:
                    assert response.status == 200
                    return response.headers.get("icecast-auth-user")

            assert await answer(asked) == "1"
            assert await answer(asked.replace("c=C1", "c=C2")) is None  # another cluster's
            assert await answer(asked.replace("/studio", "/other")) is None  # another mount's
            assert await answer("/studio") is None  # unsigned
            assert await answer(asked, "listener_remove") is None  # nothing to decide


@asynccontextmanager
async def auth_forwarder() -> AsyncIterator[tuple[int, list[str]]]:
    """A stand-in address for Icecast's ``listener_add`` (Icecast's config is written before
    the station has a port): forwards to ``target[0]`` once the station is up."""
    target: list[str] = []

    async def forward(request: web.Request) -> web.Response:
        form = await request.post()
        async with aiohttp.ClientSession() as http, http.post(target[0], data=dict(form)) as got:
            headers = {k: v for k, v in got.headers.items() if k.lower().startswith("icecast-")}
            return web.Response(text=await got.text(), headers=headers)

    app = web.Application()
    app.router.add_post("/auth", forward)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.Server)
    try:
        yield int(server.sockets[0].getsockname()[1]), target
    finally:
        await runner.cleanup()


@pytest.mark.skipif(shutil.which("icecast2") is None, reason="needs Debian's icecast2 binary")
async def test_clusters_of_a_scheduled_slot_hear_it_from_the_icecast_edge(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str
) -> None:
    """The edge is a real icecast2 fed by the station's push, with URL listener authentication
    asking the station: clusters get edge URLs signed for them, the edge lets them in, refuses
    an unsigned URL, and the clusters play the slot from it (none of them from the station)."""
    ids = ["E1", "E2"]
    async with auth_forwarder() as (auth_port, target):
        mounts = (
            f'<mount><mount-name>/{STUDIO}</mount-name><authentication type="url">'
            f'<option name="listener_add" value="http://127.0.0.1:{auth_port}/auth"/>'
            f'<option name="auth_header" value="icecast-auth-user: 1"/>'
            f"</authentication></mount>"
        )
        async with icecast_server(tmp_path, mounts) as port:
            edge = f"http://127.0.0.1:{port}"
            settings = _settings(
                tmp_path, mqtt_url, database_url, station_id,
                icecast_push_url=f"icecast://source:{ICECAST_PASSWORD}@127.0.0.1:{port}",
                icecast_edge_url=edge,
            )  # fmt: skip
            async with running(settings) as station:
                target.append(f"{station.base_url}/live/icecast-auth")
                sessions = station.app[keys.SESSIONS]
                await register_clusters(sessions, [(cid, cid) for cid in ids])
                station.app[keys.GATEWAY].remember(ids)
                hub = hub_of(station)
                mount = await hub.start(STUDIO, TONE)  # pushed to the edge from now on

                async def served() -> bool:
                    status, data = await listen(hub.cluster_url(STUDIO, "probe"), 3, 4_000)
                    return status == 200 and len(data) >= 4_000

                await eventually(served, timeout=20)
                status, _ = await listen(f"{edge}/{STUDIO}", 3)
                assert status in (401, 403)  # unsigned: the station said no
                forged = hub.cluster_url(STUDIO, "E1").replace("c=E1", "c=E2")
                status, _ = await listen(forged, 3)
                assert status in (401, 403)  # E1's signature is not E2's
                async with SimulatedFleet(station.runtime.mqtt_url, station_id, ids) as fleet:
                    _, streams = await _air_slot(station, settings, ids, 4)
                    for cid, command in streams.items():
                        assert command.transport == "http" and command.url is not None
                        assert command.url == hub.cluster_url(STUDIO, cid)
                        assert command.url.startswith(f"{edge}/{STUDIO}?c={cid}&")
                    for cid, played in fleet.records().items():
                        (mine,) = [r for r in played if r.session_id == streams[cid].session_id]
                        assert mine.outcome == "finished" and mine.bytes_downloaded > 2_000
                # the station served none of them itself: the edge did
                assert not set(ids) & set(mount.fanout.counters.bytes_sent)
                await hub.stop(STUDIO)


def test_receivers_may_subscribe_to_live_topics_only() -> None:
    prefix = Topics("xa").prefix
    policy = TopicPolicy("xa", "~xa", "x")
    assert policy.may_subscribe("A01", f"{prefix}/live/studio")
    assert policy.may_subscribe(None, f"{prefix}/live/relay-0123abcd")
    assert not policy.may_subscribe("A01", f"{prefix}/live/+")
    assert not policy.may_subscribe("A01", f"{prefix}/live/#")
    assert not policy.may_subscribe("A01", f"{prefix}/live/studio/x")
    assert not policy.may_publish("A01", f"{prefix}/live/studio")  # only the station publishes
    assert f"pattern read {prefix}/live/+" in acl_text("xa", "~xa").splitlines()
