"""Faults around a broadcast: a link cut 10 s before start, a clock 3 s off, a corrupt download.

Each asserts what the user would see: played on time (skew measured on the true clock) or
recorded why not, nothing played twice, proof of play complete after the link is back.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from sqlmodel import select

from simulator import SimulatedFleet
from station import _keys as keys
from station._services import register_clusters
from station.app import start_station
from station.db import MediaItem, PlayRecord, PlayRecordStatus
from station.demo import demo_settings
from tests.playout_support import news_once, until

IDS = ["CUT", "SKEW", "BAD", "OK"]
_DONE = {PlayRecordStatus.FINISHED, PlayRecordStatus.FAILED, PlayRecordStatus.INTERRUPTED}


async def test_link_cut_clock_skew_and_corrupt_download_around_a_broadcast(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str
) -> None:
    settings = demo_settings(
        tmp_path, mqtt_url=mqtt_url, database_url=database_url, station_id=station_id
    )
    station = await start_station(settings)
    try:
        app = station.app
        sessions = app[keys.SESSIONS]
        await register_clusters(sessions, [(cid, cid) for cid in IDS])
        app[keys.GATEWAY].remember(IDS)
        media_id, start = await news_once(app, tmp_path, 1.0, 13, {"all": True})
        await app[keys.DISPATCHER].reconcile()
        async with sessions() as db:
            media = await db.get(MediaItem, media_id)
        assert media is not None
        async with SimulatedFleet(station.runtime.mqtt_url, station_id, IDS) as fleet:
            cut, skew, bad = (fleet.clusters[c] for c in ("CUT", "SKEW", "BAD"))
            bad.cache.corrupt_next = 10  # every download of it fails its checksum
            skew.set_clock_offset(3000)

            async def cached() -> bool:
                return media.sha256 in cut.cache

            await until(cached, timeout=5)  # the schedule list made it fetch at once
            await asyncio.sleep(max(0.0, (start - datetime.now(UTC)).total_seconds() - 10))
            cut.drop_link(13)  # down from 10 s before start until 3 s after it

            async def proof_complete() -> bool:
                async with sessions() as db:
                    rows = (await db.exec(select(PlayRecord))).all()
                return len(rows) == len(IDS) and all(r.status in _DONE for r in rows)

            await until(proof_complete, timeout=40)
            plays = {cid: [r.session_id for r in recs] for cid, recs in fleet.records().items()}
        async with sessions() as db:
            records = {r.cluster_id: r for r in (await db.exec(select(PlayRecord))).all()}
        for cid in ("CUT", "SKEW", "OK"):
            assert records[cid].status == PlayRecordStatus.FINISHED, cid
        for cid in ("CUT", "OK"):
            skew_ms = records[cid].skew_ms
            assert skew_ms is not None and abs(skew_ms) < 250, (cid, skew_ms)
        # Played from its cache while cut off; the events arrived after the reconnect.
        assert records["CUT"].started_at is not None
        assert abs((records["CUT"].started_at - start).total_seconds()) < 0.25
        # Its clock runs 3 s ahead: it started "on time" by its own clock, which is 3 s early
        # in true time; the reported offset makes the measured skew say so.
        skewed = records["SKEW"]
        assert skewed.clock_offset_ms == 3000 and skewed.started_at is not None
        assert abs((skewed.started_at - start).total_seconds()) < 0.25
        assert skewed.skew_ms is not None and abs(skewed.skew_ms + 3000) < 250
        # Never played, and the record says why.
        assert records["BAD"].status == PlayRecordStatus.FAILED
        assert records["BAD"].error_code == "checksum_mismatch"
        # Nothing played twice (the list and the play command name the same session).
        for cid in ("CUT", "SKEW", "OK"):
            assert len(plays[cid]) == 1, (cid, plays[cid])
    finally:
        await station.stop()
