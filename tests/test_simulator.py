"""The simulator seen from the station's side: a real broker (amqtt, in process), a real HTTP
server, and a plain paho client playing the station."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from aiohttp import web
from amqtt.broker import Broker
from paho.mqtt.enums import CallbackAPIVersion

from devices.protocol import (
    Ack,
    DeviceMessage,
    Event,
    MediaRef,
    PlayCommand,
    Status,
    StopCommand,
    Topics,
    decode_device_message,
    encode,
)
from simulator import BrokerUrl, SimulatedFleet, cluster_ids, run_simulator

STATION = "xa-test"
SPEED = 20.0
AUDIO = bytes(range(256)) * 400  # 100 KB
BLOBS = {"a": AUDIO, "b": AUDIO[::-1]}  # same size, different content


# -- broker, media server, station ------------------------------------------------------------


@pytest.fixture
async def broker_port() -> AsyncIterator[int]:
    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": "127.0.0.1:0"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
    )
    await broker.start()
    yield broker._servers["default"].instance.sockets[0].getsockname()[1]
    await broker.shutdown()


@dataclass
class Media:
    base_url: str
    hits: dict[str, int] = field(default_factory=dict)

    def ref(self, name: str = "a", *, sha256: str = "", duration_ms: int = 2000) -> MediaRef:
        return MediaRef(
            media_id=name,
            url=f"{self.base_url}/media/{name}",
            sha256=sha256 or hashlib.sha256(BLOBS[name]).hexdigest(),
            size=len(AUDIO),
            duration_ms=duration_ms,
        )


@pytest.fixture
async def media() -> AsyncIterator[Media]:
    served = Media("")

    async def handler(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        served.hits[name] = served.hits.get(name, 0) + 1
        return web.Response(body=BLOBS[name], content_type="audio/ogg")

    app = web.Application()
    app.router.add_get("/media/{name}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    served.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield served
    await runner.cleanup()


@dataclass
class Msg:
    cluster_id: str
    channel: str
    body: DeviceMessage
    retained: bool
    at: float  # wall clock on arrival


class Station:
    """The station end of the wire: an independent paho client on its own network thread."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.topics = Topics(STATION)
        self.log: list[Msg] = []
        self._changed = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._subscribed = asyncio.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_: self._loop.call_soon_threadsafe(self._subscribed.set)

    async def __aenter__(self) -> Station:
        await asyncio.to_thread(self.client.connect, "127.0.0.1", self.port)
        self.client.loop_start()
        self.client.subscribe(f"{self.topics.prefix}/c/+/+", qos=1)
        await asyncio.wait_for(self._subscribed.wait(), 5)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.client.disconnect()
        await asyncio.to_thread(self.client.loop_stop)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        parsed = self.topics.parse_cluster(message.topic)
        if parsed is None or parsed[1] == "cmd":
            return
        body = decode_device_message(parsed[1], bytes(message.payload))
        msg = Msg(parsed[0], parsed[1], body, bool(message.retain), time.time())
        self._loop.call_soon_threadsafe(self._add, msg)

    def _add(self, msg: Msg) -> None:
        self.log.append(msg)
        self._changed.set()

    async def wait_for(self, pred: Callable[[Msg], bool], timeout: float = 5.0) -> Msg:
        async with asyncio.timeout(timeout):
            while True:
                for msg in self.log:
                    if pred(msg):
                        return msg
                self._changed.clear()
                await self._changed.wait()

    def send(self, cluster_id: str, command: PlayCommand | StopCommand) -> None:
        self.client.publish(self.topics.cluster(cluster_id, "cmd"), encode(command), qos=1)

    def events(self, cid: str, type_: str) -> list[Event]:
        return [
            m.body
            for m in self.log
            if m.cluster_id == cid and isinstance(m.body, Event) and m.body.type == type_
        ]

    def acks(self, cid: str, cmd_id: str) -> list[Ack]:
        return [
            m.body
            for m in self.log
            if m.cluster_id == cid and isinstance(m.body, Ack) and m.body.cmd_id == cmd_id
        ]


def status_is(cid: str, state: str, *, retained: bool | None = None) -> Callable[[Msg], bool]:
    def pred(msg: Msg) -> bool:
        return (
            msg.cluster_id == cid
            and isinstance(msg.body, Status)
            and msg.body.state == state
            and (retained is None or msg.retained == retained)
        )

    return pred


def event_is(cid: str, type_: str, session_id: str | None = None) -> Callable[[Msg], bool]:
    def pred(msg: Msg) -> bool:
        return (
            msg.cluster_id == cid
            and isinstance(msg.body, Event)
            and msg.body.type == type_
            and (session_id is None or msg.body.session_id == session_id)
        )

    return pred


def ack_for(cid: str, cmd_id: str) -> Callable[[Msg], bool]:
    return lambda m: m.cluster_id == cid and isinstance(m.body, Ack) and m.body.cmd_id == cmd_id


def play(
    cmd_id: str,
    items: list[MediaRef],
    *,
    session_id: str | None = None,
    start_in: float = 0.5,
    expires_in: float = 60.0,
) -> PlayCommand:
    now = datetime.now(UTC)
    return PlayCommand(
        id=cmd_id,
        issued_at=now,
        expires_at=now + timedelta(seconds=expires_in),
        session_id=session_id or f"s-{cmd_id}",
        start_at=now + timedelta(seconds=start_in),
        items=items,
    )


@pytest.fixture
async def fleet(broker_port: int) -> AsyncIterator[SimulatedFleet]:
    url = f"mqtt://127.0.0.1:{broker_port}"
    async with SimulatedFleet(url, STATION, ["C1", "C2"], speed=SPEED, heartbeat_s=0.2) as sim:
        yield sim


@pytest.fixture
async def station(broker_port: int) -> AsyncIterator[Station]:
    async with Station(broker_port) as st:
        yield st


# -- tests ------------------------------------------------------------------------------------


def test_broker_url_forms() -> None:
    url = BrokerUrl.parse("mqtt://sim%40x:p%3Aw@broker.lan:1884")
    assert (url.host, url.port, url.tls, url.username, url.password) == (
        "broker.lan", 1884, False, "sim@x", "p:w",
    )
    assert "p:w" not in repr(url) and "p:w" not in url.masked()
    tls = BrokerUrl.parse("mqtts://broker.lan", ca_file="/etc/ca.pem")
    assert (tls.port, tls.tls, tls.ca_file) == (8883, True, "/etc/ca.pem")
    with pytest.raises(ValueError):
        BrokerUrl.parse("http://broker.lan")
    assert cluster_ids(2, "X") == ["X0001", "X0002"]


async def test_birth_is_retained_and_deliberate_stop_leaves_retained_offline(
    broker_port: int,
) -> None:
    url = f"mqtt://127.0.0.1:{broker_port}"
    async with SimulatedFleet(url, STATION, ["C1", "C2"], heartbeat_s=0.1) as sim:
        assert sim.stats().online == 2
        async with Station(broker_port) as late_station:  # joins after the births
            for cid in ("C1", "C2"):
                msg = await late_station.wait_for(status_is(cid, "online", retained=True))
                assert isinstance(msg.body, Status)
                assert (msg.body.firmware, msg.body.model) == ("sim-1.0", "loaxa-sim")
                assert msg.body.capabilities is not None
                assert msg.body.capabilities.codecs == ["opus", "mp3"]
            await late_station.wait_for(lambda m: m.channel == "heartbeat" and m.cluster_id == "C2")
    async with Station(broker_port) as after:
        msg = await after.wait_for(status_is("C1", "offline", retained=True))
        assert isinstance(msg.body, Status) and msg.body.ts is not None  # ours, not the will


async def test_power_loss_fires_the_will(
    fleet: SimulatedFleet, station: Station, broker_port: int
) -> None:
    fleet.clusters["C1"].power_loss()
    await station.wait_for(status_is("C1", "offline"))
    async with Station(broker_port) as later:
        msg = await later.wait_for(status_is("C1", "offline", retained=True))
        assert isinstance(msg.body, Status) and msg.body.ts is None  # the will
        await later.wait_for(status_is("C2", "online", retained=True))
    assert not fleet.clusters["C1"].connected and fleet.stats().online == 1
    fleet.clusters["C1"].power_on()
    await station.wait_for(lambda m: status_is("C1", "online")(m) and m.at > time.time() - 5)
    await fleet.clusters["C1"].wait_online()


async def test_play_downloads_checks_and_plays_on_time(
    fleet: SimulatedFleet, station: Station, media: Media
) -> None:
    cmd = play("p1", [media.ref("a"), media.ref("b", duration_ms=4000)], start_in=0.6)
    station.send("C1", cmd)
    ack = (await station.wait_for(ack_for("C1", "p1"))).body
    assert isinstance(ack, Ack) and ack.ok
    started = await station.wait_for(event_is("C1", "playback_started", "s-p1"))
    assert isinstance(started.body, Event) and started.body.started_at is not None
    lag = (started.body.started_at - cmd.start_at).total_seconds()
    assert 0 <= lag < 0.05, lag
    assert started.at - cmd.start_at.timestamp() < 0.05
    assert started.body.bytes_downloaded == 2 * len(AUDIO)
    assert started.body.clock_offset_ms == 0
    finished = (await station.wait_for(event_is("C1", "playback_finished", "s-p1"))).body
    assert isinstance(finished, Event) and finished.finished_at is not None
    assert finished.played_ms == 6000
    played_s = (finished.finished_at - started.body.started_at).total_seconds()
    assert 6.0 / SPEED <= played_s < 6.0 / SPEED + 0.05
    assert media.hits == {"a": 1, "b": 1}
    record = fleet.records()["C1"][0]
    assert (record.session_id, record.outcome, record.bytes_downloaded) == (
        "s-p1", "finished", 2 * len(AUDIO),
    )
    stats = fleet.stats()
    assert (stats.plays_started, stats.plays_finished, stats.bytes_downloaded) == (
        1, 1, 2 * len(AUDIO),
    )


async def test_expired_command_is_nacked_and_never_played(
    fleet: SimulatedFleet, station: Station, media: Media
) -> None:
    station.send("C1", play("old", [media.ref()], expires_in=-1))
    ack = (await station.wait_for(ack_for("C1", "old"))).body
    assert isinstance(ack, Ack) and not ack.ok and ack.code == "expired"
    await asyncio.sleep(0.7)
    assert media.hits == {} and station.events("C1", "playback_started") == []
    assert fleet.clusters["C1"].counters.expired == 1


async def test_repeated_command_id_gets_the_same_ack_and_plays_once(
    fleet: SimulatedFleet, station: Station, media: Media
) -> None:
    cmd = play("dup", [media.ref()], start_in=0.3)
    station.send("C1", cmd)
    await station.wait_for(ack_for("C1", "dup"))
    station.send("C1", cmd)
    await station.wait_for(lambda m: len(station.acks("C1", "dup")) == 2)
    first, second = station.acks("C1", "dup")
    assert first == second  # re-sent verbatim, timestamp included
    await station.wait_for(event_is("C1", "playback_finished", "s-dup"))
    await asyncio.sleep(0.2)
    assert len(station.events("C1", "playback_started")) == 1
    assert media.hits == {"a": 1}


async def test_checksum_mismatch_is_reported_and_not_played(
    fleet: SimulatedFleet, station: Station, media: Media
) -> None:
    station.send("C2", play("bad", [media.ref(sha256="0" * 64)], start_in=0.3))
    failed = (await station.wait_for(event_is("C2", "download_failed", "s-bad"))).body
    assert isinstance(failed, Event) and failed.code == "checksum_mismatch"
    assert failed.bytes_downloaded == len(AUDIO)
    await asyncio.sleep(0.5)
    assert station.events("C2", "playback_started") == []
    assert fleet.clusters["C2"].records[0].outcome == "download_failed"


async def test_cached_item_is_not_downloaded_again(
    fleet: SimulatedFleet, station: Station, media: Media
) -> None:
    station.send("C1", play("one", [media.ref()], start_in=0.2))
    await station.wait_for(event_is("C1", "playback_finished", "s-one"))
    station.send("C1", play("two", [media.ref()], start_in=0.2))
    started = (await station.wait_for(event_is("C1", "playback_started", "s-two"))).body
    assert isinstance(started, Event) and started.bytes_downloaded == 0
    assert media.hits == {"a": 1}
    assert fleet.clusters["C1"].cache.downloads == 1


async def test_stop_interrupts_with_played_ms(
    fleet: SimulatedFleet, station: Station, media: Media
) -> None:
    station.send("C1", play("long", [media.ref(duration_ms=60_000)], start_in=0.2))
    await station.wait_for(event_is("C1", "playback_started", "s-long"))
    await asyncio.sleep(0.5)  # 10 s of programme at SPEED 20
    now = datetime.now(UTC)
    stop = StopCommand(
        id="halt", issued_at=now, expires_at=now + timedelta(seconds=30), session_id="s-long"
    )
    station.send("C1", stop)
    ack = (await station.wait_for(ack_for("C1", "halt"))).body
    assert isinstance(ack, Ack) and ack.ok
    ended = (await station.wait_for(event_is("C1", "playback_interrupted", "s-long"))).body
    assert isinstance(ended, Event) and ended.played_ms is not None
    assert 9_000 <= ended.played_ms <= 12_000, ended.played_ms
    assert fleet.clusters["C1"].playing is None
    assert station.events("C1", "playback_finished") == []


async def test_late_session_and_malformed_command(
    fleet: SimulatedFleet, station: Station, media: Media
) -> None:
    station.client.publish(station.topics.cluster("C2", "cmd"), b"{not json", qos=1)
    station.send("C2", play("late", [media.ref()], start_in=-5))
    ended = (await station.wait_for(event_is("C2", "playback_interrupted", "s-late"))).body
    assert isinstance(ended, Event) and ended.detail == "late" and ended.played_ms == 0
    assert fleet.clusters["C2"].counters.malformed == 1
    assert fleet.stats().malformed == 1


async def test_clock_offset_shifts_playback_and_is_reported(
    fleet: SimulatedFleet, station: Station, media: Media
) -> None:
    fleet.clusters["C2"].set_clock_offset(300)
    cmd = play("skew", [media.ref()], start_in=0.6)
    station.send("C2", cmd)
    started = await station.wait_for(event_is("C2", "playback_started", "s-skew"))
    assert isinstance(started.body, Event) and started.body.started_at is not None
    assert started.body.clock_offset_ms == 300
    assert 0 <= (started.body.started_at - cmd.start_at).total_seconds() < 0.05
    early = cmd.start_at.timestamp() - started.at  # true time: its fast clock starts it early
    assert 0.25 < early < 0.31, early


async def test_drop_link_fires_will_then_reconnects_and_resubscribes(
    fleet: SimulatedFleet, station: Station, media: Media
) -> None:
    cluster = fleet.clusters["C2"]
    assert cluster.connects == 1
    cluster.drop_link(0.3)
    await station.wait_for(status_is("C2", "offline"))
    dropped = time.time()
    await station.wait_for(lambda m: status_is("C2", "online")(m) and m.at > dropped)
    assert cluster.connects == 2 and cluster.online
    station.send("C2", play("after", [media.ref()], start_in=0.2))
    await station.wait_for(event_is("C2", "playback_finished", "s-after"))


async def test_run_simulator_prints_status_until_stopped(broker_port: int) -> None:
    lines: list[str] = []
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_simulator(
            f"mqtt://127.0.0.1:{broker_port}",
            STATION,
            3,
            speed=SPEED,
            status_every=0.05,
            stop_event=stop,
            print_fn=lines.append,
        )
    )
    async with asyncio.timeout(5):
        while not any("online 3/3" in line for line in lines):
            await asyncio.sleep(0.02)
    stop.set()
    stats = await task
    assert stats.clusters == 3 and stats.online == 0
    assert lines[-1] == "sim: stopping"
