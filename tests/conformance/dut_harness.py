"""The station end of the conformance suite: a probe that speaks v1 and checks every message.

``Probe`` is a plain paho client on its own thread (independent of any device implementation's
loop). Every message the device publishes is validated against the shipped JSON Schema of its
channel (``devices/protocol/schemas``); violations are collected and fail the test.
``MediaServer`` serves the test audio (and a slow endless stream) over HTTP and counts requests.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import paho.mqtt.client as mqtt
from aiohttp import web
from paho.mqtt.enums import CallbackAPIVersion

import devices.protocol as protocol
from devices.protocol import Ack, Command, Event, MediaRef, Status, Topics, encode

SCHEMAS = Path(protocol.__file__).with_name("schemas")
AUDIO = bytes(range(256)) * 160  # 40 KB of "audio"
STREAM_CHUNK = b"\x4f" * 600  # one 48 kbps-ish chunk every 0.1 s


@dataclass
class DeviceUnderTest:
    """Where the device is and what the suite may do to it.

    ``cut_link(seconds)``: cut the device's network for that long (the broker must see an abrupt
    loss, so the will fires). ``set_clock_offset(ms)``: skew its clock. Either may be None for a
    vendor's device; the tests that need them then do not run. ``start`` is called once the
    probe listens, so the suite sees the birth live (a vendor's device is already running).
    """

    mqtt_url: str
    station_id: str
    cluster_id: str
    media_host: str = "127.0.0.1"
    cut_link: Callable[[float], Awaitable[None]] | None = None
    set_clock_offset: Callable[[int], None] | None = None
    start: Callable[[], Awaitable[None]] | None = None  # brings the device up (simulator)


@dataclass
class Seen:
    channel: str
    data: dict[str, Any]
    retained: bool
    at: datetime  # the probe's wall clock on arrival


def _validators() -> dict[str, jsonschema.Draft202012Validator]:
    return {
        channel: jsonschema.Draft202012Validator(
            json.loads((SCHEMAS / f"{channel}.json").read_text())
        )
        for channel in ("status", "heartbeat", "ack", "event")
    }


class Probe:
    """Plays the station for one cluster: sends commands, records and validates what comes back."""

    def __init__(self, dut: DeviceUnderTest) -> None:
        self.dut = dut
        self.topics = Topics(dut.station_id)
        self.seen: list[Seen] = []
        self.violations: list[str] = []
        self._validators = _validators()
        self._changed = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._subscribed = asyncio.Event()
        url = urlsplit(dut.mqtt_url)
        self._host, self._port = url.hostname or "127.0.0.1", url.port or 1883
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"probe-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv311,
        )  # fmt: skip
        if url.username:
            self.client.username_pw_set(url.username, url.password)
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe

    async def __aenter__(self) -> Probe:
        await asyncio.to_thread(self.client.connect, self._host, self._port)
        self.client.loop_start()
        self.client.subscribe(f"{self.topics.prefix}/c/{self.dut.cluster_id}/+", qos=1)
        await asyncio.wait_for(self._subscribed.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.client.disconnect()
        await asyncio.to_thread(self.client.loop_stop)

    def _on_subscribe(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._subscribed.set)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        parsed = self.topics.parse_cluster(message.topic)
        if parsed is None or parsed[1] == "cmd" or not message.payload:
            return
        channel = parsed[1]
        now = datetime.now(UTC)
        try:
            data = json.loads(message.payload)
            errors = [e.message for e in self._validators[channel].iter_errors(data)]
        except ValueError as exc:
            data, errors = {}, [f"not JSON: {exc}"]
        problems = [f"{channel}: {e} in {message.payload[:200]!r}" for e in errors]
        if isinstance(data, dict) and data.get("cluster_id") != parsed[0]:
            problems.append(f"{channel}: cluster_id differs from topic {message.topic}")
        seen = Seen(channel, data if isinstance(data, dict) else {}, bool(message.retain), now)
        self._loop.call_soon_threadsafe(self._add, seen, problems)

    def _add(self, seen: Seen, problems: list[str]) -> None:
        self.seen.append(seen)
        self.violations.extend(problems)
        self._changed.set()

    # -- sending -------------------------------------------------------------------------------

    def send(self, command: Command) -> None:
        topic = self.topics.cluster(self.dut.cluster_id, "cmd")
        self.client.publish(topic, encode(command), qos=1, retain=False)

    # -- waiting -------------------------------------------------------------------------------

    async def wait_for(
        self, pred: Callable[[Seen], bool], timeout: float = 5.0, *, after: int = 0
    ) -> Seen:
        """The first message (from index ``after`` on) that matches ``pred``."""
        async with asyncio.timeout(timeout):
            while True:
                for seen in self.seen[after:]:
                    if pred(seen):
                        return seen
                self._changed.clear()
                await self._changed.wait()

    async def ack(self, cmd_id: str, timeout: float = 5.0, *, after: int = 0) -> Ack:
        seen = await self.wait_for(
            lambda s: s.channel == "ack" and s.data.get("cmd_id") == cmd_id, timeout, after=after
        )
        return Ack.model_validate(seen.data)

    async def event(
        self, type_: str, session_id: str | None = None, timeout: float = 5.0, *, after: int = 0
    ) -> Event:
        seen = await self.event_seen(type_, session_id, timeout, after=after)
        return Event.model_validate(seen.data)

    async def event_seen(
        self, type_: str, session_id: str | None = None, timeout: float = 5.0, *, after: int = 0
    ) -> Seen:
        return await self.wait_for(
            lambda s: (
                s.channel == "event"
                and s.data.get("type") == type_
                and (session_id is None or s.data.get("session_id") == session_id)
            ),
            timeout,
            after=after,
        )

    async def status(self, state: str, timeout: float = 10.0, *, after: int = 0) -> Status:
        seen = await self.wait_for(
            lambda s: s.channel == "status" and s.data.get("state") == state, timeout, after=after
        )
        return Status.model_validate(seen.data)

    def events(self, session_id: str) -> list[str]:
        return [
            s.data["type"]
            for s in self.seen
            if s.channel == "event" and s.data.get("session_id") == session_id
        ]

    def mark(self) -> int:
        return len(self.seen)


@dataclass
class MediaServer:
    """Test audio over HTTP: ``ref()`` gives a MediaRef; ``hits`` counts GETs per name."""

    host: str
    base_url: str = ""
    hits: dict[str, int] = field(default_factory=dict)
    stream_bytes: int = 0
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/media/{name}", self._media)
        app.router.add_get("/live", self._live)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self.base_url = f"http://{self.host}:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _media(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.hits[name] = self.hits.get(name, 0) + 1
        return web.Response(body=_body(name), content_type="audio/ogg")

    async def _live(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "audio/ogg"})
        await response.prepare(request)
        try:
            for _ in range(600):  # at most a minute
                await response.write(STREAM_CHUNK)
                self.stream_bytes += len(STREAM_CHUNK)
                await asyncio.sleep(0.1)
        except (ConnectionError, RuntimeError):
            pass  # the device hung up: expected
        return response

    def ref(
        self, name: str | None = None, *, sha256: str = "", duration_ms: int = 1500
    ) -> MediaRef:
        """A media item; a fresh name (the default) is content the device cannot have cached."""
        name = name or uuid.uuid4().hex[:12]
        body = _body(name)
        return MediaRef(
            media_id=name,
            url=f"{self.base_url}/media/{name}",
            sha256=sha256 or hashlib.sha256(body).hexdigest(),
            size=len(body),
            duration_ms=duration_ms,
        )


def _body(name: str) -> bytes:
    """Distinct content per name, so sha256 (the cache key) differs too."""
    return name.encode()[:64].ljust(64, b"-") + AUDIO


class Clock:
    """Command ids and times for one test."""

    def __init__(self) -> None:
        self.run = uuid.uuid4().hex[:8]
        self.n = 0

    def cmd_id(self, what: str) -> str:
        self.n += 1
        return f"cf-{self.run}-{what}-{self.n}"

    def session(self, what: str = "s") -> str:
        self.n += 1
        return f"cf-{self.run}-{what}{self.n}"

    @staticmethod
    def now() -> datetime:
        return datetime.now(UTC)

    def expiry(self, seconds: float = 60) -> datetime:
        return self.now() + timedelta(seconds=seconds)


def wall() -> float:
    return time.time()
