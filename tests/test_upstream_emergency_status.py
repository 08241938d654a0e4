"""Emergency bulletins are reported to the province as ``bulletin_status`` messages: who
confirmed one, when it went on air (the emergency id), a trigger that failed, and once the
emergency is over on how many of its targeted clusters it played. Each message goes once,
through retries and restarts (docs/upstream.md, "bulletin_status")."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from api_support import client, user_with_token
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from upstream_support import upstream_settings

from simulator import SimulatedFleet
from simulator.provincial import ProvincialServer
from station import _keys as keys
from station._audit import Actor
from station._emergency import EmergencyRequest, start_emergency
from station._services import Sessions, StationError, add_media, register_clusters
from station.app import start_station
from station.config import Settings
from station.db import (
    BulletinStatus,
    Cluster,
    OutboxMessage,
    OutboxStatus,
    PlayRecord,
    PlayRecordStatus,
    PlaySession,
    PlaySessionStatus,
    Role,
    UpstreamBulletin,
    create_engine_for,
    session_factory,
    upgrade_async,
)
from station.demo import demo_settings
from station.media import synthesize_programme
from station.upstream import WEBHOOK_PATH, BulletinInbox, RecordingEmergencyTrigger
from station.upstream._bulletin_status import collect_aired
from station.upstream._outbox import KEY_LIMIT, outbox_key
from station.upstream._queries import BulletinActionError, attach_audio, confirm_emergency

TOKEN = "emergency-status-token"
SECRET = "emergency-webhook-secret-42"
ICT = ["E1", "E2"]
WINDOW, AFTER = timedelta(days=7), timedelta(minutes=10)


def settings_for(
    tmp_path: Path, database_url: str, mqtt_url: str, station_id: str, base_url: str
) -> Settings:
    return upstream_settings(
        tmp_path,
        database_url,
        mqtt_url,
        station_id,
        base_url,
        TOKEN,
        retry_min_s=0.05,
        retry_max_s=0.2,
        pull_interval_s=3600,
        webhook_secret=SECRET,
        emergency_confirm="always",
    )


def emergency(ident: str, **fields: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "id": ident,
        "class": "emergency",
        "title": f"Cảnh báo {ident}",
        "text": "Lũ quét: di chuyển lên vùng cao.",
        "valid_from": (now - timedelta(hours=1)).isoformat(),
        "valid_to": (now + timedelta(days=1)).isoformat(),
        "villages": [],
        "issuer": "UBND tỉnh",
        **fields,
    }


async def wait_for(check: Callable[[], Awaitable[bool]], timeout: float = 60.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            if await check():
                return
            await asyncio.sleep(0.05)


async def status_messages(sessions: Sessions) -> list[OutboxMessage]:
    async with sessions() as db:
        query = select(OutboxMessage).where(OutboxMessage.kind == "bulletin_status")
        return list((await db.exec(query.order_by(col(OutboxMessage.id)))).all())


async def bulletin_row(sessions: Sessions, ident: str) -> UpstreamBulletin:
    async with sessions() as db:
        query = select(UpstreamBulletin).where(UpstreamBulletin.upstream_id == ident)
        return (await db.exec(query)).one()


@pytest.fixture
async def server() -> AsyncIterator[ProvincialServer]:
    srv = ProvincialServer(token=TOKEN)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


async def test_confirmed_on_air_and_aired_reach_the_province_once(
    tmp_path: Path, database_url: str, mqtt_url: str, station_id: str, server: ProvincialServer
) -> None:
    """The whole path on a running station: webhook -> an operator confirms in the API ->
    the station's trigger airs it on the simulated fleet -> the collector reports it aired.
    Then a crash after the province accepted a message, and a restart: nothing twice."""
    settings = settings_for(tmp_path, database_url, mqtt_url, station_id, server.base_url)
    station = await start_station(settings)
    try:
        app = station.app
        sessions = app[keys.SESSIONS]
        await register_clusters(sessions, [(cid, cid) for cid in ICT])
        app[keys.GATEWAY].remember(ICT)
        source = tmp_path / "lu.wav"
        await synthesize_programme(source, 1.0)
        item, _ = await add_media(
            sessions, app[keys.MEDIA_STORE], app[keys.MEDIA_WORKER], settings, source, "Lũ"
        )
        assert item.id is not None
        results = await server.push_webhook(
            station.base_url + WEBHOOK_PATH, SECRET, [emergency("QNA-E-100")]
        )
        assert [status for status, _ in results] == [200]
        row = await bulletin_row(sessions, "QNA-E-100")
        assert row.status == BulletinStatus.CONFIRM_NEEDED and row.id is not None
        await attach_audio(sessions, Actor("cli:lan"), row.id, item.id)
        assert await status_messages(sessions) == []  # nothing happened the province needs

        async with SimulatedFleet(station.runtime.mqtt_url, station_id, ICT):
            leader = await user_with_token(station, "chu-tich", Role.APPROVER)
            async with client(station, leader) as api:
                status, body, _ = await api.call("POST", f"/bulletins/{row.id}/confirm", {})
            assert status == 200 and body["status"] == "triggered", body
            confirmed, on_air = await status_messages(sessions)
            assert confirmed.payload["status"] == "confirmed"
            who = confirmed.payload["decided_by"]  # the audit's actor: "chu-tich (token 1)"
            assert who.startswith("chu-tich")
            assert who == (await bulletin_row(sessions, "QNA-E-100")).decided_by
            assert confirmed.payload["bulletin_id"] == "QNA-E-100"
            assert confirmed.key.startswith("bulletin:QNA-E-100:confirmed:")
            async with sessions() as db:
                session = (await db.exec(select(PlaySession))).one()
            assert on_air.key == f"bulletin:QNA-E-100:on_air:{session.id}"
            assert on_air.payload["status"] == "on_air"
            assert on_air.payload["details"]["emergency_id"] == session.id
            assert on_air.payload["details"]["targeted"] == len(ICT)
            assert on_air.payload["details"]["confirmed_by"] == who
            assert datetime.fromisoformat(on_air.payload["decided_at"]) >= datetime.fromisoformat(
                confirmed.payload["decided_at"]
            )
            upstream = app[keys.UPSTREAM]

            async def over() -> bool:
                async with sessions() as db:
                    done = await db.get(PlaySession, session.id, populate_existing=True)
                    records = (
                        await db.exec(
                            select(PlayRecord.status).where(PlayRecord.session_id == session.id)
                        )
                    ).all()
                assert done is not None
                finished = all(s == PlayRecordStatus.FINISHED for s in records)
                return done.status == PlaySessionStatus.DONE and finished

            await wait_for(over)
        await upstream.collect()
        aired = (await status_messages(sessions))[-1]
        assert aired.key == f"bulletin:QNA-E-100:aired:{session.id}"
        details = aired.payload["details"]
        assert aired.payload["status"] == "aired" and aired.payload["decided_by"] == "system"
        assert details["emergency_id"] == session.id and details["ended"] == "finished"
        assert (details["targeted"], details["played"]) == (2, 2)
        assert details["by_status"] == {"finished": 2}
        assert await upstream.collect() == 0  # collected once
        wanted = [confirmed.key, on_air.key, aired.key]

        async def delivered() -> bool:  # every row, so none is in flight at the stop
            async with sessions() as db:
                states = (await db.exec(select(OutboxMessage.status))).all()
            return all(s == OutboxStatus.SENT for s in states)

        await wait_for(delivered)
        assert all(k in server.received for k in wanted)
        envelope = server.received[aired.key]
        assert envelope["kind"] == "bulletin_status" and envelope["data"] == aired.payload
        assert server.received[confirmed.key]["data"]["decided_by"] == who
    finally:
        await station.stop()

    # The station died after the province accepted "aired" but before marking it sent.
    engine = create_engine_for(database_url)
    try:
        async with session_factory(engine)() as db:
            message = (
                await db.exec(select(OutboxMessage).where(OutboxMessage.key == aired.key))
            ).one()
            message.status, message.sent_at = OutboxStatus.PENDING, None
            db.add(message)
            await db.commit()
    finally:
        await engine.dispose()
    station = await start_station(settings)
    try:
        sessions = station.app[keys.SESSIONS]
        assert await station.app[keys.UPSTREAM].collect() == 0  # nothing new after a restart
        await station.app[keys.UPSTREAM].inbox.tick()  # nor from the inbox: it is triggered
        assert [m.key for m in await status_messages(sessions)] == wanted

        async def resent() -> bool:
            return all(m.status == OutboxStatus.SENT for m in await status_messages(sessions))

        await wait_for(resent)
        assert server.duplicates == 1  # sent again, counted once
        assert [k for k in server.order if k.startswith("bulletin:")] == wanted
    finally:
        await station.stop()


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Sessions]:
    """The station's tables and three clusters, without a running station (no dispatcher
    touching the emergency sessions these tests move by hand)."""
    await upgrade_async(database_url)
    engine: AsyncEngine = create_engine_for(database_url)
    sessions = session_factory(engine)
    async with sessions() as db:
        db.add_all(Cluster(id=cid) for cid in ["K1", "K2", "K3"])
        await db.commit()
    try:
        yield sessions
    finally:
        await engine.dispose()


async def _no_ingest(_path: Path, _title: str) -> int:
    raise AssertionError("no audio download in these tests")


async def _end(
    sessions: Sessions, session_id: str, records: dict[str, PlayRecordStatus], **stop: Any
) -> None:
    async with sessions() as db:
        row = await db.get(PlaySession, session_id)
        assert row is not None
        row.status = PlaySessionStatus.DONE
        for name, value in stop.items():
            setattr(row, name, value)
        db.add(row)
        for record in (
            await db.exec(select(PlayRecord).where(PlayRecord.session_id == session_id))
        ).all():
            record.status = records[record.cluster_id]
            db.add(record)
        await db.commit()


async def test_failed_trigger_reconfirmation_and_stopped_emergency(
    tmp_path: Path, database: Sessions, database_url: str
) -> None:
    """A trigger that fails is reported and the bulletin waits for a new confirmation (its own
    message); the trigger's returned emergency id goes up as ``on_air``; a stopped emergency
    is reported ``aired`` once its proof of play is in, or ``play_report_after_s`` after its
    start."""
    sessions = database
    settings = demo_settings(
        tmp_path, mqtt_url="mqtt://127.0.0.1:1", database_url=database_url, station_id="xa"
    )
    started: list[str] = []

    async def trigger(row: UpstreamBulletin) -> str | None:
        if not started:
            started.append("")
            raise StationError("the emergency path is busy")
        request = EmergencyRequest({"all": True}, relay_url="http://vov.example/vov1")
        session = await start_emergency(sessions, settings, request, "upstream:UBND tỉnh")
        started.append(session.id)
        return session.id

    woken: list[int] = []
    inbox = BulletinInbox(
        sessions,
        None,
        _no_ingest,
        trigger,
        confirm_emergency=True,
        wake=lambda: woken.append(1),
    )
    raw = emergency("QNA-E-200", audio_url="https://ttn.example.gov.vn/files/200.mp3")
    assert (await inbox.receive([raw], "pull")).stored == ["QNA-E-200"]
    row = await bulletin_row(sessions, "QNA-E-200")
    assert row.id is not None and row.status == BulletinStatus.CONFIRM_NEEDED
    assert await status_messages(sessions) == []

    first = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
    await confirm_emergency(sessions, row.id, Actor("cli:lan"), now=first)
    await inbox.trigger_now(row.id)
    assert (await bulletin_row(sessions, "QNA-E-200")).status == BulletinStatus.CONFIRM_NEEDED
    second = first + timedelta(minutes=2)
    await confirm_emergency(sessions, row.id, Actor("cli:hoa"), now=second)
    with pytest.raises(BulletinActionError) as refused:  # confirmed already
        await confirm_emergency(sessions, row.id, Actor("cli:hoa"))
    assert refused.value.status == 409
    after = await inbox.trigger_now(row.id)
    assert after is not None and after.status == BulletinStatus.TRIGGERED
    emergency_id = started[-1]
    await inbox.trigger_now(row.id)
    await inbox.tick()  # triggered: nothing is handed over or reported again

    messages = await status_messages(sessions)
    statuses = [(m.payload["status"], m.payload["decided_by"]) for m in messages]
    assert statuses == [
        ("confirmed", "cli:lan"),
        ("trigger_failed", "system"),
        ("confirmed", "cli:hoa"),
        ("on_air", "system"),
    ]
    ms = round(first.timestamp() * 1000)
    assert messages[0].key == f"bulletin:QNA-E-200:confirmed:{ms}"
    assert messages[0].payload["decided_at"] == first.isoformat()
    assert messages[0].payload["details"] == {"class": "emergency", "villages": []}
    assert "the emergency path is busy" in messages[1].payload["details"]["error"]
    assert messages[1].payload["details"]["status"] == "confirm_needed"
    assert messages[2].key != messages[0].key
    on_air = messages[3].payload["details"]
    assert on_air["emergency_id"] == emergency_id and on_air["targeted"] == 3
    assert on_air["confirmed_by"] == "cli:hoa" and on_air["triggered_by"] == "upstream:UBND tỉnh"
    assert len(woken) == 2  # the sender is told at once (trigger_failed, on_air)

    # Over (stopped), two clusters played, one has not reported yet.
    async with sessions() as db:
        session = await db.get(PlaySession, emergency_id)
        assert session is not None
        start = session.start_at
    assert await collect_aired(sessions, start, WINDOW, AFTER) == 0  # still on air
    stopped_at = start + timedelta(seconds=40)
    await _end(
        sessions,
        emergency_id,
        {
            "K1": PlayRecordStatus.FINISHED,
            "K2": PlayRecordStatus.INTERRUPTED,
            "K3": PlayRecordStatus.SENT,
        },
        stopped_at=stopped_at,
        stopped_by="chu-tich",
    )
    soon = start + timedelta(minutes=1)
    assert await collect_aired(sessions, soon, WINDOW, AFTER) == 0  # K3's proof may come
    late = start + AFTER + timedelta(seconds=1)
    assert await collect_aired(sessions, late, WINDOW, AFTER) == 1
    assert await collect_aired(sessions, late, WINDOW, AFTER) == 0
    aired = (await status_messages(sessions))[-1]
    assert aired.key == f"bulletin:QNA-E-200:aired:{emergency_id}"
    assert aired.payload["decided_at"] == stopped_at.isoformat()
    details = aired.payload["details"]
    assert details["ended"] == "stopped" and details["stopped_by"] == "chu-tich"
    assert (details["targeted"], details["played"]) == (3, 2)
    assert details["by_status"] == {"finished": 1, "interrupted": 1, "sent": 1}


async def test_unconfirmed_rule_long_ids_and_no_emergency_path(
    tmp_path: Path, database: Sessions, database_url: str
) -> None:
    """Rule ``never``: no confirmation to report, ``on_air`` says nobody confirmed. An id of
    200 characters makes bounded keys, still one ``aired`` per emergency. The fallback trigger
    airs nothing, so nothing is reported as on air."""
    sessions = database
    settings = demo_settings(
        tmp_path, mqtt_url="mqtt://127.0.0.1:1", database_url=database_url, station_id="xa"
    )

    async def trigger(row: UpstreamBulletin) -> str | None:
        request = EmergencyRequest({"clusters": ["K1"]}, relay_url="http://vov.example/vov1")
        return (await start_emergency(sessions, settings, request, "upstream:x")).id

    long_id = "Q" * 200
    inbox = BulletinInbox(sessions, None, _no_ingest, trigger)
    audio = {"audio_url": "https://ttn.example.gov.vn/files/300.mp3"}
    await inbox.receive([emergency(long_id, **audio)], "webhook")
    (on_air,) = await status_messages(sessions)
    assert on_air.payload["bulletin_id"] == long_id and len(on_air.key) == KEY_LIMIT
    assert on_air.payload["details"]["confirmed_by"] is None
    emergency_id = on_air.payload["details"]["emergency_id"]
    assert on_air.key == outbox_key(f"bulletin:{long_id}:on_air:{emergency_id}")
    await _end(sessions, emergency_id, {"K1": PlayRecordStatus.FINISHED})
    now = datetime.now(UTC)
    assert await collect_aired(sessions, now, WINDOW, AFTER) == 1
    assert await collect_aired(sessions, now, WINDOW, AFTER) == 0
    aired = (await status_messages(sessions))[-1]
    assert aired.key == outbox_key(f"bulletin:{long_id}:aired:{emergency_id}")
    assert aired.payload["details"]["played"] == 1

    nothing = BulletinInbox(sessions, None, _no_ingest, RecordingEmergencyTrigger(sessions))
    await nothing.receive([emergency("QNA-E-301", **audio)], "pull")
    assert (await bulletin_row(sessions, "QNA-E-301")).status == BulletinStatus.TRIGGERED
    assert len(await status_messages(sessions)) == 2  # no on_air: nothing went on air
