"""The fleet registry over the API: villages, zones, register/replace/retire/move, CSV import,
coverage, alerts and identify; roles, audit and problem+json."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from api_support import assert_problem, client, running, settings_for, user_with_token
from sqlmodel import select

from station import _keys as keys
from station.config import Settings
from station.db import Alert, AlertKind, AuditEntry, Role


@pytest.fixture
def settings(tmp_path: Path, mqtt_url: str, database_url: str, station_id: str) -> Settings:
    return settings_for(tmp_path, mqtt_url, database_url, station_id)


def _csv(text: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("file", text.encode(), filename="f.csv", content_type="text/csv")
    return form


async def test_auth_and_roles(settings: Settings) -> None:
    async with running(settings) as station:
        viewer = await user_with_token(station, "viewer1", Role.VIEWER)
        async with client(station) as anon:
            status, body, _ = await anon.call("GET", "/villages")
            assert_problem(status, body, 401)
        async with client(station, viewer) as api:
            status, body, _ = await api.call("GET", "/villages")
            assert status == 200 and body["total"] == 0
            status, body, _ = await api.call("POST", "/villages", {"id": "V1", "name": "Thôn 1"})
            assert_problem(status, body, 403)
            status, body, _ = await api.call("POST", "/fleet/clusters", {"id": "C1"})
            assert_problem(status, body, 403)
            for path in ("/zones", "/fleet/coverage", "/alerts?state=all"):
                status, body, _ = await api.call("GET", path)
                assert status == 200, (path, body)


async def test_lifecycle(settings: Settings) -> None:
    async with running(settings) as station:
        token = await user_with_token(station, "tech1", Role.TECHNICIAN)
        async with client(station, token) as api:
            v1 = {"id": "V1", "name": "Thôn Đông", "households": 120, "lat": 21.0, "lon": 105.8}
            status, body, _ = await api.call("POST", "/villages", v1)
            assert status == 201 and body["name"] == "Thôn Đông", body
            status, body, _ = await api.call("POST", "/villages", v1)
            assert_problem(status, body, 409)
            status, body, _ = await api.call("POST", "/villages", {"id": "V2", "name": ""})
            assert_problem(status, body, 422, field="name")
            status, body, _ = await api.call("POST", "/villages", {"id": "V2", "name": "Tây"})
            assert status == 201
            status, body, _ = await api.call("POST", "/zones", {"id": "river", "name": "Ven sông"})
            assert status == 201 and body["id"] == "river"

            status, body, _ = await api.call(
                "POST", "/fleet/clusters", {"id": "C1", "village_id": "V1", "zones": ["river"]}
            )
            assert status == 201, body
            bundle = body["bundle"]
            assert bundle["username"] == "C1" and len(bundle["password"]) >= 16
            assert body["cluster"]["status"] == "provisioned"
            status, body, _ = await api.call("POST", "/fleet/clusters", {"id": "C1"})
            assert_problem(status, body, 409)
            status, body, _ = await api.call("POST", "/fleet/clusters", {"id": "C9", "kind": "x"})
            assert_problem(status, body, 422, field="kind")
            status, body, _ = await api.call(
                "POST", "/fleet/clusters", {"id": "C9", "village_id": "V404"}
            )
            assert_problem(status, body, 422)
            assert "V404" in body["detail"]
            # the password is never readable again
            status, body, _ = await api.call("GET", "/clusters/C1")
            assert status == 200 and "password" not in body and "credential_hash" not in body

            status, body, _ = await api.call("POST", "/fleet/clusters", {"id": "C2"})
            assert status == 201
            status, body, _ = await api.call(
                "POST", "/zones/river/clusters", {"cluster_ids": ["C2", "C1"]}
            )
            assert status == 200 and body["added"] == ["C2"], body
            assign = {"cluster_ids": ["C2"]}
            status, body, _ = await api.call("POST", "/zones/nope/clusters", assign)
            assert_problem(status, body, 404)
            status, body, _ = await api.call(
                "POST", "/zones/river/clusters", {"cluster_ids": ["C404"]}
            )
            assert_problem(status, body, 422)

            status, body, _ = await api.call("POST", "/clusters/C2/move", {"village_id": "V2"})
            assert status == 200 and body["village_id"] == "V2", body
            status, body, _ = await api.call("POST", "/clusters/C2/move", {"lat": 21.0})
            assert_problem(status, body, 422)
            status, body, _ = await api.call("POST", "/clusters/C404/move", {"village_id": "V2"})
            assert_problem(status, body, 404)

            status, body, _ = await api.call("POST", "/clusters/C1/replace", {"id": "C1b"})
            assert status == 201, body
            assert body["cluster"]["village_id"] == "V1" and body["bundle"]["password"]
            status, body, _ = await api.call("GET", "/clusters/C1")
            assert body["status"] == "retired"
            status, body, _ = await api.call("POST", "/clusters/C1/replace", {"id": "C1c"})
            assert_problem(status, body, 422)
            status, body, _ = await api.call("POST", "/clusters/C1b/replace", {"id": "C2"})
            assert_problem(status, body, 409)

            status, body, _ = await api.call("POST", "/clusters/C2/retire")
            assert status == 200 and body["status"] == "retired"
            status, body, _ = await api.call("POST", "/clusters/C2/retire")
            assert_problem(status, body, 422)

            status, body, _ = await api.call("GET", "/fleet/coverage")
            assert status == 200 and body["covered"] == 1 and body["uncovered"] == 1, body
            v1_row = next(v for v in body["villages"] if v["village_id"] == "V1")
            assert v1_row["working"] == ["C1b"] and v1_row["lat"] == 21.0

            status, body, _ = await api.call("POST", "/clusters/C1b/identify", {"seconds": 3})
            assert status == 202 and body["command_id"].startswith("identify-"), body
            status, body, _ = await api.call("POST", "/clusters/C2/identify", {})
            assert_problem(status, body, 409)
            status, body, _ = await api.call("POST", "/clusters/C1b/identify", {"seconds": 99})
            assert_problem(status, body, 422, field="seconds")

        async with station.app[keys.SESSIONS]() as db:
            actions = set((await db.exec(select(AuditEntry.action))).all())
        for action in ("village.create", "zone.create", "zone.assign", "cluster.register",
                       "cluster.move", "cluster.replace", "cluster.retire",
                       "cluster.identify"):  # fmt: skip
            assert action in actions, action


async def test_import_and_alerts(settings: Settings) -> None:
    async with running(settings) as station:
        token = await user_with_token(station, "tech1", Role.TECHNICIAN)
        async with client(station, token) as api:
            status, body, _ = await api.call(
                "POST", "/fleet/import?kind=villages", data=_csv("id,name\nV1,Một\nV2,\n")
            )
            assert status == 200 and body["imported"] == ["V1"] and body["errors"] == 1, body
            assert body["rows"][1]["line"] == 3 and body["rows"][1]["error"]
            status, body, _ = await api.call(
                "POST",
                "/fleet/import",
                data=_csv("id,kind,village\nK1,ict,V1\nK2,fm,V1\nbad id,ict,\n"),
            )
            assert status == 200 and body["imported"] == ["K1"] and body["errors"] == 2, body
            status, body, _ = await api.call(
                "POST", "/fleet/import", data=_csv("id,colour\nK3,red\n")
            )
            assert_problem(status, body, 422)
            status, body, _ = await api.call("POST", "/fleet/import", json={"file": "x"})
            assert_problem(status, body, 415)
            status, body, _ = await api.call("POST", "/fleet/import?kind=zones", data=_csv("id\n"))
            assert_problem(status, body, 422, field="kind")

            async with station.app[keys.SESSIONS]() as db:
                db.add(Alert(cluster_id="K1", kind=AlertKind.OFFLINE, detail="no heartbeat"))
                await db.commit()
            status, body, _ = await api.call("GET", "/alerts")
            assert status == 200 and body["total"] == 1 and body["items"][0]["kind"] == "offline"
            status, body, _ = await api.call("GET", "/alerts?cluster_id=K9&state=all")
            assert status == 200 and body["total"] == 0
            status, body, _ = await api.call("GET", "/alerts?state=closed")
            assert_problem(status, body, 422, field="state")
