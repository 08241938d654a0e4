"""Emergency broadcasts over the API: roles, the two-person rule, airing on simulated clusters,
stop, and the audit trail."""

from __future__ import annotations

import asyncio
from pathlib import Path

from api_support import PASSWORD, assert_problem, client, running, settings_for, user_with_token
from sqlmodel import select

from simulator import SimulatedFleet
from station import _keys as keys
from station._services import add_media, register_clusters
from station.app import RunningStation
from station.db import AuditEntry, PlayRecord, PlayRecordStatus, Role
from station.media import synthesize_programme

CLUSTERS = ["E1", "E2"]
STARTED = {PlayRecordStatus.STARTED, PlayRecordStatus.FINISHED}


async def _prepare(station: RunningStation, tmp_path: Path) -> int:
    app = station.app
    sessions = app[keys.SESSIONS]
    await register_clusters(sessions, [(cid, cid) for cid in CLUSTERS])
    app[keys.GATEWAY].remember(CLUSTERS)
    source = tmp_path / "alert.wav"
    await synthesize_programme(source, 30.0)
    item, _ = await add_media(
        sessions, app[keys.MEDIA_STORE], app[keys.MEDIA_WORKER], app[keys.SETTINGS], source, "Bão"
    )
    assert item.id is not None
    return item.id


async def _statuses(station: RunningStation, session_id: str) -> dict[str, PlayRecordStatus]:
    async with station.app[keys.SESSIONS]() as db:
        rows = await db.exec(select(PlayRecord).where(PlayRecord.session_id == session_id))
        return {r.cluster_id: r.status for r in rows}


async def _audit(station: RunningStation, action: str) -> list[AuditEntry]:
    async with station.app[keys.SESSIONS]() as db:
        return list((await db.exec(select(AuditEntry).where(AuditEntry.action == action))).all())


async def test_roles_validation_start_list_stop_and_audit(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str
) -> None:
    settings = settings_for(tmp_path, mqtt_url, database_url, station_id)
    async with running(settings) as station:
        media_id = await _prepare(station, tmp_path)
        viewer = await user_with_token(station, "view1", Role.VIEWER)
        tech = await user_with_token(station, "tech1", Role.TECHNICIAN)
        bcast = await user_with_token(station, "bcast1", Role.BROADCASTER)
        body = {"targets": {"all": True}, "media_id": media_id, "volume": 90}
        async with client(station) as anon:
            status, problem, _ = await anon.call("POST", "/emergency", body)
            assert_problem(status, problem, 401)
            status, problem, _ = await anon.call("GET", "/emergency")
            assert_problem(status, problem, 401)
        for token in (viewer, tech):
            async with client(station, token) as api:
                status, problem, _ = await api.call("POST", "/emergency", body)
                assert_problem(status, problem, 403)
                status, problem, _ = await api.call("DELETE", "/emergency/e123")
                assert_problem(status, problem, 403)
        async with client(station, bcast) as api:
            bad = {"targets": {"all": True}, "media_id": media_id, "live": True}
            status, problem, _ = await api.call("POST", "/emergency", bad)
            assert_problem(status, problem, 422, "live")
            bad = {"targets": {}, "media_id": media_id}
            status, problem, _ = await api.call("POST", "/emergency", bad)
            assert_problem(status, problem, 422, "targets")
            bad = {"targets": {"clusters": ["NOPE"]}, "media_id": media_id}
            status, problem, _ = await api.call("POST", "/emergency", bad)
            assert_problem(status, problem, 422, "targets")
            bad = {"targets": {"all": True}, "media_id": 999999}
            status, problem, _ = await api.call("POST", "/emergency", bad)
            assert_problem(status, problem, 422, "media_id")
            bad = {"targets": {"all": True}, "media_id": media_id, "repeat": 99}
            status, problem, _ = await api.call("POST", "/emergency", bad)
            assert_problem(status, problem, 422, "repeat")

            async with SimulatedFleet(station.runtime.mqtt_url, station_id, CLUSTERS) as fleet:
                status, out, _ = await api.call("POST", "/emergency", body)
                assert status == 201, out
                assert out["active"] and out["volume"] == 90 and out["triggered_by"] == "bcast1"
                assert sorted(out["clusters"]) == CLUSTERS
                async with asyncio.timeout(30):
                    while True:
                        if not set((await _statuses(station, out["id"])).values()) - STARTED:
                            break
                        await asyncio.sleep(0.1)
                assert all(fleet.clusters[c] is not None for c in CLUSTERS)
                status, listed, _ = await api.call("GET", "/emergency")
                assert status == 200
                assert [e["id"] for e in listed["active"]] == [out["id"]]
                assert listed["recent"][0]["id"] == out["id"]

                status, problem, _ = await api.call("DELETE", "/emergency/e-none")
                assert_problem(status, problem, 404)
                status, _, _ = await api.call("DELETE", f"/emergency/{out['id']}")
                assert status == 204
                async with asyncio.timeout(30):
                    while True:
                        status, listed, _ = await api.call("GET", "/emergency")
                        if listed["recent"][0]["status"] == "done":
                            break
                        await asyncio.sleep(0.1)
                assert listed["active"] == []
                assert listed["recent"][0]["stopped_by"] == "bcast1"
        started = await _audit(station, "emergency.start")
        stopped = await _audit(station, "emergency.stop")
        assert [e.target for e in started] == [f"emergency:{out['id']}"]
        assert started[0].actor.startswith("bcast1") and started[0].details["volume"] == 90
        assert [e.target for e in stopped] == [f"emergency:{out['id']}"]
        assert stopped[0].actor.startswith("bcast1")


async def test_two_person_rule(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str
) -> None:
    settings = settings_for(tmp_path, mqtt_url, database_url, station_id, emergency_two_person=True)
    async with running(settings) as station:
        media_id = await _prepare(station, tmp_path)
        bcast = await user_with_token(station, "bcast1", Role.BROADCASTER)
        await user_with_token(station, "lead1", Role.APPROVER)
        await user_with_token(station, "tech1", Role.TECHNICIAN)
        body = {"targets": {"clusters": ["E1"]}, "media_id": media_id}
        async with client(station, bcast) as api:
            for second in (
                {},
                {"second_username": "lead1", "second_password": "wrong password"},
                {"second_username": "bcast1", "second_password": PASSWORD},  # oneself
                {"second_username": "tech1", "second_password": PASSWORD},  # no permission
            ):
                status, problem, _ = await api.call("POST", "/emergency", body | second)
                assert_problem(status, problem, 403)
                assert problem["title"] == "Second person required"
            assert await _audit(station, "emergency.start") == []
            second = {"second_username": "lead1", "second_password": PASSWORD}
            status, out, _ = await api.call("POST", "/emergency", body | second)
            assert status == 201, out
            assert out["triggered_by"] == "bcast1 + lead1"
            status, _, _ = await api.call("DELETE", f"/emergency/{out['id']}")
            assert status == 204
        (entry,) = await _audit(station, "emergency.start")
        assert entry.details["second_username"] == "lead1"
        assert entry.details["second_user_id"] is not None
        assert len(await _audit(station, "emergency.stop")) == 1
