"""Villages, zones, coverage and the CSV import over the API: roles (401/403), validation naming
the field (422), lost updates (412), zone members, dry runs and the per-row report, audit; and the
login throttle kept in the database (it survives a second app on the same database)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from api_support import (
    PASSWORD,
    assert_problem,
    client,
    running,
    settings_for,
    user_with_token,
)
from sqlmodel import select

from station import _keys as keys
from station.api import create_user
from station.config import Settings
from station.db import AuditEntry, Cluster, ClusterStatus, Role, Village
from station.db.models_accounts import LoginFailure
from station.db.models_fleet import ClusterStatusChange


@pytest.fixture
def settings(tmp_path: Path, mqtt_url: str, database_url: str, station_id: str) -> Settings:
    return settings_for(tmp_path, mqtt_url, database_url, station_id)


CSV = {"Content-Type": "text/csv; charset=utf-8"}


async def test_roles_and_validation(settings: Settings) -> None:
    async with running(settings) as station:
        viewer = await user_with_token(station, "viewer1", Role.VIEWER)
        tech = await user_with_token(station, "tech1", Role.TECHNICIAN)
        async with client(station) as anon:
            for method, path in (("GET", "/villages/V1"), ("PATCH", "/villages/V1"),
                                 ("GET", "/zones/z"), ("DELETE", "/zones/z/clusters/C1"),
                                 ("POST", "/fleet/import")):  # fmt: skip
                status, body, _ = await anon.call(method, path)
                assert_problem(status, body, 401)
        async with client(station, tech) as api:
            status, body, _ = await api.call("POST", "/villages", {"id": "V1", "name": "Thôn 1"})
            assert status == 201 and body["id"] == "V1"
        async with client(station, viewer) as api:
            status, body, _ = await api.call("GET", "/villages/V1")
            assert status == 200 and body["name"] == "Thôn 1"
            for method, path, json in (("PATCH", "/villages/V1", {"name": "x"}),
                                       ("POST", "/zones", {"id": "z"}),
                                       ("PATCH", "/zones/z", {"name": "x"}),
                                       ("DELETE", "/zones/z/clusters/C1", None)):  # fmt: skip
                status, body, _ = await api.call(method, path, json)
                assert_problem(status, body, 403)
            status, body, _ = await api.call(
                "POST", "/fleet/import?kind=villages", data=b"id,name\nV2,Hai\n", headers=CSV
            )
            assert_problem(status, body, 403)
        async with client(station, tech) as api:
            bad: list[tuple[dict[str, Any], str]] = [
                ({"name": ""}, "name"),
                ({"households": -1}, "households"),
                ({"lat": 91, "lon": 1}, "lat"),
                ({"lat": 20.0}, "lon"),
                ({"colour": "red"}, "colour"),
            ]
            for json, field in bad:
                status, body, _ = await api.call("PATCH", "/villages/V1", json)
                assert_problem(status, body, 422, field=field)
            status, body, _ = await api.call("POST", "/villages", {"id": "bad id", "name": "x"})
            assert_problem(status, body, 422, field="id")
            status, body, _ = await api.call("GET", "/villages/V404")
            assert_problem(status, body, 404)
            status, body, _ = await api.call("PATCH", "/zones/nope", {"name": "x"})
            assert_problem(status, body, 404)


async def test_edit_with_etags_and_zone_members(settings: Settings) -> None:
    async with running(settings) as station:
        token = await user_with_token(station, "tech1", Role.TECHNICIAN)
        async with client(station, token) as api:
            status, body, response = await api.call(
                "POST", "/villages", {"id": "V1", "name": "Thôn Đông", "households": 80}
            )
            assert status == 201 and response.headers["ETag"]
            status, body, response = await api.call("GET", "/villages/V1")
            etag = response.headers["ETag"]
            status, body, response = await api.call(
                "PATCH", "/villages/V1", {"households": 95, "lat": 21.1, "lon": 105.7},
                headers={"If-Match": etag},
            )  # fmt: skip
            assert status == 200 and body["households"] == 95 and body["lat"] == 21.1, body
            assert body["name"] == "Thôn Đông" and response.headers["ETag"] != etag
            status, body, _ = await api.call(
                "PATCH", "/villages/V1", {"name": "Thôn Tây"}, headers={"If-Match": etag}
            )
            assert_problem(status, body, 412)
            assert body["current_etag"]
            status, body, _ = await api.call(
                "PATCH", "/villages/V1", {"lat": None, "lon": None, "note": None}
            )
            assert status == 200 and body["lat"] is None and body["households"] == 95
            assert body["note"] == ""

            status, body, _ = await api.call("POST", "/zones", {"id": "river", "name": "Sông"})
            assert status == 201 and body["clusters"] == []
            for cid in ("C1", "C2"):
                status, body, _ = await api.call("POST", "/fleet/clusters", {"id": cid})
                assert status == 201
            status, body, _ = await api.call(
                "POST", "/zones/river/clusters", {"cluster_ids": ["C2", "C1"]}
            )
            assert status == 200 and sorted(body["added"]) == ["C1", "C2"]
            status, body, _ = await api.call(
                "POST", "/zones/river/clusters", {"cluster_ids": ["C9"]}
            )
            assert_problem(status, body, 422, field="cluster_ids")
            assert "C9" in body["detail"]
            status, body, response = await api.call("GET", "/zones/river")
            assert body["clusters"] == ["C1", "C2"]
            etag = response.headers["ETag"]
            status, body, _ = await api.call("DELETE", "/zones/river/clusters/C1")
            assert status == 204
            status, body, _ = await api.call("DELETE", "/zones/river/clusters/C1")
            assert_problem(status, body, 404)
            status, body, _ = await api.call(
                "PATCH", "/zones/river", {"name": "Ven sông"}, headers={"If-Match": etag}
            )
            assert_problem(status, body, 412)  # its members changed since that read
            status, body, response = await api.call("GET", "/zones/river")
            status, body, _ = await api.call(
                "PATCH", "/zones/river", {"name": "Ven sông"},
                headers={"If-Match": response.headers["ETag"]},
            )  # fmt: skip
            assert status == 200 and body == {"id": "river", "name": "Ven sông", "clusters": ["C2"]}
            status, body, _ = await api.call("GET", "/zones")
            assert body["total"] == 1 and body["items"][0]["clusters"] == ["C2"]

        async with station.app[keys.SESSIONS]() as db:
            actions = set((await db.exec(select(AuditEntry.action))).all())
        for action in ("village.create", "village.update", "zone.create", "zone.assign",
                       "zone.remove", "zone.update"):  # fmt: skip
            assert action in actions, action


async def test_import_report_dry_run_and_coverage(settings: Settings) -> None:
    villages_csv = "id,name,households\nV1,Thôn Một,40\nV2,,10\nV3,Thôn Ba,x\nV4,Thôn Bốn,\n"
    clusters_csv = "id,kind,village,status\nK1,ict,V1,\nK2,ict,V4,faulty\nK3,fm,V1,\n"
    async with running(settings) as station:
        token = await user_with_token(station, "tech1", Role.TECHNICIAN)
        async with client(station, token) as api:
            status, body, _ = await api.call(
                "POST", "/fleet/import?kind=villages&dry_run=true", data=villages_csv.encode(),
                headers=CSV,
            )  # fmt: skip
            assert status == 200 and body["dry_run"] is True, body
            assert body["imported"] == ["V1", "V4"] and body["errors"] == 2
            bad = {r["line"]: r for r in body["rows"] if r["error"]}
            assert set(bad) == {3, 4} and "name" in bad[3]["error"] and bad[4]["id"] == "V3"
            async with station.app[keys.SESSIONS]() as db:
                assert (await db.exec(select(Village))).all() == []  # nothing written

            form = aiohttp.FormData()
            form.add_field("file", villages_csv.encode(), filename="v.csv", content_type="text/csv")
            status, body, _ = await api.call("POST", "/fleet/import?kind=villages", data=form)
            assert status == 200 and body["dry_run"] is False and body["imported"] == ["V1", "V4"]
            assert [r["line"] for r in body["rows"] if r["error"]] == [3, 4]

            status, body, _ = await api.call(
                "POST", "/fleet/import?kind=clusters&dry_run=true", data=clusters_csv.encode(),
                headers=CSV,
            )  # fmt: skip
            assert body["imported"] == ["K1", "K2"] and body["rows"][2]["line"] == 4, body
            assert "bridge" in body["rows"][2]["error"]
            async with station.app[keys.SESSIONS]() as db:
                assert (await db.exec(select(Cluster))).all() == []
            status, body, _ = await api.call(
                "POST", "/fleet/import?kind=clusters", data=clusters_csv.encode(), headers=CSV
            )
            assert body["imported"] == ["K1", "K2"] and body["errors"] == 1
            async with station.app[keys.SESSIONS]() as db:
                k2 = await db.get(Cluster, "K2")
            assert k2 is not None and k2.status == ClusterStatus.FAULTY

            status, body, _ = await api.call("GET", "/fleet/coverage")
            assert status == 200 and (body["covered"], body["uncovered"]) == (1, 1), body
            status, body, _ = await api.call("GET", "/fleet/coverage?uncovered=true")
            assert [v["village_id"] for v in body["villages"]] == ["V4"]
            assert body["villages"][0]["not_working"] == ["K2"]

            cases: tuple[tuple[Any, dict[str, str], int, str | None], ...] = (
                (b"id,colour\nV9,red\n", CSV, 422, "file"),
                (b"\xff\xfe", CSV, 422, "file"),
                (b"id,name\nV9,a\x00b\n", CSV, 422, "file"),
                (b"{}", {"Content-Type": "application/json"}, 415, None),
                (io.BytesIO(b"x" * (2 * 1024 * 1024 + 1)), CSV, 413, None),
            )
            for data, headers, expected, field in cases:
                status, body, _ = await api.call(
                    "POST", "/fleet/import?kind=villages", data=data, headers=headers
                )
                assert_problem(status, body, expected, field=field)
            status, body, _ = await api.call(
                "POST", "/fleet/import?kind=zones", data=b"id\n", headers=CSV
            )
            assert_problem(status, body, 422, field="kind")

        async with station.app[keys.SESSIONS]() as db:
            imports = (
                await db.exec(select(AuditEntry).where(AuditEntry.action == "village.import"))
            ).all()
        assert len(imports) == 1 and imports[0].details == {"imported": 2, "errors": 2}


async def test_login_throttle_is_kept_in_the_database(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str
) -> None:
    """Failures counted by one station process lock the user out in the next one."""
    settings = settings_for(
        tmp_path, mqtt_url, database_url, station_id,
        login_max_failures=3, login_lockout_s=600, login_backoff_max_s=3600,
    )  # fmt: skip
    async with running(settings) as first:
        await create_user(first.app[keys.SESSIONS], "lan", Role.BROADCASTER, PASSWORD)
        async with client(first) as web:
            for _ in range(3):
                status, body = await web.login("lan", "wrong password")
                assert_problem(status, body, 401)
    async with running(settings) as second:  # a restart, or another process
        async with client(second) as web:
            status, body = await web.login("lan")  # the right password does not help
            assert_problem(status, body, 429)
            assert 500 < int(body["detail"].split("wait ")[1].split(" ")[0]) <= 600
            status, _, response = await web.call(
                "POST", "/auth/login", {"username": "lan", "password": PASSWORD}
            )
            assert status == 429 and 500 < int(response.headers["Retry-After"]) <= 600
        async with second.app[keys.SESSIONS]() as db:
            entries = (await db.exec(select(AuditEntry.action))).all()
            failures = (await db.exec(select(LoginFailure))).all()
        assert entries.count("login.throttled") == 2 and entries.count("login.failed") == 3
        assert sorted({f.key for f in failures}) == ["ip:127.0.0.1", "user:lan"]
        # the window slides past old failures: pretend they are older than login_window_s
        async with second.app[keys.SESSIONS]() as db:
            for failure in failures:
                failure.at = failure.at.replace(year=failure.at.year - 1)
                db.add(failure)
            await db.commit()
        async with client(second) as web:
            status, body = await web.login("lan")
            assert status == 200, body  # and a success clears the key
        async with second.app[keys.SESSIONS]() as db:
            assert (await db.exec(select(LoginFailure))).all() == []


async def test_import_takes_a_text_csv_body_or_a_multipart_file(settings: Settings) -> None:
    async with running(settings) as station:
        token = await user_with_token(station, "tech1", Role.TECHNICIAN)
        async with client(station, token) as api:
            _, doc, _ = await api.call("GET", "/api/openapi.json")
            body_doc = doc["paths"]["/api/v1/fleet/import"]["post"]["requestBody"]
            content = body_doc["content"]
            assert set(content) == {"multipart/form-data", "text/csv", "application/csv",
                                    "text/plain"}  # fmt: skip
            form_schema = content["multipart/form-data"]["schema"]
            assert form_schema["required"] == ["file"]
            assert form_schema["properties"] == {
                "file": {"type": "string", "contentMediaType": "text/csv"}
            }
            assert content["text/csv"]["schema"] == {"type": "string"}

            raw = "id,name\nV1,Thôn Một\nV2,\n"
            status, body, _ = await api.call(
                "POST", "/fleet/import?kind=villages", data=raw.encode(),
                headers={"Content-Type": "text/csv"},
            )  # fmt: skip
            assert status == 200 and body["imported"] == ["V1"], body
            assert [(r["line"], r["id"]) for r in body["rows"] if r["error"]] == [(3, "V2")]

            form = aiohttp.FormData()
            clusters = "id,village\nK1,V1\nK2,NOPE\n"
            form.add_field("file", clusters.encode(), filename="c.csv", content_type="text/csv")
            status, body, _ = await api.call("POST", "/fleet/import?kind=clusters", data=form)
            assert status == 200 and body["imported"] == ["K1"] and body["errors"] == 1, body

            for ctype in ("application/json", "application/x-www-form-urlencoded"):
                status, body, resp = await api.call(
                    "POST", "/fleet/import?kind=villages", data=b"id,name\nV3,x\n",
                    headers={"Content-Type": ctype},
                )  # fmt: skip
                assert_problem(status, body, 415)
                assert resp.content_type == "application/problem+json"
                assert "text/csv" in body["detail"] and "multipart" in body["detail"]
        async with station.app[keys.SESSIONS]() as db:
            assert await db.get(Village, "V3") is None
            assert await db.get(Cluster, "K1") is not None
            history = (await db.exec(select(ClusterStatusChange))).all()
        assert [(h.cluster_id, h.from_status, h.to_status, h.reason) for h in history] == [
            ("K1", None, ClusterStatus.REGISTERED, "registered by CSV import")
        ]
