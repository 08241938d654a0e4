"""What the CLI could do and the API now does too: media edit/delete/usage, reissued cluster
credentials (refused by the broker at once), the week-plan import, data use, cluster edits with
If-Match and the SIM phone number."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from api_support import assert_problem, client, running, settings_for, user_with_token
from broker_security import can_login
from sqlmodel import select

from devices import BrokerAddress
from station import _keys as keys
from station._registry import normalise_msisdn
from station.app import RunningStation
from station.cli import main as cli_main
from station.config import Settings
from station.db import AuditEntry, Cluster, DataUse, Role
from tests.db_support import library_rows


@pytest.fixture
def settings(tmp_path: Path, mqtt_url: str, database_url: str, station_id: str) -> Settings:
    return settings_for(tmp_path, mqtt_url, database_url, station_id)


async def _media(station: RunningStation, titles: list[str]) -> list[int]:
    """Library rows without running ffmpeg."""
    return await library_rows(station.app[keys.SESSIONS], titles, 30_000, 90_000, 100)


async def _actions(station: RunningStation) -> list[str]:
    async with station.app[keys.SESSIONS]() as db:
        return [a.action for a in (await db.exec(select(AuditEntry))).all()]


async def test_media_metadata_edit_usage_and_delete(settings: Settings) -> None:
    async with running(settings) as station:
        token = await user_with_token(station, "bt1", Role.BROADCASTER)
        used, free = await _media(station, ["Bản tin sáng", "Nhạc hiệu"])
        async with client(station, token) as api:
            status, one, response = await api.call("GET", f"/media/{used}")
            assert status == 200 and one["language"] == "vi" and one["topics"] == []
            etag = response.headers["ETag"]
            change = {"title": "Bản tin chiều", "topics": ["II.4", "I.9"], "language": "ctu"}
            status, body, _ = await api.call(
                "PATCH", f"/media/{used}", change, headers={"If-Match": '"stale"'}
            )
            assert_problem(status, body, 412)
            status, body, response = await api.call(
                "PATCH", f"/media/{used}", change, headers={"If-Match": etag}
            )
            assert status == 200, body
            assert body["title"] == "Bản tin chiều" and body["language"] == "ctu"
            assert body["topics"] == ["I.9", "II.4"]  # catalogue order
            status, body, _ = await api.call(
                "PATCH", f"/media/{used}", change, headers={"If-Match": etag}
            )
            assert_problem(status, body, 412)  # the first edit changed it
            status, body, _ = await api.call("PATCH", f"/media/{used}", {"topics": ["IX.99"]})
            assert_problem(status, body, 422, field="topics")
            status, body, _ = await api.call("PATCH", f"/media/{used}", {"language": "Việt"})
            assert_problem(status, body, 422, field="language")
            status, page, _ = await api.call("GET", "/media?q=chiều")
            assert [m["topics"] for m in page["items"]] == [["I.9", "II.4"]]

            _, prog, _ = await api.call(
                "POST", "/programmes", {"title": "Sáng", "media_ids": [used]}
            )
            start = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
            status, sched, _ = await api.call(
                "POST",
                "/schedules",
                {"programme_id": prog["id"], "start_at": start, "targets": {"all": True}},
            )
            assert status == 201, sched
            status, usage, _ = await api.call("GET", f"/media/{used}/usage")
            assert status == 200 and usage["in_use"], usage
            assert usage["programmes"][0]["id"] == prog["id"]
            assert [s["id"] for s in usage["programmes"][0]["schedules"]] == [sched["id"]]
            status, body, _ = await api.call("DELETE", f"/media/{used}")
            assert_problem(status, body, 409)
            assert body["title"] == "Media in use" and "Sáng" in body["detail"]
            assert body["programmes"] == [
                {"id": prog["id"], "title": "Sáng", "schedules": [sched["id"]]}
            ]
            assert (await api.call("GET", f"/media/{used}"))[0] == 200

            status, usage, _ = await api.call("GET", f"/media/{free}/usage")
            assert status == 200 and not usage["in_use"] and usage["programmes"] == []
            status, body, _ = await api.call("DELETE", f"/media/{free}")
            assert status == 204, body
            assert (await api.call("GET", f"/media/{free}"))[0] == 404
            assert (await api.call("DELETE", f"/media/{free}"))[0] == 404
        viewer = await user_with_token(station, "v1", Role.VIEWER)
        async with client(station, viewer) as api:
            status, body, _ = await api.call("DELETE", f"/media/{used}")
            assert_problem(status, body, 403)
            assert (await api.call("GET", f"/media/{used}/usage"))[0] == 200
        actions = await _actions(station)
        assert "media.update" in actions and "media.delete" in actions


async def test_cluster_edit_with_if_match_and_sim_number(settings: Settings) -> None:
    async with running(settings) as station:
        token = await user_with_token(station, "tech1", Role.TECHNICIAN)
        async with client(station, token) as api:
            status, body, _ = await api.call(
                "POST", "/fleet/clusters", {"id": "C1", "sim_msisdn": "+84 912 345 678"}
            )
            assert status == 201 and body["cluster"]["sim_msisdn"] == "0912345678", body
            status, body, _ = await api.call(
                "POST", "/fleet/clusters", {"id": "C2", "sim_msisdn": "12345"}
            )
            assert_problem(status, body, 422, field="sim_msisdn")
            status, _, response = await api.call("GET", "/clusters/C1")
            etag = response.headers["ETag"]
            change = {
                "name": "Cụm chợ",
                "lat": 21.01,
                "lon": 105.8,
                "serial": "SN-7",
                "imei": "356938035643809",
                "sim_msisdn": "84987654321",
            }
            status, body, _ = await api.call(
                "PATCH", "/clusters/C1", change, headers={"If-Match": '"old"'}
            )
            assert_problem(status, body, 412)
            assert body["current_etag"] == etag
            status, body, response = await api.call(
                "PATCH", "/clusters/C1", change, headers={"If-Match": etag}
            )
            assert status == 200, body
            assert body["name"] == "Cụm chợ" and body["sim_msisdn"] == "0987654321"
            assert (body["lat"], body["lon"], body["serial"]) == (21.01, 105.8, "SN-7")
            assert response.headers["ETag"] != etag
            status, body, _ = await api.call(
                "PATCH", "/clusters/C1", {"name": "x"}, headers={"If-Match": etag}
            )
            assert_problem(status, body, 412)
            status, body, _ = await api.call("PATCH", "/clusters/C1", {"lat": 20.0})
            assert_problem(status, body, 422, field="lat")
            status, body, _ = await api.call("PATCH", "/clusters/C1", {"sim_msisdn": "0212345678"})
            assert_problem(status, body, 422, field="sim_msisdn")  # a landline
            status, body, _ = await api.call("PATCH", "/clusters/C1", {"sim_msisdn": None})
            assert status == 200 and body["sim_msisdn"] is None and body["serial"] == "SN-7"
            assert (await api.call("PATCH", "/clusters/NOPE", {"name": "x"}))[0] == 404

            csv = "id,name,sim_msisdn\nC3,Cụm 3,0903 123 456\nC4,Cụm 4,999\n"
            status, report, _ = await api.call(
                "POST",
                "/fleet/import?kind=clusters",
                data=csv.encode(),
                headers={"Content-Type": "text/csv"},
            )
            assert status == 200 and report["imported"] == ["C3"], report
            assert "sim_msisdn" in report["rows"][1]["error"]
            _, c3, _ = await api.call("GET", "/clusters/C3")
            assert c3["sim_msisdn"] == "0903123456"
        viewer = await user_with_token(station, "v1", Role.VIEWER)
        async with client(station, viewer) as api:
            status, body, _ = await api.call("PATCH", "/clusters/C1", {"name": "x"})
            assert_problem(status, body, 403)
        assert "cluster.update" in await _actions(station)


async def test_data_use_per_cluster_and_day(settings: Settings) -> None:
    async with running(settings) as station:
        token = await user_with_token(station, "v1", Role.VIEWER)
        today = datetime.now(settings.station.tzinfo).date()
        async with station.app[keys.SESSIONS]() as db:
            db.add_all([Cluster(id="C1"), Cluster(id="C2")])
            await db.flush()
            db.add_all(
                [
                    DataUse(cluster_id="C1", day=today, bytes=3_000_000),
                    DataUse(cluster_id="C1", day=today - timedelta(days=1), bytes=1_000_000),
                    DataUse(cluster_id="C2", day=today, bytes=500),
                    DataUse(cluster_id="C2", day=today - timedelta(days=10), bytes=9_999),
                ]
            )
            await db.commit()
        async with client(station, token) as api:
            status, body, _ = await api.call("GET", "/data-use?days=7")
            assert status == 200, body
            assert body["total_bytes"] == 4_000_500
            assert body["clusters"] == {"C1": 4_000_000, "C2": 500}
            assert [(r["cluster_id"], r["day"]) for r in body["rows"]] == [
                ("C1", (today - timedelta(days=1)).isoformat()),
                ("C1", today.isoformat()),
                ("C2", today.isoformat()),
            ]
            status, body, _ = await api.call("GET", "/data-use?days=30&cluster_id=C2")
            assert body["total_bytes"] == 10_499 and body["clusters"] == {"C2": 10_499}
            status, body, _ = await api.call("GET", "/data-use?days=0")
            assert_problem(status, body, 422, field="days")
            status, body, _ = await api.call("GET", "/data-use?nope=1")
            assert_problem(status, body, 422)


WEEK = """weekday,start,end,slot,kind,title,topic,language,targets
mon,06:00,06:10,morning,media,Bản tin xã,,vi,all
wed,17:00,17:30,evening,relay,Tiếp âm VOV1,,vi,all
"""
BAD_ROW = "fri,18:00,18:10,evening,media,Không có tin này,,vi,all\n"


def _week_form(
    text: str, relay: str | None = "Tiếp âm VOV1=http://vov.example/vov1"
) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("file", text.encode(), filename="week.csv", content_type="text/csv")
    if relay is not None:
        form.add_field("relay", relay)
    return form


async def _counts(api: object) -> tuple[int, int]:
    _, schedules, _ = await api.call("GET", "/schedules")  # type: ignore[attr-defined]
    _, programmes, _ = await api.call("GET", "/programmes")  # type: ignore[attr-defined]
    return schedules["total"], programmes["total"]


async def test_schedule_import_dry_run_and_all_or_nothing(settings: Settings) -> None:
    async with running(settings) as station:
        admin = await user_with_token(station, "root1", Role.ADMIN)
        token = await user_with_token(station, "bt1", Role.BROADCASTER)
        await _media(station, ["Bản tin xã"])
        async with client(station, admin) as api:
            assert (await api.call("POST", "/clusters", {"id": "C1"}))[0] == 201
        async with client(station, token) as api:
            status, report, _ = await api.call(
                "POST", "/schedules/import?dry_run=true", data=_week_form(WEEK + BAD_ROW)
            )
            assert status == 200, report
            assert report["dry_run"] and not report["applied"] and report["errors"] == 1
            assert [r["line"] for r in report["rows"]] == [2, 3, 4]
            assert [r["error"] is None for r in report["rows"]] == [True, True, False]
            assert "no media item" in report["rows"][2]["error"]
            assert await _counts(api) == (0, 0)  # a dry run writes nothing

            status, body, _ = await api.call(
                "POST", "/schedules/import", data=_week_form(WEEK + BAD_ROW)
            )
            assert_problem(status, body, 422)
            assert body["title"] == "Import refused" and len(body["rows"]) == 3
            assert await _counts(api) == (0, 0)  # all or nothing

            status, body, _ = await api.call(
                "POST", "/schedules/import", data=_week_form(WEEK, relay=None)
            )
            assert_problem(status, body, 422)
            assert "stream URL" in body["rows"][1]["error"]
            assert await _counts(api) == (0, 0)

            status, report, _ = await api.call(
                "POST", "/schedules/import?valid_from=2030-01-07", data=_week_form(WEEK)
            )
            assert status == 200 and report["applied"] and report["errors"] == 0, report
            assert len(report["schedules"]) == 2
            assert await _counts(api) == (2, 2)
            _, one, _ = await api.call("GET", f"/schedules/{report['schedules'][1]}")
            assert one["priority"] == "relay" and one["status"] == "active"

            raw = WEEK.replace("Tiếp âm VOV1", "Bản tin xã").replace("relay", "media")
            raw = raw.replace("06:00,06:10", "07:00,07:10")
            status, report, _ = await api.call(
                "POST",
                "/schedules/import?dry_run=true&valid_from=2030-01-07",
                data=raw.encode(),
                headers={"Content-Type": "text/csv"},
            )
            assert status == 200 and report["errors"] == 0, report
            status, body, _ = await api.call(
                "POST",
                "/schedules/import",
                data=b"a,b\n1,2\n",
                headers={"Content-Type": "text/csv"},
            )
            assert_problem(status, body, 422, field="file")
            status, body, _ = await api.call("POST", "/schedules/import", json={"x": 1})
            assert_problem(status, body, 415)
        viewer = await user_with_token(station, "v1", Role.VIEWER)
        async with client(station, viewer) as api:
            status, body, _ = await api.call("POST", "/schedules/import", data=_week_form(WEEK))
            assert_problem(status, body, 403)
        assert "schedule.import" in await _actions(station)


async def test_schedule_import_follows_the_approval_rule(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str
) -> None:
    settings = settings_for(tmp_path, mqtt_url, database_url, station_id, approval_required=True)
    async with running(settings) as station:
        token = await user_with_token(station, "bt1", Role.BROADCASTER)
        await _media(station, ["Bản tin xã"])
        async with client(station, token) as api:
            status, body, _ = await api.call("POST", "/schedules/import", data=_week_form(WEEK))
            assert_problem(status, body, 422)
            assert all("not approved" in r["error"] for r in body["rows"]), body
            assert await _counts(api) == (0, 0)


async def test_reissued_credentials_refuse_the_old_password_at_once(
    tmp_path: Path, database_url: str, station_id: str
) -> None:
    base = settings_for(tmp_path, "embedded", database_url, station_id)
    settings = base.model_copy(
        update={"devices": base.devices.model_copy(update={"allow_anonymous": False})}
    )
    async with running(settings) as station:
        token = await user_with_token(station, "tech1", Role.TECHNICIAN)
        address = BrokerAddress.from_url(station.runtime.mqtt_url)
        async with client(station, token) as api:
            status, first, _ = await api.call("POST", "/fleet/clusters", {"id": "A01"})
            assert status == 201, first
            old = first["bundle"]["password"]
            await station.app[keys.ACCESS].refresh()  # the sweep would do it within sweep_s
            assert await can_login(address, "A01", old)

            status, second, _ = await api.call("POST", "/clusters/A01/credentials")
            assert status == 201, second
            new = second["bundle"]["password"]
            assert new and new != old and second["bundle"]["username"] == "A01"
            assert not await can_login(address, "A01", old)  # no sweep needed
            assert await can_login(address, "A01", new)

            await api.call("POST", "/fleet/clusters", {"id": "BR1", "kind": "bridge"})
            status, body, _ = await api.call(
                "POST", "/fleet/clusters", {"id": "FM1", "kind": "fm", "bridge_id": "BR1"}
            )
            assert status == 201, body
            status, body, _ = await api.call("POST", "/clusters/FM1/credentials")
            assert_problem(status, body, 409)
            assert (await api.call("POST", "/clusters/NOPE/credentials"))[0] == 404
        assert "cluster.credentials" in await _actions(station)


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("0912345678", "0912345678"),
        ("+84 912 345 678", "0912345678"),
        ("84912345678", "0912345678"),
        ("0912.345.678", "0912345678"),
        ("(+84) 387-654-321", "0387654321"),
    ],
)
def test_sim_numbers_are_normalised(given: str, stored: str) -> None:
    assert normalise_msisdn(given) == stored


@pytest.mark.parametrize(
    "bad", ["", "12345", "0212345678", "091234567", "09123456789", "+1 912 345 678", "0912abc678"]
)
def test_bad_sim_numbers_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="Vietnamese mobile"):
        normalise_msisdn(bad)


def test_cli_register_and_edit_the_sim_number(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, database_url: str, station_id: str
) -> None:
    config = tmp_path / "loaxa.yaml"
    config.write_text(
        f"station: {{id: {station_id}}}\ndatabase: {{url: '{database_url}'}}\n"
        "mqtt: {url: 'mqtt://broker.example:1883'}\n",
        encoding="utf-8",
    )
    c = ("-c", str(config))
    assert cli_main(["cluster", "register", "C1", "--sim-msisdn", "+84912345678", *c]) == 0
    assert (
        cli_main(
            [
                "cluster",
                "edit",
                "C1",
                "--sim-msisdn",
                "0987 654 321",
                "--serial",
                "SN-1",
                "--name",
                "Cụm chợ",
                *c,
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "C1: Cụm chợ; SIM 0987654321" in out
    assert cli_main(["cluster", "edit", "C1", "--sim-msisdn", "", *c]) == 0
    assert "SIM -," in capsys.readouterr().out
    assert cli_main(["cluster", "edit", "C1", "--sim-msisdn", "12", *c]) != 0
    assert "sim_msisdn" in capsys.readouterr().err
