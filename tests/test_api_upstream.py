"""The Source Information System link over the API: confirming an upstream emergency (it airs
through the emergency path on simulated clusters), roles, the exchange log and the outbox,
retry, and attaching a recording to a text-only bulletin (upload, then link)."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from api_support import assert_problem, client, running, settings_for, user_with_token
from sqlmodel import col, select

from simulator import SimulatedFleet
from station import _keys as keys
from station._services import add_media, register_clusters
from station.app import RunningStation
from station.db import (
    AuditEntry,
    BulletinClass,
    BulletinStatus,
    OutboxMessage,
    OutboxStatus,
    PlayRecord,
    PlayRecordStatus,
    PlaySession,
    Role,
    UpstreamBulletin,
    UpstreamExchange,
)
from station.media import synthesize_programme

CLUSTERS = ["U1", "U2"]
STARTED = {PlayRecordStatus.STARTED, PlayRecordStatus.FINISHED}


async def _bulletin(
    station: RunningStation,
    ident: str,
    klass: BulletinClass,
    status: BulletinStatus,
    media_id: int | None = None,
) -> int:
    now = datetime.now(UTC)
    async with station.app[keys.SESSIONS]() as db:
        row = UpstreamBulletin(
            upstream_id=ident,
            bulletin_class=klass,
            status=status,
            title=f"Bản tin {ident}",
            text="Nội dung bản tin.",
            media_id=media_id,
            valid_from=now - timedelta(hours=1),
            valid_to=now + timedelta(days=1),
            received_via="webhook",
        )
        db.add(row)
        await db.commit()
        assert row.id is not None
        return row.id


async def _audio(station: RunningStation, tmp_path: Path, seconds: float = 20.0) -> int:
    app = station.app
    source = tmp_path / "bao.wav"
    await synthesize_programme(source, seconds)
    item, _ = await add_media(
        app[keys.SESSIONS], app[keys.MEDIA_STORE], app[keys.MEDIA_WORKER], app[keys.SETTINGS],
        source, "Cảnh báo lũ",
    )  # fmt: skip
    assert item.id is not None
    return item.id


async def _emergencies(station: RunningStation) -> list[PlaySession]:
    async with station.app[keys.SESSIONS]() as db:
        query = select(PlaySession).where(PlaySession.kind == "emergency")
        return list((await db.exec(query)).all())


async def _records(station: RunningStation, session_id: str) -> set[PlayRecordStatus]:
    async with station.app[keys.SESSIONS]() as db:
        rows = await db.exec(select(PlayRecord).where(PlayRecord.session_id == session_id))
        return {r.status for r in rows}


async def _actions(station: RunningStation, action: str) -> list[AuditEntry]:
    async with station.app[keys.SESSIONS]() as db:
        query = select(AuditEntry).where(AuditEntry.action == action)
        return list((await db.exec(query)).all())


async def test_confirm_an_emergency_airs_it_and_roles(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str
) -> None:
    settings = settings_for(tmp_path, mqtt_url, database_url, station_id)
    async with running(settings) as station:
        await register_clusters(station.app[keys.SESSIONS], [(c, c) for c in CLUSTERS])
        station.app[keys.GATEWAY].remember(CLUSTERS)
        media_id = await _audio(station, tmp_path)
        flood = await _bulletin(
            station, "QNA-1", BulletinClass.EMERGENCY, BulletinStatus.CONFIRM_NEEDED, media_id
        )
        normal = await _bulletin(station, "QNA-2", BulletinClass.NORMAL, BulletinStatus.INBOX)
        viewer = await user_with_token(station, "xem", Role.VIEWER)
        tech = await user_with_token(station, "kt", Role.TECHNICIAN)
        chair = await user_with_token(station, "chutich", Role.APPROVER)
        for token in (viewer, tech):
            async with client(station, token) as api:
                status, body, _ = await api.call("POST", f"/bulletins/{flood}/confirm")
                assert_problem(status, body, 403)
        async with client(station) as anon:
            status, body, _ = await anon.call("POST", f"/bulletins/{flood}/confirm")
            assert_problem(status, body, 401)
        assert await _emergencies(station) == []

        async with (
            client(station, chair) as api,
            SimulatedFleet(station.runtime.mqtt_url, station_id, CLUSTERS),
        ):
            status, body, _ = await api.call("POST", "/bulletins/9999/confirm")
            assert_problem(status, body, 404)
            status, body, _ = await api.call("POST", f"/bulletins/{normal}/confirm")
            assert_problem(status, body, 409)
            assert "not confirm_needed" in body["detail"]
            status, body, _ = await api.call("POST", f"/bulletins/{flood}/confirm")
            assert status == 200, body
            assert body["status"] == "triggered" and body["decided_by"] == "chutich (token 3)"
            [session] = await _emergencies(station)  # through the emergency path, at once
            assert session.triggered_by == "upstream:QNA-1"
            async with asyncio.timeout(30):  # and it airs on the simulated clusters
                while True:
                    found = await _records(station, session.id)
                    if found and not found - STARTED:
                        break
                    await asyncio.sleep(0.1)
            status, body, _ = await api.call("POST", f"/bulletins/{flood}/confirm")
            assert_problem(status, body, 409)  # confirmed once
        [entry] = await _actions(station, "bulletin.confirmed")
        assert entry.actor == "chutich (token 3)" and entry.target == "bulletin:QNA-1"
        assert len(await _emergencies(station)) == 1


async def test_text_only_emergency_airs_when_its_recording_is_attached(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str
) -> None:
    settings = settings_for(tmp_path, mqtt_url, database_url, station_id)
    async with running(settings) as station:
        await register_clusters(station.app[keys.SESSIONS], [(c, c) for c in CLUSTERS])
        flood = await _bulletin(
            station, "QNA-7", BulletinClass.EMERGENCY, BulletinStatus.CONFIRM_NEEDED
        )
        token = await user_with_token(station, "phat", Role.BROADCASTER)
        async with client(station, token) as api:
            status, body, _ = await api.call("POST", f"/bulletins/{flood}/confirm")
            assert status == 200 and body["status"] == "confirmed", body
            assert body["note"] == "text only: waiting for a recording"
            assert await _emergencies(station) == []
            media_id = await _audio(station, tmp_path, 5.0)
            status, body, _ = await api.call(
                "POST", f"/bulletins/{flood}/audio", {"media_id": media_id}
            )
            assert status == 200 and body["status"] == "triggered", body
            assert body["media_id"] == media_id
        assert len(await _emergencies(station)) == 1


async def test_attach_audio_makes_a_text_only_bulletin_placeable(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str
) -> None:
    settings = settings_for(tmp_path, mqtt_url, database_url, station_id)
    async with running(settings) as station:
        await register_clusters(station.app[keys.SESSIONS], [(c, c) for c in CLUSTERS])
        text_only = await _bulletin(
            station, "QNA-3", BulletinClass.PRIORITY, BulletinStatus.PROPOSED
        )
        viewer = await user_with_token(station, "xem", Role.VIEWER)
        operator = await user_with_token(station, "phat", Role.BROADCASTER)
        async with client(station, viewer) as api:
            status, body, _ = await api.call(
                "POST", f"/bulletins/{text_only}/audio", {"media_id": 1}
            )
            assert_problem(status, body, 403)
        async with client(station, operator) as api:
            at = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0).isoformat()
            place = {"mode": "session", "at": at}
            status, body, _ = await api.call("POST", f"/bulletins/{text_only}/place", place)
            assert_problem(status, body, 409)  # no audio yet
            # upload through the media pipeline, then link
            source = tmp_path / "ghi-am.wav"
            await synthesize_programme(source, 3.0)
            form = aiohttp.FormData()
            form.add_field("title", "Ghi âm bản tin")
            form.add_field(
                "file", io.BytesIO(source.read_bytes()), filename="ghi-am.wav",
                content_type="audio/wav",
            )  # fmt: skip
            status, media, _ = await api.call("POST", "/media", data=form)
            assert status == 201, media
            status, body, _ = await api.call("POST", f"/bulletins/{text_only}/audio", {})
            assert_problem(status, body, 422, "media_id")
            status, body, _ = await api.call(
                "POST", f"/bulletins/{text_only}/audio", {"media_id": 99999}
            )
            assert_problem(status, body, 422, "media_id")
            status, body, _ = await api.call(
                "POST", f"/bulletins/{text_only}/audio", {"media_id": media["id"]}
            )
            assert status == 200 and body["media_id"] == media["id"], body
            assert body["status"] == "proposed"
            status, body, _ = await api.call(
                "POST", f"/bulletins/{text_only}/audio", {"media_id": media["id"]}
            )
            assert_problem(status, body, 409)  # it has one now
            status, body, _ = await api.call("GET", f"/bulletins/{text_only}/clashes")
            assert status == 200 and 2.5 < body["duration_s"] < 3.5, body
            status, body, _ = await api.call("POST", f"/bulletins/{text_only}/place", place)
            assert status == 200 and body["status"] == "scheduled", body
            status, body, _ = await api.call("POST", "/bulletins/9999/audio", {"media_id": 1})
            assert_problem(status, body, 404)
        [entry] = await _actions(station, "bulletin.audio")
        assert entry.actor == "phat (token 2)" and entry.details == {"media_id": media["id"]}


async def test_exchange_log_outbox_and_retry(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str
) -> None:
    settings = settings_for(tmp_path, mqtt_url, database_url, station_id)
    async with running(settings) as station:
        sessions = station.app[keys.SESSIONS]
        due = datetime.now(UTC) + timedelta(seconds=40)
        async with sessions() as db:
            db.add_all(
                [
                    OutboxMessage(kind="schedule", key="schedule:1:1", status=OutboxStatus.SENT),
                    OutboxMessage(kind="report", key="report:a", status=OutboxStatus.FAILED,
                                  http_status=422, last_error="bad period", attempts=1),
                    OutboxMessage(kind="report", key="report:b", status=OutboxStatus.FAILED,
                                  http_status=400, last_error="bad", attempts=1),
                    OutboxMessage(kind="proof_of_play", key="play:s1:C01", attempts=3,
                                  next_attempt_at=due, last_error="503"),
                ]
            )  # fmt: skip
            for n in range(5):
                outcome = "failed" if n % 2 else "ok"
                db.add(UpstreamExchange(direction="up", kind="report", key=f"report:{n}",
                                        status=outcome, http_status=422))  # fmt: skip
            db.add(UpstreamExchange(direction="down", kind="pull", status="retry", error="503"))
            await db.commit()
        viewer = await user_with_token(station, "xem", Role.VIEWER)
        operator = await user_with_token(station, "phat", Role.BROADCASTER)
        async with client(station, viewer) as api:
            status, page, _ = await api.call("GET", "/upstream/exchanges?limit=2")
            assert status == 200 and page["total"] == 6 and page["limit"] == 2
            assert [e["kind"] for e in page["items"]] == ["pull", "report"]  # newest first
            assert page["items"][0]["direction"] == "down" and page["items"][0]["error"] == "503"
            status, page, _ = await api.call("GET", "/upstream/exchanges?limit=2&offset=2")
            assert [e["key"] for e in page["items"]] == ["report:3", "report:2"]
            status, page, _ = await api.call("GET", "/upstream/exchanges?status=failed")
            assert [e["key"] for e in page["items"]] == ["report:3", "report:1"]
            status, page, _ = await api.call("GET", "/upstream/exchanges?direction=down")
            assert page["total"] == 1
            status, body, _ = await api.call("GET", "/upstream/exchanges?direction=sideways")
            assert_problem(status, body, 422, "direction")
            status, out, _ = await api.call("GET", "/upstream/outbox")
            assert status == 200, out
            assert (out["pending"], out["sent"], out["failed"]) == (1, 1, 2)
            assert out["next"]["key"] == "play:s1:C01" and out["next"]["attempts"] == 3
            assert datetime.fromisoformat(out["next"]["next_attempt_at"]) == due
            assert [r["key"] for r in out["failed_rows"]] == ["report:a", "report:b"]
            assert out["failed_rows"][0]["last_error"] == "bad period"
            assert out["last_exchange"]["kind"] == "pull" and out["enabled"] is False
            status, body, _ = await api.call("POST", "/upstream/outbox/retry", {})
            assert_problem(status, body, 403)
        async with client(station, operator) as api:
            failed = out["failed_rows"][0]["id"]
            status, body, _ = await api.call("POST", "/upstream/outbox/retry", {"ids": [failed]})
            assert status == 200 and body == {"requeued": 1, "hastened": 0}
            status, out, _ = await api.call("GET", "/upstream/outbox")
            assert (out["pending"], out["failed"]) == (2, 1)
            assert out["next"]["key"] == "report:a"  # back in the queue, in id order
            status, body, _ = await api.call("POST", "/upstream/outbox/retry", {})
            assert body == {"requeued": 1, "hastened": 1}  # and the backoff of play:s1:C01 ends
            status, body, _ = await api.call("POST", "/upstream/outbox/retry", {"ids": ["x"]})
            assert_problem(status, body, 422, "ids.0")
        async with sessions() as db:
            rows = (await db.exec(select(OutboxMessage).order_by(col(OutboxMessage.id)))).all()
        assert [r.status for r in rows] == ["sent", "pending", "pending", "pending"]
        assert rows[1].attempts == 0 and rows[3].attempts == 3
        assert rows[3].next_attempt_at < due
        audits = await _actions(station, "upstream.retry")
        assert [a.details["requeued"] for a in audits] == [1, 1]


async def test_the_running_station_places_unattended_priority_bulletins(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str
) -> None:
    settings = settings_for(tmp_path, mqtt_url, database_url, station_id)
    async with running(settings) as station:
        upstream = station.app[keys.UPSTREAM]
        assert "upstream-auto-place" in [t.get_name() for t in upstream.tasks]
        await register_clusters(station.app[keys.SESSIONS], [(c, c) for c in CLUSTERS])
        media_id = await _audio(station, tmp_path, 3.0)
        ident = await _bulletin(
            station, "QNA-9", BulletinClass.PRIORITY, BulletinStatus.PROPOSED, media_id
        )
        now = datetime.now(UTC)
        assert await upstream.auto_place(now + timedelta(minutes=29)) == []
        [placed] = await upstream.auto_place(now + timedelta(minutes=31))
        assert placed.id == ident and placed.decided_by == "system"
        async with station.app[keys.SESSIONS]() as db:
            message = (
                await db.exec(
                    select(OutboxMessage).where(OutboxMessage.key == "bulletin:QNA-9:scheduled")
                )
            ).one()
        assert message.payload["details"]["auto"] is True
        assert message.payload["details"]["mode"] == "session"  # no programme on those clusters
