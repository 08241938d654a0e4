"""GET /metrics after a short demo-like run: every counter with its exact value."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import select

from devices import InboundMessage
from simulator import SimulatedFleet
from station import _keys as keys
from station._metrics import StationMetrics
from station._services import register_clusters, schedule_once
from station.app import RunningStation, start_station
from station.db import PlayRecord, PlayRecordStatus, PlaySession
from station.demo import demo_settings
from station.upstream import enqueue, log_exchange
from tests.playout_support import audio_programme

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(station: RunningStation) -> Samples:
    url = station.base_url + "/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        assert response.content_type == "text/plain"
        text = await response.text()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


async def play_once(station: RunningStation, tmp_path: Path, ids: list[str]) -> None:
    app = station.app
    sessions = app[keys.SESSIONS]
    settings = app[keys.SETTINGS]
    programme_id = await audio_programme(app, tmp_path, 1.5, "p", "t")
    start_at = datetime.now(UTC) + timedelta(seconds=settings.scheduler.dispatch_lead_s + 1.5)
    await schedule_once(sessions, programme_id, start_at, {"all": True})
    await app[keys.DISPATCHER].reconcile()
    async with asyncio.timeout(30):
        while True:
            async with sessions() as db:
                records = (await db.exec(select(PlayRecord))).all()
            if sum(r.status == PlayRecordStatus.FINISHED for r in records) == len(ids):
                return
            await asyncio.sleep(0.1)


async def test_metrics_after_a_short_run(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str
) -> None:
    settings = demo_settings(
        tmp_path, mqtt_url=mqtt_url, database_url=database_url, station_id=station_id
    )
    ids = ["M1", "M2", "M3"]
    station = await start_station(settings)
    try:
        app = station.app
        sessions = app[keys.SESSIONS]
        await register_clusters(sessions, [(cid, cid) for cid in [*ids, "M4"]])
        app[keys.GATEWAY].remember([*ids, "M4"])
        async with SimulatedFleet(station.runtime.mqtt_url, station_id, ids, speed=4.0):
            await play_once(station, tmp_path, ids)
            # bad device input: not JSON, and JSON that fails the schema
            topic = app[keys.GATEWAY].topics.cluster("M1", "event")
            await app[keys.GATEWAY].handle(InboundMessage(topic, b"{nope", 1, False))
            await app[keys.GATEWAY].handle(
                InboundMessage(topic, b'{"v":1,"cluster_id":"M2","type":"x"}', 1, False)
            )
            # one late and one missed play, written as the playout store would have
            now = datetime.now(UTC)
            async with sessions() as db:
                old = now - timedelta(hours=1)
                session = PlaySession(id="old", programme_id=1, start_at=old, expires_at=old)
                db.add(session)
                await db.flush()
                db.add_all([
                    PlayRecord(session_id="old", cluster_id="M1", status=PlayRecordStatus.FINISHED,
                               scheduled_start=old, started_at=old, skew_ms=-900),
                    PlayRecord(session_id="old", cluster_id="M4", status=PlayRecordStatus.ACKED,
                               scheduled_start=old),
                ])  # fmt: skip
                await enqueue(db, "report", "report:2026H1", {"n": 1})
                log_exchange(db, "up", "report", "retry", key="report:2026H1", http_status=503)
                await db.commit()
            samples = await scrape(station)
    finally:
        await station.stop()

    assert value(samples, "loaxa_clusters", state="online") == 3
    assert value(samples, "loaxa_clusters", state="offline") == 1
    assert value(samples, "loaxa_commands_sent_total") >= 3
    assert value(samples, "loaxa_command_acks_total") >= 3
    assert value(samples, "loaxa_play_commands", result="acked") == 5
    assert value(samples, "loaxa_play_commands", result="failed") == 0
    assert value(samples, "loaxa_plays_total", result="on_time") == 3
    assert value(samples, "loaxa_plays_total", result="late") == 1
    assert value(samples, "loaxa_plays_total", result="missed") == 1
    assert value(samples, "loaxa_play_start_skew_seconds_count") == 4
    assert value(samples, "loaxa_play_start_skew_seconds_bucket", le="0.5") == 3
    assert value(samples, "loaxa_play_start_skew_seconds_bucket", le="1.0") == 4
    assert value(samples, "loaxa_play_start_skew_seconds_bucket", le="+Inf") == 4
    assert 0.9 <= value(samples, "loaxa_play_start_skew_seconds_sum") < 0.9 + 3 * 0.5
    assert value(samples, "loaxa_mqtt_dropped_total", source="gateway", reason="json") == 1
    assert value(samples, "loaxa_mqtt_dropped_total", source="gateway", reason="schema") == 1
    assert value(samples, "loaxa_mqtt_dropped_total", source="link", reason="queue_full") == 0
    assert value(samples, "loaxa_upstream_outbox", status="pending") == 1
    assert value(samples, "loaxa_upstream_exchanges_total",
                 direction="up", kind="report", status="retry") == 1  # fmt: skip
    assert value(samples, "loaxa_media_ingest_pending") == 0


def test_each_app_has_its_own_registry() -> None:
    first, second = StationMetrics(), StationMetrics()  # the default registry would refuse this
    assert first.registry is not second.registry
