"""Media delivery: signed per-cluster URLs, Range/ETag, bytes accounted, rendition choice, cache.

Runs the real station (app factory, embedded or CI broker, SQLite or PostgreSQL) and fetches
over real HTTP; audio is synthesised with ffmpeg at test time.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import stat
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from api_support import client, user_with_token
from sqlmodel import col, select

from scheduler import ItemRef, RenditionRef, SessionPlan
from simulator import SimulatedFleet
from station import _keys as keys
from station._delivery import announced_codecs, signed_path
from station._delivery_state import SECRET_FILE, DownloadMeter, UrlSigner, load_url_secret
from station._media_library import add_media, usage
from station._playout_parts import programme_items
from station._services import create_programme, register_clusters, schedule_once
from station.app import RunningStation, start_station
from station.db import (
    Cluster,
    MediaDownload,
    MediaItem,
    PlayRecord,
    PlayRecordStatus,
    Role,
)
from station.demo import demo_settings
from station.media import synthesize_programme

CLUSTERS = ["C01", "C02", "C03"]


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("delivery") / "speech.wav"
    asyncio.run(synthesize_programme(path, 4.0, seed=11))
    return path


@pytest.fixture
async def station(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str
) -> AsyncIterator[RunningStation]:
    settings = demo_settings(
        tmp_path, mqtt_url=mqtt_url, database_url=database_url, station_id=station_id
    )
    running = await start_station(settings)
    try:
        await register_clusters(running.app[keys.SESSIONS], [(c, c) for c in CLUSTERS])
        running.app[keys.GATEWAY].remember(CLUSTERS)
        yield running
    finally:
        await running.stop()


async def _add(station: RunningStation, source: Path) -> MediaItem:
    app = station.app
    item, _ = await add_media(
        app[keys.SESSIONS], app[keys.MEDIA_STORE], app[keys.MEDIA_WORKER],
        app[keys.SETTINGS], source, "Bản tin thử",
    )  # fmt: skip
    return item


def _ref(item: MediaItem) -> ItemRef:
    assert item.id is not None
    return ItemRef(item.id, item.sha256, item.size_bytes, item.duration_ms, item.codec)


async def _flushed_usage(station: RunningStation) -> dict[str, tuple[int, int]]:
    sessions = station.app[keys.SESSIONS]
    await station.app[keys.DELIVERY].meter.flush(sessions)
    return {r.cluster_id: (r.bytes, r.requests) for r in await usage(sessions)}


# -- HTTP: signature, Range, ETag, accounting ------------------------------------------------


async def test_signed_download_with_range_etag_and_accounting(
    station: RunningStation, speech: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    item = await _add(station, speech)
    url = station.app[keys.DISPATCHER].url_for("C01", _ref(item))
    body = station.app[keys.MEDIA_STORE].path_for(item.sha256).read_bytes()
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as r:
            assert r.status == 200
            assert await r.read() == body
            assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable"
            assert r.headers["Content-Type"] == "audio/ogg"
            assert r.headers["Accept-Ranges"] == "bytes"
            etag = r.headers["ETag"]
        async with http.get(url, headers={"Range": "bytes=0-99"}) as r:
            assert r.status == 206
            assert await r.read() == body[:100]
            assert r.headers["Content-Range"] == f"bytes 0-99/{len(body)}"
        async with http.get(url, headers={"Range": f"bytes={len(body) + 10}-"}) as r:
            assert r.status == 416
        async with http.get(url, headers={"If-None-Match": etag}) as r:
            assert r.status == 304
            assert await r.read() == b""
        async with http.head(url) as r:
            assert r.status == 200
    # Two bodies went out to C01 (the whole file and 100 bytes): 304, 416 and HEAD cost nothing.
    token = await user_with_token(station, "viewer1", Role.VIEWER)
    async with client(station, token) as api:
        status, stats, _ = await api.call("GET", "/stats")
    assert status == 200 and stats["media_bytes_served"] == {"C01": len(body) + 100}
    assert await _flushed_usage(station) == {"C01": (len(body) + 100, 2)}
    secret = (station.app[keys.SETTINGS].media.dir / SECRET_FILE).read_text().strip()
    assert secret not in caplog.text


async def test_bad_signatures_are_refused(station: RunningStation, speech: Path) -> None:
    item = await _add(station, speech)
    url = station.app[keys.DISPATCHER].url_for("C01", _ref(item))
    base, query = url.split("?")
    params = {k: v[0] for k, v in parse_qs(query).items()}
    expired = UrlSigner(b"x" * 32, 60, clock=lambda: 0.0)  # wrong secret and long expired
    wrong = {
        "other cluster": {**params, "c": "C02"},
        "tampered": {**params, "s": "0" * 64},
        "later expiry": {**params, "e": str(int(params["e"]) + 3600)},
        "no signature": {},
        "foreign secret": {
            k: v[0]
            for k, v in parse_qs(expired.query("C01", urlsplit(base).path.split("/")[-1])).items()
        },
    }
    async with aiohttp.ClientSession() as http:
        for case, query_params in wrong.items():
            async with http.get(base, params=query_params) as r:
                assert r.status == 403, case
                assert r.content_type == "application/problem+json", case
                problem = await r.json(content_type=None)
                assert problem["status"] == 403, case
        console = signed_path(station.app, "console", item.sha256, "opus")
        async with http.get(f"{station.base_url}{console}") as r:
            assert r.status == 200 and r.content_type == "audio/ogg"
            await r.read()
        with pytest.raises(ValueError):
            signed_path(station.app, "console", "../x", "opus")
        other = base.replace(item.sha256, "0" * 64)
        async with http.get(other, params=params) as r:  # valid-looking, wrong file
            assert r.status == 403
        async with http.get(f"{station.base_url}/media/..%2f..%2fetc%2fpasswd") as r:
            assert r.status == 404
    assert set(await _flushed_usage(station)) == {"console"}  # refused requests cost nothing
    assert sum(station.app[keys.DELIVERY].rejected.values()) == 6


def test_expired_url_is_refused() -> None:
    now = [1_000_000.0]
    signer = UrlSigner(b"s" * 32, 60, clock=lambda: now[0])
    params = {k: v[0] for k, v in parse_qs(signer.query("C01", "a.opus")).items()}
    assert signer.check("C01", "a.opus", params["e"], params["s"]) is None
    assert signer.check("C01", "b.opus", params["e"], params["s"]) == "bad signature"
    now[0] += 2 * 3600 + 61  # ttl, rounded up to the hour, is past
    assert signer.check("C01", "a.opus", params["e"], params["s"]) == "expired link"
    assert "s" * 32 not in repr(signer)


def test_url_secret_is_made_once_and_kept(tmp_path: Path) -> None:
    first = load_url_secret(None, tmp_path / "media")
    path = tmp_path / "media" / SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_url_secret(None, tmp_path / "media") == first
    assert len(first) == 64
    assert [p.name for p in (tmp_path / "media").iterdir()] == [SECRET_FILE]  # no temp left
    assert load_url_secret("configured-secret-123", tmp_path / "media") == b"configured-secret-123"
    path.write_text("short\n")
    with pytest.raises(ValueError, match="too short"):
        load_url_secret(None, tmp_path / "media")
    os.chmod(path, 0o600)


async def test_meter_keeps_counts_when_a_flush_fails(database_url: str) -> None:
    from station.db import create_engine_for, session_factory, upgrade_async

    meter = DownloadMeter()
    meter.add("C01", 100, datetime(2026, 11, 26, 23, 0, tzinfo=UTC))
    meter.add("C01", 50, datetime(2026, 11, 26, 23, 5, tzinfo=UTC))

    def broken() -> None:
        raise OSError("database gone")

    with pytest.raises(OSError):
        await meter.flush(broken)  # type: ignore[arg-type]
    await upgrade_async(database_url)
    engine = create_engine_for(database_url)
    try:
        sessions = session_factory(engine)
        assert await meter.flush(sessions) == 1
        meter.add("C01", 25, datetime(2026, 11, 26, 23, 9, tzinfo=UTC))
        assert await meter.flush(sessions) == 1
        assert await meter.flush(sessions) == 0
        async with sessions() as db:
            rows = (await db.exec(select(MediaDownload))).all()
        assert [(r.cluster_id, r.day.isoformat(), r.bytes, r.requests) for r in rows] == [
            ("C01", "2026-11-26", 175, 3)
        ]
    finally:
        await engine.dispose()


# -- renditions by announced codecs ----------------------------------------------------------


def test_item_ref_picks_first_codec_the_cluster_decodes() -> None:
    opus, mp3 = RenditionRef("opus", "a" * 64, 10), RenditionRef("mp3", "b" * 64, 20)
    item = ItemRef(1, "a" * 64, 10, 1000, "opus", (opus, mp3))
    assert item.for_codecs(["opus", "mp3"]).sha256 == "a" * 64
    picked = item.for_codecs(["mp3"])
    assert (picked.codec, picked.sha256, picked.size) == ("mp3", "b" * 64, 20)
    assert item.for_codecs(None) == item
    assert item.for_codecs(["aac"]) == item  # nothing it decodes: the primary one
    assert ItemRef(1, "a" * 64, 10, 1000).for_codecs(["mp3"]).codec == "opus"


async def test_each_cluster_gets_the_rendition_it_announced(
    station: RunningStation, speech: Path
) -> None:
    app = station.app
    item = await _add(station, speech)
    sessions = app[keys.SESSIONS]
    async with sessions() as db:
        for cluster_id, caps in (("C01", {"codecs": ["mp3"]}), ("C02", {"codecs": ["opus"]})):
            cluster = await db.get(Cluster, cluster_id)
            assert cluster is not None
            cluster.capabilities = caps
            db.add(cluster)
        await db.commit()
    codecs = await announced_codecs(sessions, CLUSTERS)
    assert codecs == {"C01": ["mp3"], "C02": ["opus"]}  # C03 never announced: primary
    assert item.id is not None
    programme = await create_programme(sessions, "Chương trình", [item.id])
    assert programme.id is not None
    async with sessions() as db:
        items = await programme_items(db, programme.id)
    assert [r.codec for r in items[0].renditions] == ["opus", "mp3"]
    now = datetime.now(UTC)
    plan = SessionPlan("s1", now, now + timedelta(minutes=1), CLUSTERS, items)
    commands = app[keys.DISPATCHER].play_commands(plan, codecs)
    picked = {cid: cmd.items[0] for cid, cmd in commands.items()}  # type: ignore[attr-defined]
    assert {cid: ref.codec for cid, ref in picked.items()} == {
        "C01": "mp3", "C02": "opus", "C03": "opus"
    }  # fmt: skip
    async with aiohttp.ClientSession() as http:
        for cid, ref in picked.items():
            async with http.get(ref.url) as r:
                data = await r.read()
            assert r.status == 200, cid
            assert len(data) == ref.size and hashlib.sha256(data).hexdigest() == ref.sha256
            assert r.headers["Content-Type"] == (
                "audio/mpeg" if ref.codec == "mp3" else "audio/ogg"
            )
    mp3 = items[0].renditions[1]
    assert (await _flushed_usage(station))["C01"] == (mp3.size, 1)


# -- prefetch cache: a held item is never fetched again --------------------------------------


async def _wait_finished(station: RunningStation, count: int, timeout_s: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        async with station.app[keys.SESSIONS]() as db:
            done = (
                await db.exec(
                    select(PlayRecord).where(PlayRecord.status == PlayRecordStatus.FINISHED)
                )
            ).all()
        if len(done) >= count:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"only {len(done)} of {count} plays finished")


async def _wait_online(station: RunningStation, ids: list[str]) -> None:
    for _ in range(150):
        async with station.app[keys.SESSIONS]() as db:
            rows = (await db.exec(select(Cluster).where(col(Cluster.id).in_(ids)))).all()
        if all(c.online for c in rows):
            return
        await asyncio.sleep(0.2)
    raise AssertionError("simulated clusters did not come online")


async def test_cached_item_is_downloaded_once_across_sessions(
    station: RunningStation, speech: Path
) -> None:
    app = station.app
    sessions = app[keys.SESSIONS]
    ids = CLUSTERS[:2]
    async with SimulatedFleet(
        station.runtime.mqtt_url, app[keys.SETTINGS].station.id, ids, speed=8.0
    ) as fleet:
        await _wait_online(station, ids)
        item = await _add(station, speech)
        assert item.id is not None
        programme = await create_programme(sessions, "Bản tin", [item.id])
        assert programme.id is not None
        lead = app[keys.SETTINGS].scheduler.dispatch_lead_s
        first = datetime.now(UTC) + timedelta(seconds=lead + 0.5)
        for start in (first, first + timedelta(seconds=1.5)):  # the item plays for 0.5 s
            await schedule_once(sessions, programme.id, start, {"clusters": ids})
        await app[keys.DISPATCHER].reconcile()
        await _wait_finished(station, 2 * len(ids), timeout_s=30)
        stats = fleet.stats()
    served = await _flushed_usage(station)
    assert served == {cid: (item.size_bytes, 1) for cid in ids}
    assert stats.bytes_downloaded == item.size_bytes * len(ids)


def test_url_secret_config_is_checked_and_never_shown() -> None:
    from station.config import ConfigError, load_config

    with pytest.raises(ConfigError) as info:
        load_config(None, {"LOAXA_HTTP__URL_SECRET": "tooshort-secret"})
    assert "at least 16 characters" in str(info.value) and "tooshort" not in str(info.value)
    settings = load_config(
        None, {"LOAXA_HTTP__URL_SECRET": "k" * 24, "LOAXA_HTTP__URL_TTL_S": "600"}
    )
    assert settings.http.url_secret is not None and settings.http.url_ttl_s == 600
    assert "k" * 24 not in repr(settings) and "k" * 24 not in str(settings.redacted())
    assert load_config(None, {"LOAXA_HTTP__URL_SECRET": ""}).http.url_secret is None
