"""Simulator faults: each kind on command, healing by itself, and seeded random draws."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import aiohttp
import paho.mqtt.client as mqtt
import pytest
from aiohttp import web
from paho.mqtt.enums import CallbackAPIVersion

from devices.protocol import MediaRef, PowerCommand, Topics, encode
from simulator import (
    FAULT_KINDS,
    FaultInjector,
    FaultKind,
    SimulatedFleet,
    parse_faults,
    run_simulator,
)
from simulator._media import DownloadError

BODY = bytes(range(256)) * 40  # 10 KB


@pytest.fixture
async def media_url() -> AsyncIterator[str]:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=BODY)

    app = web.Application()
    app.router.add_get("/m/{name}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/m"
    await runner.cleanup()


def _ref(base: str, name: str) -> MediaRef:
    sha = hashlib.sha256(BODY).hexdigest()
    return MediaRef(media_id=name, url=f"{base}/{name}", sha256=sha, size=len(BODY), duration_ms=1)


async def _until(check: object, timeout: float = 10.0) -> None:
    assert callable(check)
    async with asyncio.timeout(timeout):
        while not check():  # noqa: ASYNC110 - cluster state has no event to wait on
            await asyncio.sleep(0.02)


def test_fault_specs_parse_and_bad_ones_are_refused() -> None:
    assert parse_faults("link-drop:0.5, power-loss:0.01") == {
        "link-drop": 0.5,
        "power-loss": 0.01,
    }
    assert parse_faults("") == {}
    for bad in ("flood:1", "link-drop", "link-drop:x", "link-drop:99"):
        with pytest.raises(ValueError):
            parse_faults(bad)


class _Recorder(FaultInjector):
    def __init__(self, ids: list[str], seed: int) -> None:
        super().__init__(dict.fromkeys(ids), dict.fromkeys(FAULT_KINDS, 6.0), seed=seed)  # type: ignore[arg-type]
        self.drawn: list[tuple[str, str]] = []

    def inject(self, cluster_id: str, kind: FaultKind, seconds: float | None = None) -> None:
        self.drawn.append((cluster_id, kind))


def test_random_faults_are_reproducible_with_a_seed() -> None:
    ids = [f"C{n}" for n in range(50)]
    runs = [_Recorder(ids, seed) for seed in (7, 7, 8)]
    for injector in runs:
        for _ in range(20):
            injector.tick()
    assert runs[0].drawn == runs[1].drawn
    assert runs[0].drawn != runs[2].drawn
    # 50 clusters x 20 ticks x 10% per tick for each of 7 kinds: about 700
    assert 500 < len(runs[0].drawn) < 900
    assert {kind for _, kind in runs[0].drawn} == set(FAULT_KINDS)


async def test_each_fault_takes_effect_and_heals(
    mqtt_url: str, station_id: str, media_url: str
) -> None:
    async with SimulatedFleet(mqtt_url, station_id, ["F1", "F2", "F3"]) as fleet:
        c1, c2, c3 = (fleet.clusters[c] for c in ("F1", "F2", "F3"))
        faults = FaultInjector(fleet.clusters, seed=1)
        faults.inject("F1", "link-drop", seconds=0.5)
        faults.inject("F2", "power-loss", seconds=1.0)
        faults.inject("F3", "amplifier", seconds=0.5)
        faults.inject("F3", "clock-skew", seconds=0.5)
        assert not c1.connected and not c2.connected
        assert c3.faults == ["amplifier"] and c3.clock_offset_ms != 0
        await _until(lambda: c1.online and c2.online and not c3.faults)
        assert c3.clock_offset_ms == 0 and c1.connects == 2

        async with aiohttp.ClientSession() as http:
            faults.inject("F1", "corrupt-download")
            with pytest.raises(DownloadError) as corrupted:
                await c1.cache.ensure(http, _ref(media_url, "a"))
            assert corrupted.value.code == "checksum_mismatch"
            assert await c1.cache.ensure(http, _ref(media_url, "a")) == len(BODY)  # one-shot

            faults.inject("F2", "cache-full", seconds=0.3)
            with pytest.raises(DownloadError) as full:
                await c2.cache.ensure(http, _ref(media_url, "b"))
            assert full.value.code == "cache_full"
            await asyncio.sleep(0.4)
            assert await c2.cache.ensure(http, _ref(media_url, "b")) == len(BODY)

            faults.inject("F3", "slow-link", seconds=5)
            started = time.monotonic()
            await c3.cache.ensure(http, _ref(media_url, "c"))
            assert time.monotonic() - started > 0.8  # 10 KB at 8 kB/s
        faults.close()  # heals what is pending
        assert c3.cache.bandwidth_bps is None
        assert dict(faults.counts) == {kind: 1 for kind in FAULT_KINDS}


async def test_loaxa_sim_runs_random_faults_and_bridges(mqtt_url: str, station_id: str) -> None:
    lines: list[str] = []
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_simulator(
            mqtt_url, station_id, 4, faults="amplifier:30,clock-skew:30", seed=3, bridges=1,
            status_every=0.3, stop_event=stop, print_fn=lines.append,
        )
    )  # fmt: skip
    async with asyncio.timeout(20):
        while not any("faults amplifier" in line for line in lines):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    stop.set()
    stats = await task
    assert stats.clusters == 4 and lines[-1].startswith("sim: stopped")


async def test_a_bridge_announces_its_outputs_and_keeps_zone_codes(
    mqtt_url: str, station_id: str
) -> None:
    bridges = {"B1": ["B1.fm", "B1.wired"]}
    async with SimulatedFleet(mqtt_url, station_id, ["B1", "I1"], bridges=bridges) as fleet:
        bridge, ict = fleet.clusters["B1"], fleet.clusters["I1"]
        assert bridge.bridged == ["B1.fm", "B1.wired"] and "transmitter" in bridge.outputs
        assert ict.bridged == [] and ict.outputs == ["amplifier"]
        now = datetime.now(UTC)
        topics = Topics(station_id)
        power = PowerCommand(
            id="p1", issued_at=now, expires_at=now + timedelta(minutes=1), target="transmitter",
            on=True, warmup_s=0.2, zone_codes=["1", "4"],
        )  # fmt: skip
        url = urlsplit(mqtt_url)
        client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        await asyncio.to_thread(client.connect, url.hostname or "", url.port or 1883)
        client.loop_start()
        try:
            for cid in ("B1", "I1"):
                client.publish(topics.cluster(cid, "cmd"), encode(power), qos=1)
            await _until(lambda: "transmitter" in bridge.power)
        finally:
            client.disconnect()
            await asyncio.to_thread(client.loop_stop)
        assert bridge.power["transmitter"] == (True, ["1", "4"])
        assert "transmitter" not in ict.power  # nacked no_hardware
