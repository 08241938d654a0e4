"""Bulletins down from the simulated provincial server: pull and signed webhook, the three
classes, expiry, duplicates, audio through the media pipeline, replay protection."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from api_support import assert_problem, client, user_with_token
from sqlmodel import col, select

from simulator.provincial import ProvincialServer, sign_webhook
from station import _keys as keys
from station._services import StationError, register_clusters
from station.app import RunningStation, start_station
from station.config import Settings
from station.db import (
    BulletinStatus,
    MediaItem,
    OutboxMessage,
    Role,
    UpstreamBulletin,
    UpstreamExchange,
)
from station.media import synthesize_programme
from station.upstream import (
    TEXT_ONLY_NOTE,
    WAITING_NOTE,
    WEBHOOK_PATH,
    BulletinInbox,
    RecordingEmergencyTrigger,
    WebhookGuard,
)
from station.upstream._inbox import AUDIO_MAX_ATTEMPTS
from station.upstream._outbox import KEY_LIMIT, outbox_key
from station.upstream._queries import confirm_emergency, inbox
from station.upstream._webhook import SignatureError
from tests.upstream_support import provincial_server, upstream_settings

TOKEN = "bulletin-token"
SECRET = "shared-webhook-secret-123"


def settings_for(
    tmp_path: Path, database_url: str, mqtt_url: str, station_id: str, base_url: str, **extra: Any
) -> Settings:
    return upstream_settings(
        tmp_path, database_url, mqtt_url, station_id, base_url, TOKEN,
        **{"pull_interval_s": 3600, "webhook_secret": SECRET, **extra},
    )  # fmt: skip


@pytest.fixture
async def server() -> AsyncIterator[ProvincialServer]:
    async with provincial_server(TOKEN) as srv:
        yield srv


@pytest.fixture
async def station(
    tmp_path: Path, database_url: str, mqtt_url: str, station_id: str, server: ProvincialServer
) -> AsyncIterator[RunningStation]:
    running = await start_station(
        settings_for(tmp_path, database_url, mqtt_url, station_id, server.base_url)
    )
    try:
        yield running
    finally:
        await running.stop()


def bulletin(ident: str, klass: str, **fields: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "id": ident,
        "class": klass,
        "title": f"Bản tin {ident}",
        "text": "Thông báo của Ủy ban nhân dân tỉnh.",
        "valid_from": (now - timedelta(hours=1)).isoformat(),
        "valid_to": (now + timedelta(days=1)).isoformat(),
        "villages": ["thon-1"],
        "issuer": "Sở Văn hóa",
        **fields,
    }


async def rows(station: RunningStation) -> dict[str, UpstreamBulletin]:
    async with station.app[keys.SESSIONS]() as db:
        found = (await db.exec(select(UpstreamBulletin))).all()
    return {b.upstream_id: b for b in found}


async def exchanges(station: RunningStation, direction: str = "down") -> list[tuple[str, str]]:
    async with station.app[keys.SESSIONS]() as db:
        found = await db.exec(
            select(UpstreamExchange)
            .where(UpstreamExchange.direction == direction)
            .order_by(col(UpstreamExchange.id))
        )
        return [(e.key, e.status) for e in found]


async def test_pull_each_class_expired_and_duplicates(
    station: RunningStation, server: ProvincialServer
) -> None:
    past = datetime.now(UTC) - timedelta(minutes=5)
    server.add_bulletin(bulletin("N1", "normal"))
    server.add_bulletin(bulletin("P1", "priority"))
    server.add_bulletin(bulletin("E1", "emergency"))
    server.add_bulletin(bulletin("X1", "normal", valid_to=past.isoformat()))
    server.add_bulletin({"id": "bad", "class": "urgent"})
    upstream = station.app[keys.UPSTREAM]
    assert await upstream.pull() == 3

    got = await rows(station)
    assert set(got) == {"N1", "P1", "E1"}
    assert got["N1"].status == BulletinStatus.INBOX
    assert got["P1"].status == BulletinStatus.PROPOSED
    # text only: confirmed (no operator needed by default) but waits for a recording
    assert got["E1"].status == BulletinStatus.CONFIRMED
    assert got["E1"].note == TEXT_ONLY_NOTE
    assert got["N1"].needs_recording and got["N1"].villages == ["thon-1"]
    log = await exchanges(station)
    assert ("X1", "expired") in log and ("bad", "rejected") in log
    assert ("E1", "waiting") in log

    server.duplicate_deliveries = True  # the server forgets the cursor and sends all again
    assert await upstream.pull() == 0
    assert set(await rows(station)) == {"N1", "P1", "E1"}
    assert [k for k, s in await exchanges(station) if s == "duplicate"] == ["N1", "P1", "E1"]
    pending = [b.upstream_id for b in await inbox(station.app[keys.SESSIONS])]
    assert pending == ["N1", "P1", "E1"]


async def test_pull_survives_server_errors(
    station: RunningStation, server: ProvincialServer
) -> None:
    server.add_bulletin(bulletin("N1", "normal"))
    upstream = station.app[keys.UPSTREAM]
    server.fail_next(1, 500, "/bulletins")  # the outbox sender may push meanwhile: not this one
    assert await upstream.pull() == 0
    await server.go_down()
    assert await upstream.pull() == 0
    await server.come_up()
    assert await upstream.pull() == 1
    statuses = [s for _, s in await exchanges(station)]
    assert statuses == ["retry", "retry", "ok"]


async def test_periodic_pull_and_emergency_confirmation(
    tmp_path: Path, database_url: str, mqtt_url: str, station_id: str, server: ProvincialServer
) -> None:
    settings = settings_for(
        tmp_path,
        database_url,
        mqtt_url,
        station_id,
        server.base_url,
        pull=True,
        pull_interval_s=0.1,
        emergency_confirm="always",
    )
    wav = tmp_path / "lu.wav"
    await synthesize_programme(wav, 1.0)
    url = server.add_file("lu.wav", wav.read_bytes(), "audio/wav")
    server.add_bulletin(bulletin("E2", "emergency", audio_url=url, villages=[]))
    station = await start_station(settings)
    try:
        await register_clusters(station.app[keys.SESSIONS], [("C1", "one")])
        async with asyncio.timeout(15):
            while True:
                got = await rows(station)
                if "E2" in got and got["E2"].media_id is not None:
                    break
                await asyncio.sleep(0.05)
        row = got["E2"]
        assert row.status == BulletinStatus.CONFIRM_NEEDED  # nothing airs before an operator
        assert row.id is not None
        await confirm_emergency(station.app[keys.SESSIONS], row.id)
        async with asyncio.timeout(10):  # the station's inbox tick hands it to the trigger
            while True:
                if (await rows(station))["E2"].status == BulletinStatus.TRIGGERED:
                    break
                await asyncio.sleep(0.05)
        assert (await rows(station))["E2"].note == ""  # the station's trigger took it
    finally:
        await station.stop()


async def test_audio_bulletin_is_ingested(
    station: RunningStation, server: ProvincialServer, tmp_path: Path
) -> None:
    wav = tmp_path / "ban-tin.wav"
    await synthesize_programme(wav, 1.5)
    url = server.add_file("ban-tin.wav", wav.read_bytes(), "audio/wav")
    html = server.add_file("page.html", b"<html></html>", "text/html")
    server.add_bulletin(bulletin("A1", "priority", audio_url=url, text=""))
    server.add_bulletin(bulletin("A2", "normal", audio_url=html))
    assert await station.app[keys.UPSTREAM].pull() == 2
    got = await rows(station)
    assert got["A1"].media_id is not None and got["A1"].audio_error == ""
    assert not got["A1"].needs_recording
    async with station.app[keys.SESSIONS]() as db:
        media = await db.get(MediaItem, got["A1"].media_id)
    assert media is not None and 1400 <= media.duration_ms <= 1600
    assert got["A2"].media_id is None and "text/html" in got["A2"].audio_error
    assert (got["A1"].audio_attempts, got["A2"].audio_attempts) == (1, AUDIO_MAX_ATTEMPTS)
    assert ("A2", "rejected") in await exchanges(station)


async def test_audio_size_limit(station: RunningStation, server: ProvincialServer) -> None:
    upstream = station.app[keys.UPSTREAM]
    upstream.inbox.audio_max_bytes = 1000
    url = server.add_file("big.wav", b"\0" * 5000, "audio/wav")
    server.add_bulletin(bulletin("B1", "normal", audio_url=url))
    assert await upstream.pull() == 1
    row = (await rows(station))["B1"]
    assert row.media_id is None and "larger than 1000" in row.audio_error


async def post_signed(
    station: RunningStation, body: bytes, timestamp: int, signature: str | None = None
) -> tuple[int, Any]:
    headers = {"X-Loaxa-Timestamp": str(timestamp), "Content-Type": "application/json"}
    headers["X-Loaxa-Signature"] = signature or sign_webhook(SECRET, timestamp, body)
    url = station.base_url + WEBHOOK_PATH
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as r,
    ):
        return r.status, await r.json(content_type=None)


async def test_webhook_signed_delivery_and_duplicates(
    station: RunningStation, server: ProvincialServer
) -> None:
    server.duplicate_deliveries = True
    results = await server.push_webhook(
        station.base_url + WEBHOOK_PATH, SECRET, [bulletin("W1", "priority")]
    )
    # the second delivery is the same signed request: refused as a replay
    assert [status for status, _ in results] == [200, 409]
    assert results[0][1]["stored"] == ["W1"]
    now = int(time.time())
    body = json.dumps({"bulletins": [bulletin("W1", "priority")]}).encode()
    status, reply = await post_signed(station, body, now + 1)  # freshly signed, same bulletin
    assert status == 200 and reply["duplicates"] == ["W1"]
    got = await rows(station)
    assert got["W1"].status == BulletinStatus.PROPOSED and got["W1"].received_via == "webhook"


async def test_webhook_rejects_bad_signature_stale_and_bad_body(station: RunningStation) -> None:
    now = int(time.time())
    body = json.dumps({"bulletins": [bulletin("W2", "normal")]}).encode()
    status, reply = await post_signed(station, body, now, signature="sha256=" + "0" * 64)
    assert status == 401 and reply["detail"] == "bad signature"
    status, reply = await post_signed(station, body, now - 3600)
    assert status == 401 and "window" in reply["detail"]
    tampered = body.replace(b"W2", b"W3")
    status, _ = await post_signed(station, tampered, now, sign_webhook(SECRET, now, body))
    assert status == 401
    status, reply = await post_signed(station, b"[1, 2]", now)
    assert status == 400
    url = station.base_url + WEBHOOK_PATH
    async with aiohttp.ClientSession() as session, session.post(url, data=body) as r:
        assert r.status == 401
    big = b'{"bulletins": ["' + b"x" * (1024 * 1024) + b'"]}'
    headers = {"X-Loaxa-Timestamp": str(now), "X-Loaxa-Signature": sign_webhook(SECRET, now, big)}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=io.BytesIO(big), headers=headers) as r,
    ):
        assert r.status == 413
    assert await rows(station) == {}
    rejected = [s for _, s in await exchanges(station)]
    assert rejected == ["rejected"] * 6


async def test_bulletins_with_200_character_ids_can_be_decided(
    station: RunningStation, server: ProvincialServer
) -> None:
    """``bulletin:<id>:declined`` is longer than an outbox key may be: it is stored bounded
    (``outbox_key``), one key per bulletin even when two ids share their first 199 characters."""
    ids = ["B" * 199 + "1", "B" * 199 + "2"]
    assert all(len(i) == 200 for i in ids)
    results = await server.push_webhook(
        station.base_url + WEBHOOK_PATH, SECRET, [bulletin(i, "priority") for i in ids]
    )
    assert [status for status, _ in results] == [200]
    got = await rows(station)
    operator = await user_with_token(station, "phat", Role.BROADCASTER)
    async with client(station, operator) as api:
        for ident in ids:
            status, body, _ = await api.call("POST", f"/bulletins/{got[ident].id}/decline", {})
            assert status == 200 and body["status"] == "declined", body
        status, body, _ = await api.call("POST", f"/bulletins/{got[ids[0]].id}/decline", {})
        assert_problem(status, body, 409)  # decided already: one message per decision
    async with station.app[keys.SESSIONS]() as db:
        query = select(OutboxMessage).where(OutboxMessage.kind == "bulletin_status")
        messages = (await db.exec(query.order_by(col(OutboxMessage.id)))).all()
    assert [m.key for m in messages] == [outbox_key(f"bulletin:{i}:declined") for i in ids]
    assert all(len(m.key) == KEY_LIMIT for m in messages)
    assert [m.payload["bulletin_id"] for m in messages] == ids  # the full id goes upstream


def test_guard_forgets_signatures_after_the_window() -> None:
    clock = [1000.0]
    guard = WebhookGuard(SECRET, 300, clock=lambda: clock[0])
    signature = sign_webhook(SECRET, 1000, b"{}")
    guard.check("1000", signature, b"{}")
    clock[0] = 1200.0
    with pytest.raises(SignatureError, match="replayed"):
        guard.check("1000", signature, b"{}")
    clock[0] = 1400.0  # too old now: refused for its timestamp, and no longer remembered
    with pytest.raises(SignatureError, match="window"):
        guard.check("1000", signature, b"{}")
    assert guard._seen == {}


async def test_custom_emergency_trigger_is_called(
    station: RunningStation,
) -> None:
    called: list[str] = []

    async def trigger(row: UpstreamBulletin) -> None:
        called.append(row.upstream_id)

    inbox_ = BulletinInbox(
        station.app[keys.SESSIONS], None, _no_ingest, trigger, confirm_emergency=False
    )
    raw = [bulletin("E9", "emergency", text="Lũ quét", audio_url="https://x.example/a.mp3")]
    outcome = await inbox_.receive(raw, "pull")
    assert outcome.stored == ["E9"] and called == ["E9"]


async def _no_ingest(_path: Path, _title: str) -> int:
    raise AssertionError("no audio in this test")


async def test_default_trigger_records_that_nothing_aired(station: RunningStation) -> None:
    sessions = station.app[keys.SESSIONS]
    default = RecordingEmergencyTrigger(sessions)
    inbox_ = BulletinInbox(sessions, None, _no_ingest, default)
    await inbox_.receive([bulletin("E7", "emergency", audio_url="https://x.example/a.mp3")], "pull")
    assert default.waiting == ["E7"]
    got = (await rows(station))["E7"]
    assert got.status == BulletinStatus.TRIGGERED and got.note == WAITING_NOTE
    assert ("E7", "waiting") in await exchanges(station)


async def test_failing_trigger_is_contained_and_visible(station: RunningStation) -> None:
    async def trigger(row: UpstreamBulletin) -> None:
        raise StationError("targets reach no cluster")

    inbox_ = BulletinInbox(station.app[keys.SESSIONS], None, _no_ingest, trigger)
    raw = [
        bulletin("E8", "emergency", audio_url="https://x.example/a.mp3"),
        bulletin("N8", "normal"),
    ]
    outcome = await inbox_.receive(raw, "webhook")
    assert outcome.stored == ["E8", "N8"]
    got = await rows(station)
    assert got["E8"].status == BulletinStatus.CONFIRM_NEEDED  # an operator can confirm again
    assert "targets reach no cluster" in got["E8"].note
    assert ("E8", "failed") in await exchanges(station)
