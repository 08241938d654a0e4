"""The simulator seen from the station's side: a real broker (amqtt, in process), a real HTTP
server, and a plain paho client playing the station."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any, TypedDict

import paho.mqtt.client as mqtt
import pytest
from aiohttp import web
from amqtt.broker import Broker
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion

from devices.protocol import (
    Ack,
    Command,
    ConfigCommand,
    DeviceMessage,
    Event,
    Heartbeat,
    IdentifyCommand,
    MediaRef,
    PlayCommand,
    PowerCommand,
    PrefetchCommand,
    RebootCommand,
    ScheduleCommand,
    SessionSpec,
    Status,
    StopCommand,
    StreamCommand,
    TimeCommand,
    Topics,
    VolumeCommand,
    decode_device_message,
    encode,
)
from simulator import BrokerUrl, SimulatedFleet, cluster_ids, run_simulator

STATION = "xa-test"
SPEED = 20.0
AUDIO = bytes(range(256)) * 400  # 100 KB
BLOBS = {"a": AUDIO, "b": AUDIO[::-1]}  # same size, different content


# -- broker, media server, station ------------------------------------------------------------


async def start_broker(**listener: Any) -> tuple[Broker, int]:
    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": "127.0.0.1:0", **listener}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
    )
    await broker.start()
    return broker, broker._servers["default"].instance.sockets[0].getsockname()[1]


@pytest.fixture
async def broker_port() -> AsyncIterator[int]:
    broker, port = await start_broker()
    yield port
    await broker.shutdown()


def write_tls_files(where: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a certificate for 127.0.0.1 signed by it: (ca, cert, key) PEM files."""
    now = datetime.now(UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sim test CA")])
    leaf_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])

    def build(name: x509.Name, public: ec.EllipticCurvePublicKey, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(ca_name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            san = x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))])
            builder = builder.add_extension(san, critical=False)
        return builder.sign(ca_key, hashes.SHA256())

    pem = serialization.Encoding.PEM
    files = where / "ca.pem", where / "cert.pem", where / "key.pem"
    files[0].write_bytes(build(ca_name, ca_key.public_key(), True).public_bytes(pem))
    files[1].write_bytes(build(leaf_name, key.public_key(), False).public_bytes(pem))
    files[2].write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return files


@dataclass
class Media:
    base_url: str
    hits: dict[str, int] = field(default_factory=dict)
    streamed: int = 0  # bytes sent by /live

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

    async def live(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        try:
            for _ in range(200):
                await response.write(b"\x4f" * 600)
                served.streamed += 600
                await asyncio.sleep(0.05)
        except (ConnectionError, RuntimeError):
            pass  # the cluster hung up
        return response

    app.router.add_get("/media/{name}", handler)
    app.router.add_get("/live", live)
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

    def __init__(self, port: int, tls_ca: Path | None = None) -> None:
        self.port = port
        self.topics = Topics(STATION)
        self.log: list[Msg] = []
        self._changed = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._subscribed = asyncio.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        self.client.on_message = self._on_message
        if tls_ca is not None:
            self.client.tls_set(ca_certs=str(tls_ca))
        self.client.on_subscribe = self._on_subscribe

    async def __aenter__(self) -> Station:
        await asyncio.to_thread(self.client.connect, "127.0.0.1", self.port)
        self.client.loop_start()
        self.client.subscribe(f"{self.topics.prefix}/c/+/+", qos=1)
        await asyncio.wait_for(self._subscribed.wait(), 5)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.client.disconnect()
        await asyncio.to_thread(self.client.loop_stop)

    def _on_subscribe(self, *args: Any) -> None:
        self._loop.call_soon_threadsafe(self._subscribed.set)

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

    def send(self, cluster_id: str, command: Command) -> None:
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
    **extra: Any,
) -> PlayCommand:
    now = datetime.now(UTC)
    return PlayCommand(
        id=cmd_id,
        issued_at=now,
        expires_at=now + timedelta(seconds=expires_in),
        session_id=session_id or f"s-{cmd_id}",
        start_at=now + timedelta(seconds=start_in),
        items=items,
        **extra,
    )


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - state of objects without events to wait on
            await asyncio.sleep(0.01)


class Times(TypedDict):
    issued_at: datetime
    expires_at: datetime


def times(expires_in: float = 60.0) -> Times:
    now = datetime.now(UTC)
    return {"issued_at": now, "expires_at": now + timedelta(seconds=expires_in)}


def at(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


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
        "broker.lan",
        1884,
        False,
        "sim@x",
        "p:w",
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
        "s-p1",
        "finished",
        2 * len(AUDIO),
    )
    stats = fleet.stats()
    assert (stats.plays_started, stats.plays_finished, stats.bytes_downloaded) == (
        1,
        1,
        2 * len(AUDIO),
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
    assert second.duplicate and not first.duplicate
    assert second.model_copy(update={"duplicate": False}) == first  # same answer, same ts
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
    loop = asyncio.get_running_loop()
    heard_start = loop.time()
    await asyncio.sleep(0.5)  # 10 s of programme at SPEED 20
    station.send("C1", StopCommand(id="halt", session_id="s-long", **times()))
    ack = (await station.wait_for(ack_for("C1", "halt"))).body
    # The stop took effect before its ack came back: bounded by what played until then
    # (a loaded machine delays the ack, not the programme's clock).
    played_by_ack_ms = (loop.time() - heard_start) * SPEED * 1000
    assert isinstance(ack, Ack) and ack.ok
    ended = (await station.wait_for(event_is("C1", "playback_interrupted", "s-long"))).body
    assert isinstance(ended, Event) and ended.played_ms is not None
    # (+2 s of programme: 0.1 s for the started event to reach us)
    assert 9_000 <= ended.played_ms <= played_by_ack_ms + 2_000, (ended.played_ms, played_by_ack_ms)
    assert ended.interrupted_by == "stop" and ended.started_at is not None
    assert fleet.clusters["C1"].playing is None
    assert station.events("C1", "playback_finished") == []


async def test_late_session_and_malformed_command(
    fleet: SimulatedFleet, station: Station, media: Media
) -> None:
    station.client.publish(station.topics.cluster("C2", "cmd"), b"{not json", qos=1)
    station.send("C2", play("late", [media.ref()], start_in=-5))
    ended = (await station.wait_for(event_is("C2", "playback_interrupted", "s-late"))).body
    assert isinstance(ended, Event) and ended.detail == "late" and ended.played_ms == 0
    station.send("C2", play("bit-late", [media.ref()], start_in=-0.5))  # within its 2 s: plays
    started = (await station.wait_for(event_is("C2", "playback_started", "s-bit-late"))).body
    assert isinstance(started, Event) and started.late_ms is not None
    assert 500 <= started.late_ms < 700, started.late_ms
    assert fleet.clusters["C2"].counters.malformed == 1
    assert fleet.stats().malformed == 1


async def test_clock_offset_shifts_playback_and_is_reported(
    fleet: SimulatedFleet, station: Station, media: Media
) -> None:
    fleet.clusters["C2"].set_clock_offset(300)
    cmd = play("skew", [media.ref()], start_in=1.0)
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
    await until(lambda: any("online 3/3" in line for line in lines))
    stop.set()
    stats = await task
    assert stats.clusters == 3 and stats.online == 0
    assert lines[-2] == "sim: stopping" and lines[-1].startswith("sim: stopped; online 0/3")


async def test_prefetch_reports_done_and_a_session_plays_at_most_once(
    fleet: SimulatedFleet, station: Station, media: Media
) -> None:
    station.send("C1", PrefetchCommand(id="pre", items=[media.ref("b")], **times()))
    done = await station.wait_for(lambda m: isinstance(m.body, Event) and m.body.cmd_id == "pre")
    assert isinstance(done.body, Event) and done.body.type == "prefetch_done"
    assert done.body.media_ids == ["b"] and done.body.bytes_downloaded == len(AUDIO)
    cmd = play("off", [media.ref("b")], start_in=0.2, offset_ms=1500)
    station.send("C1", cmd)
    finished = (await station.wait_for(event_is("C1", "playback_finished", "s-off"))).body
    assert isinstance(finished, Event) and finished.played_ms == 500
    assert finished.bytes_downloaded == 0 and media.hits == {"b": 1}
    station.send("C1", cmd.model_copy(update={"id": "off-again"}))  # same session, new id
    ack = (await station.wait_for(ack_for("C1", "off-again"))).body
    assert isinstance(ack, Ack) and ack.ok and not ack.duplicate
    await asyncio.sleep(0.4)
    assert len(station.events("C1", "playback_started")) == 1


async def test_small_commands_faults_and_heartbeat_telemetry(
    fleet: SimulatedFleet, station: Station
) -> None:
    cluster = fleet.clusters["C1"]
    cluster.set_clock_offset(-1500)
    station.send("C1", TimeCommand(id="t", **times()))
    probe = (await station.wait_for(ack_for("C1", "t"))).body
    assert isinstance(probe, Ack) and probe.device_time is not None
    assert -1.6 < (probe.device_time - datetime.now(UTC)).total_seconds() < -1.4
    station.send("C1", VolumeCommand(id="vol", level=33, **times()))
    station.send("C1", ConfigCommand(id="cfg", heartbeat_s=5, **times()))
    station.send("C1", PowerCommand(id="amp", target="amplifier", on=True, **times()))
    station.send("C1", PowerCommand(id="fm", target="transmitter", on=True, **times()))
    for cmd_id in ("vol", "cfg", "amp"):
        ack = (await station.wait_for(ack_for("C1", cmd_id))).body
        assert isinstance(ack, Ack) and ack.ok, ack
    nack = (await station.wait_for(ack_for("C1", "fm"))).body
    assert isinstance(nack, Ack) and not nack.ok and nack.code == "no_hardware"
    assert cluster.power == {"amplifier": (True, [])}
    cluster.raise_fault("amplifier", "over current")
    raised = await station.wait_for(
        lambda m: isinstance(m.body, Event) and m.body.fault is not None
    )
    assert isinstance(raised.body, Event) and raised.body.type == "fault_raised"
    beat = (
        await station.wait_for(
            lambda m: (
                isinstance(m.body, Heartbeat) and m.body.interval_s == 5 and bool(m.body.faults)
            )
        )
    ).body
    assert isinstance(beat, Heartbeat) and beat.faults == ["amplifier"]
    assert (beat.volume, beat.clock_offset_ms, beat.firmware) == (33, -1500, "sim-1.0")
    assert beat.free_cache_bytes is not None and beat.upcoming_sessions == 0
    cluster.clear_fault("amplifier")
    await station.wait_for(lambda m: isinstance(m.body, Event) and m.body.type == "fault_cleared")


async def test_identify_tone_and_warm_up_delay(
    fleet: SimulatedFleet, station: Station, media: Media
) -> None:
    station.send("C2", IdentifyCommand(id="idf", seconds=2, **times()))
    tone = (await station.wait_for(event_is("C2", "playback_finished", "identify-idf"))).body
    assert isinstance(tone, Event) and tone.played_ms == 2000
    station.send("C2", PowerCommand(id="on", target="amplifier", on=True, warmup_s=0.6, **times()))
    cmd = play("warm", [media.ref(duration_ms=4000)], start_in=0.1)
    station.send("C2", cmd)
    started = (await station.wait_for(event_is("C2", "playback_started", "s-warm"))).body
    assert isinstance(started, Event) and started.late_ms is not None
    assert 300 <= started.late_ms < 700, started.late_ms
    done = (await station.wait_for(event_is("C2", "playback_finished", "s-warm"))).body
    assert isinstance(done, Event) and done.played_ms == 4000 - started.late_ms  # skipped in


async def test_a_full_cache_refuses_and_fails_downloads(broker_port: int, media: Media) -> None:
    url = f"mqtt://127.0.0.1:{broker_port}"
    async with (
        SimulatedFleet(url, STATION, ["F1"], speed=SPEED, cache_bytes=150_000) as sim,
        Station(broker_port) as station,
    ):
        station.send(
            "F1", PrefetchCommand(id="both", items=[media.ref("a"), media.ref("b")], **times())
        )
        nack = (await station.wait_for(ack_for("F1", "both"))).body
        assert isinstance(nack, Ack) and nack.code == "cache_full"
        station.send("F1", play("one", [media.ref("a")], start_in=0.2))
        await station.wait_for(event_is("F1", "playback_finished", "s-one"))
        station.send("F1", play("two", [media.ref("b")], start_in=0.2))
        failed = (await station.wait_for(event_is("F1", "download_failed", "s-two"))).body
        assert isinstance(failed, Event) and failed.code == "cache_full"
        assert media.hits == {"a": 1} and sim.clusters["F1"].cache.free_bytes == 150_000 - len(
            AUDIO
        )


async def test_schedule_replaces_the_earlier_list(
    fleet: SimulatedFleet, station: Station, media: Media
) -> None:
    def spec(session_id: str, start_in: float) -> SessionSpec:
        return SessionSpec(
            session_id=session_id, start_at=at(start_in), expires_at=at(60), items=[media.ref()]
        )

    station.send("C2", ScheduleCommand(id="l1", sessions=[spec("X", 3), spec("Y", 0.3)], **times()))
    await station.wait_for(event_is("C2", "playback_finished", "Y"))
    station.send("C2", ScheduleCommand(id="l2", sessions=[spec("Z", 0.2)], **times()))
    await station.wait_for(event_is("C2", "playback_finished", "Z"))
    outcomes = {r.session_id: r.outcome for r in fleet.clusters["C2"].records}
    assert outcomes == {"X": "withdrawn", "Y": "finished", "Z": "finished"}
    assert station.events("C2", "playback_started")[0].session_id == "Y"


async def test_http_stream_is_read_until_its_end_and_can_be_preempted(
    fleet: SimulatedFleet, station: Station, media: Media
) -> None:
    def stream(cmd_id: str, url: str = f"{media.base_url}/live", **extra: Any) -> StreamCommand:
        return StreamCommand(id=cmd_id, session_id=cmd_id, url=url, **extra, **times())

    station.send("C1", stream("short", until=at(0.5)))
    done = (await station.wait_for(event_is("C1", "playback_finished", "short"))).body
    assert isinstance(done, Event) and done.bytes_downloaded
    assert 0 < done.bytes_downloaded <= media.streamed
    assert done.played_ms is not None and 350 <= done.played_ms <= 600  # live: not sped up
    dead = "http://127.0.0.1:9/none"  # nothing listens: retried until `until`, then finished
    station.send("C1", stream("dead", dead, until=at(0.3)))
    quiet = (await station.wait_for(event_is("C1", "playback_finished", "dead"))).body
    assert isinstance(quiet, Event) and quiet.bytes_downloaded == 0 and quiet.detail
    station.send("C1", stream("dead2", dead))  # no `until`: nothing to wait for
    broken = (await station.wait_for(event_is("C1", "playback_interrupted", "dead2"))).body
    assert isinstance(broken, Event) and broken.code == "download_failed"
    station.send("C1", stream("relay"))
    await station.wait_for(event_is("C1", "playback_started", "relay"))
    assert fleet.clusters["C1"].playing == "relay"
    station.send("C1", play("news", [media.ref()], start_in=0.3, priority=80))
    ended = (await station.wait_for(event_is("C1", "playback_interrupted", "relay"))).body
    assert isinstance(ended, Event) and ended.interrupted_by == "s-news"
    await station.wait_for(event_is("C1", "playback_finished", "s-news"))
    station.send("C1", StreamCommand(id="pkt", session_id="pkt", transport="mqtt", **times()))
    station.send("C1", StreamCommand(id="nourl", session_id="nourl", **times()))
    for cmd_id, code in (("pkt", "bad_request"), ("nourl", "bad_request")):  # no topic, no url
        nack = (await station.wait_for(ack_for("C1", cmd_id))).body
        assert isinstance(nack, Ack) and not nack.ok and nack.code == code


async def test_reboot_comes_back_online(fleet: SimulatedFleet, station: Station) -> None:
    station.send("C2", RebootCommand(id="rb", **times()))
    ack = (await station.wait_for(ack_for("C2", "rb"))).body
    assert isinstance(ack, Ack) and ack.ok
    await station.wait_for(status_is("C2", "offline"))
    went = time.time()
    await station.wait_for(lambda m: status_is("C2", "online")(m) and m.at > went)
    assert fleet.clusters["C2"].connects == 2
    beat = (await station.wait_for(lambda m: isinstance(m.body, Heartbeat) and m.at > went)).body
    assert isinstance(beat, Heartbeat) and beat.bytes_downloaded == 0
    assert beat.uptime_s is not None and beat.uptime_s < 5


async def test_mqtts_with_a_ca_file(tmp_path: Path, media: Media) -> None:
    ca, cert, key = write_tls_files(tmp_path)
    broker, port = await start_broker(ssl=True, certfile=str(cert), keyfile=str(key))
    try:
        url = f"mqtts://127.0.0.1:{port}"
        with pytest.raises(TimeoutError):  # the system CAs do not know ours
            await SimulatedFleet(url, STATION, ["T1"]).start(online_within_s=1.0)
        async with SimulatedFleet(url, STATION, ["T1"], speed=SPEED, ca_file=str(ca)) as sim:
            cluster = sim.clusters["T1"]
            assert cluster.online
            cluster.drop_link(0.1)
            await until(lambda: cluster.connects == 2 and cluster.online)
            async with Station(port, tls_ca=ca) as station:
                station.send("T1", play("tls", [media.ref()], start_in=0.2))
                await station.wait_for(event_is("T1", "playback_finished", "s-tls"))
    finally:
        await broker.shutdown()
