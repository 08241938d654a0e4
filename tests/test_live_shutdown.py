"""Shutdown is bounded with live mounts up: a relay of an upstream that does not resolve (its
source task retrying with backoff), clusters listening to it, a browser microphone pushing, and
a mount publishing over MQTT to MQTT-only clusters while its packets go out slowly.

aiohttp's graceful shutdown waits (60 s) for requests in flight; ``GET /live/<mount>`` and the
microphone WebSocket last as long as their mount, so the hub stops every mount on shutdown
first. ``BOUND_S`` is a hang check, not a timing goal.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from devices import MqttLink
from simulator import SimulatedFleet
from station import _keys as keys
from station._emergency import EmergencyRequest, start_emergency
from station._services import register_clusters
from station.app import RunningStation, start_station
from station.db import Role
from station.live import LiveHub, MountConfig, MqttSink, mqtt_only_clusters
from station.live._routing import relay_mount
from station.live._tasks import cancel_and_wait
from tests.api_support import user_with_token
from tests.live_support import FFMPEG, TONE, eventually, hub_of, live_settings

UNRESOLVABLE = "http://nonexistent.invalid/stream"  # .invalid never resolves (RFC 6761)
BOUND_S = 15.0
IDS = ["S1", "S2"]


def _live_tasks() -> list[asyncio.Task[object]]:
    """Tasks of the live hub still running (mounts, sources, decoders, their stderr)."""
    prefixes = ("live-", "relay-", "push-", "enc-", "dev-", "fallback-")
    return [t for t in asyncio.all_tasks() if t.get_name().startswith(prefixes) and not t.done()]


class Stopper:
    """Stops a station once: within ``BOUND_S`` in the test, else (a failed test) in cleanup."""

    def __init__(self, station: RunningStation) -> None:
        self.station = station
        self.task: asyncio.Task[None] | None = None

    async def within_bound(self) -> None:
        self.task = asyncio.create_task(self.station.stop())
        done, _ = await asyncio.wait({self.task}, timeout=BOUND_S)
        assert done, f"the station did not stop within {BOUND_S:g} s"
        self.task.result()

    async def cleanup(self) -> None:
        if self.task is None:
            await self.station.stop()
        else:  # a hung stop ends after aiohttp's own shutdown timeout (60 s)
            await asyncio.gather(self.task, return_exceptions=True)


async def test_hub_with_an_unresolvable_relay_stops_and_leaves_nothing_running() -> None:
    hub = LiveHub(FFMPEG, MountConfig(dead_after_s=1.0), lambda m, c: m, "t", retry=(0.1, 0.2))
    mount = await hub.start("vov", f"relay:{UNRESOLVABLE}")
    listener = mount.fanout.join("c-1")
    await asyncio.sleep(0.5)  # a few failed lookups, the source task in its backoff
    await eventually(lambda: hub.status()[0]["state"] == "waiting")  # silence, no source yet
    assert hub.status()[0]["source_connected"]  # the relay task, retrying
    await asyncio.wait_for(hub.stop_all(), BOUND_S)
    assert hub.mounts == {} and hub.closed
    assert listener.closed  # its GET /live/vov ends
    assert _live_tasks() == []
    await hub.stop_all()  # idempotent: live_ctx's cleanup calls it again


async def test_station_with_an_unresolvable_relay_emergency_and_listeners_stops(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str
) -> None:
    settings = live_settings(tmp_path, mqtt_url, database_url, station_id, mqtt=False)
    station = await start_station(settings)
    stopper = Stopper(station)
    try:
        app = station.app
        sessions = app[keys.SESSIONS]
        await register_clusters(sessions, [(cid, cid) for cid in IDS])
        app[keys.GATEWAY].remember(IDS)
        hub = hub_of(station)
        async with SimulatedFleet(station.runtime.mqtt_url, station_id, IDS):
            request = EmergencyRequest({"all": True}, relay_url=UNRESOLVABLE, duration_s=60)
            await start_emergency(sessions, settings, request, "chairman")
            app[keys.DISPATCHER].poke()
            mount = relay_mount(UNRESOLVABLE)
            # every cluster streams the relay mount (silence: the upstream never answers)
            await eventually(
                lambda: mount in hub.mounts and hub.mounts[mount].fanout.listeners == len(IDS),
                timeout=20,
            )
            await stopper.within_bound()
        assert hub.mounts == {} and _live_tasks() == []
    finally:
        await stopper.cleanup()


async def test_station_with_a_browser_microphone_connected_stops(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str
) -> None:
    settings = live_settings(tmp_path, mqtt_url, database_url, station_id, mqtt=False)
    station = await start_station(settings)
    stopper = Stopper(station)
    try:
        hub = hub_of(station)
        await hub.start("mic", "browser")
        token = await user_with_token(station, "lan", Role.BROADCASTER)
        bearer = {"Authorization": f"Bearer {token}"}
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(f"{station.base_url}/live/mic/mic", headers=bearer) as ws,
        ):
            await eventually(lambda: hub.status()[0]["source_connected"])
            # connected and sending nothing: only the station can end this request
            await stopper.within_bound()
            message = await ws.receive(timeout=BOUND_S)
            assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert hub.mounts == {} and _live_tasks() == []
    finally:
        await stopper.cleanup()


HANG_S = 30.0  # a hang guard, not a timing goal
MQTT_ONLY = ["M1", "M2", "M3"]
HTTP_TOO = ["H1"]


class SlowBroker:
    """The station's MQTT link as a live sink sees it, with a broker slow to take packets (each
    publish takes ``delay_s``, so the sink is always in the middle of one) and the lost
    cancellation of Python 3.11 made certain: ``MqttLink.publish`` waits with ``wait_for``, which
    returns normally when the publish completes as the waiting task is cancelled (gh-86296).
    Here a publish cancelled in flight always completes and returns as if never cancelled."""

    def __init__(self, link: MqttLink, delay_s: float = 0.3) -> None:
        self.link = link
        self.delay_s = delay_s
        self.in_flight = False
        self.published = 0
        self.cancels_lost = 0

    @property
    def is_connected(self) -> bool:
        return self.link.is_connected

    async def publish(self, topic: str, payload: bytes, **kwargs: Any) -> None:
        self.in_flight = True
        publish = asyncio.ensure_future(self._slowly(topic, payload, kwargs))
        try:
            await asyncio.shield(publish)
        except asyncio.CancelledError:
            self.cancels_lost += 1
            await publish  # done anyway, and the cancellation is gone
        finally:
            self.in_flight = False

    async def _slowly(self, topic: str, payload: bytes, kwargs: dict[str, Any]) -> None:
        await asyncio.sleep(self.delay_s)
        await self.link.publish(topic, payload, **kwargs)
        self.published += 1


async def test_station_stops_while_its_mqtt_sink_publishes_to_mqtt_only_clusters(
    tmp_path: Path,
    mqtt_url: str,
    database_url: str,
    station_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A live emergency on the studio mount, heard by MQTT-only clusters (so its MQTT sink
    publishes) and an HTTP one; the station stops while a packet is in flight and the sink's
    cancellation is lost: it used to go back to its queue, which nothing fills once the mount
    stops, and the station's shutdown waited on it for ever."""
    settings = live_settings(tmp_path, mqtt_url, database_url, station_id, mqtt=False)
    station = await start_station(settings)
    stop: asyncio.Task[None] | None = None
    try:
        app = station.app
        sessions = app[keys.SESSIONS]
        ids = MQTT_ONLY + HTTP_TOO
        await register_clusters(sessions, [(cid, cid) for cid in ids])
        app[keys.GATEWAY].remember(ids)
        hub = hub_of(station)
        studio = settings.live.studio_mount
        mount = await hub.start(studio, TONE)  # the studio microphone
        (sink,) = [s for s in mount.sinks if isinstance(s, MqttSink)]
        broker = SlowBroker(sink.link)
        monkeypatch.setattr(sink, "link", broker)
        live = {cid: ["mqtt"] for cid in MQTT_ONLY}
        async with SimulatedFleet(station.runtime.mqtt_url, station_id, ids, live=live) as fleet:

            async def births_recorded() -> bool:
                return await mqtt_only_clusters(sessions) == set(MQTT_ONLY)

            await eventually(births_recorded, timeout=20)
            request = EmergencyRequest({"all": True}, live=True, duration_s=60)
            await start_emergency(sessions, settings, request, "chairman")
            app[keys.DISPATCHER].poke()
            # every cluster plays the studio; MQTT-only ones from the packets the sink publishes
            await eventually(
                lambda: all(c.playing is not None for c in fleet.clusters.values()), timeout=20
            )
            await eventually(lambda: hub.mqtt_wanted(studio) and broker.published >= 3, timeout=20)
            publisher = sink._task
            assert publisher is not None and broker.in_flight  # the sink is mid-publish
            stop = asyncio.create_task(station.stop())
            done, _ = await asyncio.wait({stop}, timeout=HANG_S)
            assert done, f"the station did not stop within {HANG_S:g} s"
            stop.result()
        assert broker.cancels_lost >= 1  # the shutdown cancelled the sink mid-publish
        assert publisher.done()
        assert hub.mounts == {} and hub.closed and _live_tasks() == []
    finally:
        if stop is None:
            await station.stop()
        elif not stop.done():  # hung (a failed test): cancelled, then the rest of the cleanup
            stop.cancel()
            await asyncio.gather(stop, return_exceptions=True)
            await asyncio.wait_for(station.stop(), HANG_S)


async def test_cancel_and_wait_cancels_again_until_tasks_end_and_gives_up_on_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A task that loses cancellations (as one waiting in 3.11's ``wait_for`` may) is cancelled
    again until it ends; one that never ends is left, logged and returned, not waited for."""
    lost = 0
    stop_ignoring = asyncio.Event()

    async def loses_two() -> None:
        nonlocal lost
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                lost += 1
                if lost > 2:
                    raise

    async def ignores() -> None:
        while not stop_ignoring.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await stop_ignoring.wait()

    losing = asyncio.create_task(loses_two(), name="loses-two")
    ignoring = asyncio.create_task(ignores(), name="ignores")
    await asyncio.sleep(0)  # both in their loops
    left = await cancel_and_wait([losing, ignoring], again_s=0.05, give_up_s=0.5)
    assert losing.cancelled() and lost == 3
    assert left == [ignoring] and not ignoring.done()
    assert "ignores" in caplog.text and "loses-two" not in caplog.text
    stop_ignoring.set()
    await ignoring
    assert await cancel_and_wait([losing, ignoring]) == []  # ended ones: nothing to do
