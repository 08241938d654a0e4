"""Fuzz: thousands of random and mutated payloads on device topics against the running station.

A seeded generator (reproducible: ``LOAXA_FUZZ_SEED``, count ``LOAXA_FUZZ_COUNT``) mixes random
bytes, broken JSON, valid messages with mutated fields, wrong cluster ids, oversized payloads and
deep nesting. The station must keep serving ``/healthz``, count every bad message in its drop
counters (the gateway's, exposed by ``/metrics`` and ``/api/v1/stats``), and still process a
valid message afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devices.protocol import (
    DEVICE_TO_STATION,
    ClusterChannel,
    ProtocolError,
    Topics,
    decode_device_message,
)
from station import _keys as keys
from station._services import register_clusters
from station.app import start_station
from station.demo import demo_settings

SEED = int(os.environ.get("LOAXA_FUZZ_SEED", "20261126"))
COUNT = int(os.environ.get("LOAXA_FUZZ_COUNT", "3000"))
CLUSTER = "F1"
NOW = datetime.now(UTC)


def _valid(channel: ClusterChannel) -> dict[str, Any]:
    ts = NOW.isoformat()
    base: dict[str, Any] = {"v": 1, "cluster_id": CLUSTER, "ts": ts}
    if channel == "status":
        return {**base, "state": "online", "firmware": "fz-1", "capabilities": {"codecs": ["opus"]}}
    if channel == "heartbeat":
        return {**base, "state": "idle", "volume": 70, "uptime_s": 5, "faults": []}
    if channel == "ack":
        return {**base, "cmd_id": "nope.1", "ok": False, "code": "busy"}
    return {**base, "type": "fault_raised", "fault": "amplifier"}


_ODD_VALUES: list[Any] = [
    None, True, -1, 2**70, 1.5e308, "", "x" * 300, [], {}, [1, [2, [3]]], "2026-13-45T99:00",
    "Đài truyền thanh", "\u0000", {"$ref": "#"}, NOW.replace(tzinfo=None).isoformat(),
]  # fmt: skip


def _mutate(rng: random.Random, message: dict[str, Any]) -> dict[str, Any]:
    out = dict(message)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(5)
        key = rng.choice(sorted(out)) if out else "v"
        if op == 0:
            out.pop(key, None)
        elif op == 1:
            out[key] = rng.choice(_ODD_VALUES)
        elif op == 2:
            out["cluster_id"] = rng.choice(["F2", "../F1", "F1/x", "", "+", "#"])
        elif op == 3:
            out[f"extra_{rng.randrange(99)}"] = rng.choice(_ODD_VALUES)  # ignored: still valid
        else:
            out["v"] = rng.choice([0, 2, "1", None])
    return out


def _payload(rng: random.Random, channel: ClusterChannel) -> bytes:
    kind = rng.randrange(8)
    if kind == 0:
        return rng.randbytes(rng.randrange(1, 300))
    if kind == 1:
        text = json.dumps(_valid(channel)).encode()
        return text[: rng.randrange(1, len(text))]  # truncated JSON
    if kind == 2:
        return json.dumps(rng.choice([[], 1, "s", None, [_valid(channel)]])).encode()
    if kind == 3:
        return b"[" * rng.randrange(100, 5000)  # deep nesting
    if kind == 4:
        return json.dumps({**_valid(channel), "pad": "x" * 70_000}).encode()  # too large
    return json.dumps(_mutate(rng, _valid(channel))).encode()


def _counted_as_bad(channel: ClusterChannel, payload: bytes) -> bool:
    """What the station must drop: anything our own strict decoder refuses or that lies."""
    try:
        return decode_device_message(channel, payload).cluster_id != CLUSTER
    except ProtocolError:
        return True


class _Publisher:
    """A plain paho client on its own thread, as a misbehaving device would be."""

    def __init__(self, host: str, port: int) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        self.client.max_inflight_messages_set(200)
        self.client.max_queued_messages_set(0)
        self._host, self._port = host, port

    async def __aenter__(self) -> _Publisher:
        await asyncio.to_thread(self.client.connect, self._host, self._port)
        self.client.loop_start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.client.disconnect()
        await asyncio.to_thread(self.client.loop_stop)

    async def publish_all(self, messages: list[tuple[str, bytes]]) -> None:
        infos = [self.client.publish(topic, payload, qos=1) for topic, payload in messages]

        def wait() -> None:
            for info in infos:
                info.wait_for_publish(30)

        await asyncio.to_thread(wait)


async def _until(check: Callable[[], bool], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not check():  # noqa: ASYNC110 - counters, not events
            await asyncio.sleep(0.05)


@pytest.mark.timeout(300)  # 3,000 payloads through PostgreSQL in asyncio debug mode
async def test_station_survives_fuzzed_device_topics(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str
) -> None:
    settings = demo_settings(
        tmp_path, mqtt_url=mqtt_url, database_url=database_url, station_id=station_id
    )
    station = await start_station(settings)
    try:
        app = station.app
        await register_clusters(app[keys.SESSIONS], [(CLUSTER, "fuzz")])
        gateway, link = app[keys.GATEWAY], app[keys.LINK]
        gateway.remember([CLUSTER])
        topics = Topics(station_id)
        rng = random.Random(SEED)
        messages: list[tuple[str, bytes]] = []
        bad = 0
        for _ in range(COUNT):
            channel = rng.choice(DEVICE_TO_STATION)
            payload = _payload(rng, channel)
            messages.append((topics.cluster(CLUSTER, channel), payload))
            bad += _counted_as_bad(channel, payload)
        assert COUNT // 2 < bad < COUNT  # the mix has both kinds

        def handled() -> int:
            return (
                sum(gateway.received.values())
                + sum(gateway.dropped.values())
                + sum(link.dropped.values())
            )

        before = handled()
        url = station.runtime.mqtt_url.removeprefix("mqtt://").rsplit("@", 1)[-1]
        host, port = url.split(":")
        async with _Publisher(host, int(port)) as device, aiohttp.ClientSession() as http:
            for start in range(0, COUNT, 500):  # in bursts, checking health between them
                await device.publish_all(messages[start : start + 500])
                async with http.get(f"{station.base_url}/healthz") as response:
                    assert response.status == 200
                # Pace the bursts: Mosquitto queues at most 1,000 messages for a slow
                # subscriber and drops the rest silently (max_queued_messages).
                sent = min(start + 500, COUNT)
                await _until(lambda sent=sent: handled() - before >= sent, timeout=120)
            await _until(lambda: handled() - before >= COUNT, timeout=240)

            assert link.dropped.get("queue_full", 0) == 0
            assert gateway.dropped.get("handler_error", 0) == 0
            counted = sum(n for r, n in gateway.dropped.items() if r != "handler_error")
            assert counted == bad
            assert sum(gateway.received.values()) == COUNT - bad
            async with http.get(f"{station.base_url}/metrics") as response:
                text = await response.text()
            exposed = sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("loaxa_mqtt_dropped_total{")
                and 'source="gateway"' in line
                and 'reason="handler_error"' not in line
            )
            assert exposed == bad

            heartbeats = gateway.received["heartbeat"]
            later = dict(_valid("heartbeat"), ts=(NOW + timedelta(seconds=1)).isoformat())
            await device.publish_all(
                [(topics.cluster(CLUSTER, "heartbeat"), json.dumps(later).encode())]
            )
            await _until(lambda: gateway.received["heartbeat"] == heartbeats + 1, timeout=10)
            async with http.get(f"{station.base_url}/healthz") as response:
                assert (await response.json())["mqtt_connected"] is True
    finally:
        await station.stop()
