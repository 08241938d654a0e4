"""The resource endpoints against a running station: clusters, media, programmes, schedules,
approvals, plays, stats, users; validation, size limits, lost updates."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from api_support import assert_problem, client, running, settings_for, user_with_token

from station import _keys as keys
from station.app import RunningStation
from station.config import Settings
from station.db import (
    PlayRecord,
    PlayRecordStatus,
    PlaySession,
    Role,
)
from station.media import synthesize_programme
from tests.db_support import library_rows


@pytest.fixture
def settings(tmp_path: Path, mqtt_url: str, database_url: str, station_id: str) -> Settings:
    return settings_for(tmp_path, mqtt_url, database_url, station_id, media={"max_upload_mb": 1})


async def _media(station: RunningStation, n: int = 1) -> list[int]:
    """Library rows without running ffmpeg (the upload test covers the real pipeline)."""
    titles = [f"Bản tin {i}" for i in range(n)]
    return await library_rows(station.app[keys.SESSIONS], titles, 30_000, 90_000, 100)


def _soon(minutes: int = 60) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()


async def test_clusters(settings: Settings) -> None:
    async with running(settings) as station:
        token = await user_with_token(station, "tech1", Role.TECHNICIAN)
        async with client(station, token) as api:
            for cid in ["C01", "C02", "X03"]:
                status, body, _ = await api.call("POST", "/clusters", {"id": cid, "name": cid})
                assert status == 201 and body["status"] == "registered", body
            status, body, _ = await api.call("POST", "/clusters", {"id": "C01"})
            assert_problem(status, body, 409)
            status, body, _ = await api.call("POST", "/clusters", {"id": "bad id!"})
            assert_problem(status, body, 422, field="id")
            status, body, _ = await api.call("POST", "/clusters", {"id": "C5", "colour": 1})
            assert_problem(status, body, 422, field="colour")

            status, page, _ = await api.call("GET", "/clusters?limit=2")
            assert status == 200 and page["total"] == 3 and len(page["items"]) == 2
            status, page, _ = await api.call("GET", "/clusters?limit=2&offset=2")
            assert [c["id"] for c in page["items"]] == ["X03"]
            status, page, _ = await api.call("GET", "/clusters?q=c0&online=false")
            assert [c["id"] for c in page["items"]] == ["C01", "C02"]
            status, body, _ = await api.call("GET", "/clusters?limit=0")
            assert_problem(status, body, 422, field="limit")
            status, body, _ = await api.call("GET", "/clusters?status=lost")
            assert_problem(status, body, 422, field="status")
            status, body, _ = await api.call("GET", "/clusters?colour=red")
            assert_problem(status, body, 422, field="colour")

            status, body, response = await api.call("GET", "/clusters/C02")
            assert status == 200 and body["name"] == "C02" and response.headers["ETag"]
            status, body, _ = await api.call("GET", "/clusters/C99")
            assert_problem(status, body, 404)


async def test_media_upload_limits_rejections_and_success(
    settings: Settings, tmp_path: Path
) -> None:
    async with running(settings) as station:
        token = await user_with_token(station, "bt1", Role.BROADCASTER)
        async with client(station, token) as api:

            def form(data: bytes, name: str = "a.wav", title: str = "") -> aiohttp.FormData:
                f = aiohttp.FormData()
                if title:
                    f.add_field("title", title)
                f.add_field("file", io.BytesIO(data), filename=name, content_type="audio/wav")
                return f

            big = b"\0" * (settings.media.max_upload_mb * 1024 * 1024 + 200_000)
            status, body, _ = await api.call("POST", "/media", data=form(big))
            assert_problem(status, body, 413)
            status, body, _ = await api.call("POST", "/media", data=form(b"not audio at all"))
            assert_problem(status, body, 422)
            assert body["reason"] == "not_audio", body
            status, body, _ = await api.call("POST", "/media", data=form(b""))
            assert_problem(status, body, 422, field="file")
            status, body, _ = await api.call("POST", "/media", json={"file": "x"})
            assert_problem(status, body, 415)

            source = tmp_path / "tin.wav"
            await synthesize_programme(source, 2.0)
            data = source.read_bytes()
            status, body, _ = await api.call("POST", "/media", data=form(data, title="Tin sáng"))
            assert status == 201 and body["created"] and body["title"] == "Tin sáng", body
            assert 1500 < body["duration_ms"] < 2500 and body["codec"] == "opus"
            status, again, _ = await api.call("POST", "/media", data=form(data))
            assert status == 201 and not again["created"] and again["id"] == body["id"]

            status, page, _ = await api.call("GET", "/media?q=sáng")
            assert status == 200 and [m["id"] for m in page["items"]] == [body["id"]]
            status, one, _ = await api.call("GET", f"/media/{body['id']}")
            assert status == 200 and one["sha256"] == body["sha256"]
            assert (settings.media.dir / "incoming").is_dir()
        assert not list((settings.media.dir / "incoming").iterdir())  # temp files cleaned


async def test_programmes_schedules_and_lost_updates(settings: Settings) -> None:
    async with running(settings) as station:
        token = await user_with_token(station, "bt1", Role.BROADCASTER)
        media = await _media(station, 2)
        async with client(station, token) as api:
            await api.call("POST", "/clusters", {"id": "C1"})  # 403 for a broadcaster
            station.app[keys.GATEWAY].remember(["C1"])
            status, body, _ = await api.call("POST", "/programmes", {"title": "", "media_ids": []})
            assert_problem(status, body, 422, field="title")
            assert "media_ids" in [e["field"] for e in body["errors"]]
            status, body, _ = await api.call(
                "POST", "/programmes", {"title": "Sáng", "media_ids": [media[0], 999]}
            )
            assert_problem(status, body, 422)
            assert "999" in body["detail"]
            status, prog, _ = await api.call(
                "POST", "/programmes", {"title": "Sáng", "media_ids": list(reversed(media))}
            )
            assert status == 201 and prog["media_ids"] == list(reversed(media)), prog
            assert prog["version"] == 1 and not prog["approved"]
            status, page, _ = await api.call("GET", "/programmes?q=sáng")
            assert page["total"] == 1
            assert (await api.call("GET", f"/programmes/{prog['id']}"))[0] == 200

            new = {"programme_id": prog["id"], "start_at": _soon(), "targets": {"all": True}}
            status, body, _ = await api.call(
                "POST", "/schedules", {**new, "start_at": "2030-01-01T06:00:00"}
            )
            assert_problem(status, body, 422, field="start_at")  # no time zone
            status, body, _ = await api.call(
                "POST", "/schedules", {**new, "start_at": "2020-01-01T06:00:00+07:00"}
            )
            assert_problem(status, body, 422, field="start_at")  # in the past
            status, body, _ = await api.call(
                "POST", "/schedules", {**new, "targets": {"all": True, "clusters": ["C1"]}}
            )
            assert_problem(status, body, 422, field="targets")
            status, body, _ = await api.call(
                "POST", "/schedules", {**new, "targets": {"clusters": ["C404"]}}
            )
            assert_problem(status, body, 422)
            status, sched, response = await api.call("POST", "/schedules", new)
            assert status == 201 and sched["status"] == "pending", sched
            etag = response.headers["ETag"]

            status, page, _ = await api.call(
                "GET", f"/schedules?status=pending&programme_id={prog['id']}"
            )
            assert [s["id"] for s in page["items"]] == [sched["id"]]
            status, page, _ = await api.call("GET", "/schedules", params={"start_from": _soon(120)})
            assert page["total"] == 0

            path = f"/schedules/{sched['id']}/cancel"
            status, body, _ = await api.call("POST", path, headers={"If-Match": '"stale"'})
            assert_problem(status, body, 412)
            assert body["current_etag"] == etag
            status, cancelled, _ = await api.call("POST", path, headers={"If-Match": etag})
            assert status == 200 and cancelled["status"] == "cancelled"
            status, body, _ = await api.call("POST", path, headers={"If-Match": etag})
            assert_problem(status, body, 412)  # it changed: the old ETag no longer matches
            status, body, _ = await api.call("POST", path)
            assert_problem(status, body, 409)
            assert (await api.call("GET", "/schedules/999"))[0] == 404


async def test_approval_workflow(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str
) -> None:
    settings = settings_for(tmp_path, mqtt_url, database_url, station_id, approval_required=True)
    async with running(settings) as station:
        bt = await user_with_token(station, "bt1", Role.BROADCASTER)
        lead = await user_with_token(station, "lead1", Role.APPROVER)
        media = await _media(station)
        async with client(station, bt) as api, client(station, lead) as leader:
            _, prog, _ = await api.call("POST", "/programmes", {"title": "T", "media_ids": media})
            new = {"programme_id": prog["id"], "start_at": _soon(), "targets": {"all": True}}
            status, body, _ = await api.call("POST", "/schedules", new)
            assert_problem(status, body, 409)
            assert body["title"] == "Approval required"

            approvals = f"/programmes/{prog['id']}/approvals"
            status, body, _ = await leader.call("POST", approvals, {"version": 2})
            assert_problem(status, body, 409)  # not the current version
            status, body, _ = await leader.call("POST", approvals, {"version": 1})
            assert status == 201 and body["approved_by_name"] == "lead1", body
            status, body, _ = await leader.call("POST", approvals, {"version": 1})
            assert_problem(status, body, 409)
            assert (await api.call("GET", f"/programmes/{prog['id']}"))[1]["approved"]
            assert (await api.call("POST", "/schedules", new))[0] == 201

            assert (await leader.call("DELETE", f"{approvals}/1"))[0] == 204
            assert (await leader.call("DELETE", f"{approvals}/1"))[0] == 404
            status, page, _ = await api.call("GET", approvals)
            assert page["items"] == []
            assert (await api.call("POST", "/schedules", new))[0] == 409


async def test_users_and_lost_update(settings: Settings) -> None:
    async with running(settings) as station:
        admin = await user_with_token(station, "root1", Role.ADMIN)
        async with client(station, admin) as api:
            status, body, _ = await api.call("POST", "/users", {"username": "A B", "role": "x"})
            assert_problem(status, body, 422, field="username")
            assert "role" in [e["field"] for e in body["errors"]]
            status, created, _ = await api.call(
                "POST", "/users", {"username": "nga", "role": "broadcaster"}
            )
            assert status == 201 and len(created["password"]) >= 12
            assert created["must_change_password"]
            status, body, _ = await api.call(
                "POST", "/users", {"username": "nga", "role": "viewer"}
            )
            assert_problem(status, body, 409)

            path = f"/users/{created['id']}"
            _, _, read = await api.call("GET", path)
            etag = read.headers["ETag"]
            status, one, _ = await api.call(
                "PATCH", path, {"display_name": "Chị Nga"}, headers={"If-Match": etag}
            )
            assert status == 200 and one["display_name"] == "Chị Nga" and one["version"] == 2
            status, body, _ = await api.call(
                "PATCH", path, {"role": "admin"}, headers={"If-Match": etag}
            )
            assert_problem(status, body, 412)  # someone else changed it first
            status, body, _ = await api.call("PATCH", path, {"role": "boss"})
            assert_problem(status, body, 422, field="role")

            status, page, _ = await api.call("GET", "/users?role=admin")
            root = next(u for u in page["items"] if u["username"] == "root1")
            others = [u for u in page["items"] if u["username"] != "root1"]
            for other in others:  # the first-start admin
                assert (await api.call("PATCH", f"/users/{other['id']}", {"disabled": True}))[0]
            status, body, _ = await api.call("PATCH", f"/users/{root['id']}", {"role": "viewer"})
            assert_problem(status, body, 409)  # the last active admin

            status, issued, _ = await api.call("POST", f"{path}/password", {})
            assert status == 200 and issued["password"]
            async with client(station) as nga:
                status, me = await nga.login("nga", issued["password"])
                assert status == 200 and me["must_change_password"]


async def test_plays_stats_and_body_limits(settings: Settings) -> None:
    async with running(settings) as station:
        token = await user_with_token(station, "viewer1", Role.VIEWER)
        admin = await user_with_token(station, "root1", Role.ADMIN)
        media = await _media(station)
        async with client(station, admin) as api:
            await api.call("POST", "/clusters", {"id": "C1"})
            _, prog, _ = await api.call("POST", "/programmes", {"title": "T", "media_ids": media})
            start = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)  # 06:30 on 2 March in Hà Nội
            async with station.app[keys.SESSIONS]() as db:
                db.add(
                    PlaySession(
                        id="s1",
                        programme_id=prog["id"],
                        start_at=start,
                        expires_at=start + timedelta(minutes=1),
                    )
                )
                await db.flush()
                db.add(
                    PlayRecord(
                        session_id="s1",
                        cluster_id="C1",
                        status=PlayRecordStatus.FINISHED,
                        scheduled_start=start,
                        skew_ms=12,
                    )
                )
                await db.commit()

            huge = {"title": "x" * (settings.auth.max_json_kb * 1024), "media_ids": media}
            status, body, _ = await api.call("POST", "/programmes", huge)
            assert_problem(status, body, 413)
            status, body, _ = await api.call(
                "POST",
                "/programmes",
                data=b"{not json",
                headers={"Content-Type": "application/json"},
            )
            assert_problem(status, body, 422)
            status, body, _ = await api.call(
                "POST", "/programmes", data=b"title=x", headers={"Content-Type": "text/plain"}
            )
            assert_problem(status, body, 415)

        async with client(station, token) as api:
            for query, expected in [
                ("", 1),
                ("?session_id=s1", 1),
                ("?cluster_id=C1&status=finished", 1),
                ("?date=2026-03-02", 1),  # the station's local day
                ("?date=2026-03-01", 0),
                ("?session_id=other", 0),
            ]:
                status, page, _ = await api.call("GET", f"/plays{query}")
                assert status == 200 and page["total"] == expected, (query, page)
            status, body, _ = await api.call("GET", "/plays?date=yesterday")
            assert_problem(status, body, 422, field="date")
            status, stats, _ = await api.call("GET", "/stats")
            assert status == 200 and stats["clusters_online"] == 0
            assert set(stats) >= {"commands_sent", "messages_received", "mqtt_reconnects"}
