"""Recurring schedules over the REST API: create (daily, weekdays, monthly; zones, villages),
quota refusal (422), conflict (409, then accepted in an order), edit with If-Match (412 on a
lost update), cancel a recurring schedule, the calendar, quotas and timeline; 401/403."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from api_support import assert_problem, client, running, user_with_token
from schedule_support import quota_settings, ten_minute_media
from sqlmodel import select

from station import _keys as keys
from station._registry import add_zone, assign_zone
from station._services import create_programme, register_clusters
from station.app import RunningStation
from station.config import Settings
from station.db import AuditEntry, Role

CLUSTERS = ["C1", "C2", "C3", "C4"]


@pytest.fixture
def settings(tmp_path: Path, mqtt_url: str, database_url: str, station_id: str) -> Settings:
    return quota_settings(
        tmp_path,
        mqtt_url,
        database_url,
        station_id,
        max_sessions_per_day=2,
        max_minutes_per_session=45,
    )


async def _fleet(station: RunningStation) -> tuple[int, int]:
    """Four clusters in zones Z1 (C1, C2) and Z2 (C3, C4); two 10-minute programmes."""
    sessions = station.app[keys.SESSIONS]
    await register_clusters(sessions, [(c, c) for c in CLUSTERS])
    await add_zone(sessions, "Z1", "Thôn 1")
    await add_zone(sessions, "Z2", "Thôn 2")
    await assign_zone(sessions, "Z1", ["C1", "C2"])
    await assign_zone(sessions, "Z2", ["C3", "C4"])
    ids = await ten_minute_media(sessions, 2)
    one = await create_programme(sessions, "Bản tin sáng", [ids[0]])
    two = await create_programme(sessions, "Thông báo xã", [ids[1]])
    assert one.id and two.id
    return one.id, two.id


def _next_monday(settings: Settings) -> date:
    today = datetime.now(settings.station.tzinfo).date()
    return today + timedelta(days=7 - today.weekday())


def _weekly(programme: int, at: str, days: list[str], start: date, **extra: Any) -> Any:
    return {
        "programme_id": programme,
        "recurrence": {
            "kind": "weekly",
            "time": at,
            "weekdays": days,
            "valid_from": start.isoformat(),
            "valid_to": (start + timedelta(days=60)).isoformat(),
            "exceptions": [(start + timedelta(days=2)).isoformat()],
        },
        "targets": {"zones": ["Z1"]},
        **extra,
    }


async def test_recurring_create_quota_conflict_edit_cancel(settings: Settings) -> None:
    async with running(settings) as station:
        news, notice = await _fleet(station)
        token = await user_with_token(station, "bt1", Role.BROADCASTER)
        monday = _next_monday(settings)
        async with client(station, token) as api:
            body = _weekly(news, "06:00", ["mon", "wed", "fri"], monday, volume=80)
            body |= {"misfire": "start_late", "misfire_late_min": 10}
            status, first, response = await api.call("POST", "/schedules", body)
            assert status == 201, first
            assert first["status"] == "active" and first["recurrence"] == "weekly"
            assert first["weekdays"] == ["mon", "wed", "fri"]
            assert first["time_of_day"] == "06:00:00" and first["volume"] == 80
            assert first["misfire_grace_s"] == 600
            assert first["exceptions"] == [(monday + timedelta(days=2)).isoformat()]
            assert first["start_at"].startswith(monday.isoformat()) or first["start_at"] < (
                monday.isoformat() + "T"
            )  # 06:00 in Vietnam is 23:00 UTC the day before
            assert first["targets"] == {"zones": ["Z1"]}
            etag = response.headers["ETag"]

            daily = {
                "programme_id": notice,
                "recurrence": {"kind": "daily", "time": "17:00", "valid_from": monday.isoformat()},
                "targets": {"clusters": ["C1"]},
            }
            status, evening, _ = await api.call("POST", "/schedules", daily)
            assert status == 201 and evening["recurrence"] == "daily", evening

            # a third session a day on C1 breaks the rural quota of 2
            noon = {**daily, "recurrence": {**daily["recurrence"], "time": "12:00"}}
            status, body, _ = await api.call("POST", "/schedules", noon)
            assert_problem(status, body, 422)
            assert body["title"] == "Airtime quota exceeded"
            [violation] = body["violations"]
            assert violation["quota"] == "sessions_per_day" and violation["limit"] == 2
            assert violation["locality"] == "rural" and "C1" in violation["clusters"]
            assert "max 2 a day" in violation["reason"]

            # the same slot, same priority, on C2 (in Z1): a conflict the operator resolves
            clash = _weekly(notice, "06:05", ["mon"], monday) | {"targets": {"clusters": ["C2"]}}
            status, body, _ = await api.call("POST", "/schedules", clash)
            assert_problem(status, body, 409)
            assert body["title"] == "Schedule conflict" and body["choices"] == ["before", "after"]
            [conflict] = body["conflicts"]
            assert conflict["schedule_id"] == first["id"] and conflict["clusters"] == ["C2"]
            assert conflict["overlaps"][0]["start"].endswith("+00:00")
            status, body, _ = await api.call("POST", "/schedules", clash | {"on_conflict": "maybe"})
            assert_problem(status, body, 422, field="on_conflict")
            status, after, _ = await api.call(
                "POST", "/schedules", clash | {"on_conflict": "after"}
            )
            assert status == 201 and after["rank"] > first["rank"], after
            assert f"accepted overlap with {first['id']}: plays after" in after["note"]

            # the calendar shows the occurrences, the accepted clash and the quota use
            week = f"/calendar?week={monday.isoformat()}"
            status, cal, _ = await api.call("GET", week)
            assert status == 200, cal
            ours = [a for a in cal["airings"] if a["schedule_id"] == first["id"]]
            assert len(ours) == 2  # mon, fri (wed is an exception)
            assert len([a for a in cal["airings"] if a["schedule_id"] == evening["id"]]) == 7
            [shown] = cal["clashes"]
            assert set(shown["schedule_ids"]) == {first["id"], after["id"]}
            assert shown["first"] == first["id"] and shown["clusters"] == ["C2"]
            use = {(q["locality"], q["day"]): q for q in cal["quotas"]}
            assert use[("rural", monday.isoformat())]["sessions"] == 2
            assert use[("rural", monday.isoformat())]["max_sessions"] == 2
            assert use[("rural", (monday + timedelta(days=2)).isoformat())]["sessions"] == 1
            status, zone2, _ = await api.call("GET", f"{week}&zone=Z2")
            assert zone2["airings"] == [] and zone2["cluster_count"] == 2
            status, body, _ = await api.call("GET", f"{week}&zone=Z9")
            assert_problem(status, body, 422)
            assert "Z9" in body["detail"]
            status, body, _ = await api.call("GET", f"{week}&zone=Z1&cluster=C1")
            assert_problem(status, body, 422)
            status, q, _ = await api.call("GET", f"/quotas?week={monday.isoformat()}&days=1")
            assert [u["sessions"] for u in q["quotas"]] == [2]

            # what plays when on C2 on Monday, and why
            status, line, _ = await api.call(
                "GET", f"/timeline?cluster=C2&days=1&week={monday.isoformat()}"
            )
            assert status == 200, line
            [group] = line["groups"]
            assert group["clusters"] == ["C2"]
            assert [s["schedule_id"] for s in group["slots"]] == [first["id"], after["id"]]
            [queued] = [e for e in group["events"] if e["action"] == "queue"]
            assert queued["schedule_id"] == after["id"]
            assert queued["other_schedule_id"] == first["id"] and queued["expected"]

            # edit with If-Match: the stale ETag is refused, the fresh one goes through
            path = f"/schedules/{first['id']}"
            change = {"recurrence": {**body_of(first), "weekdays": ["mon", "tue", "fri"]}}
            status, edited, response = await api.call(
                "PATCH", path, change, headers={"If-Match": etag}
            )
            assert status == 200 and edited["weekdays"] == ["mon", "tue", "fri"], edited
            assert edited["volume"] == 80  # kept
            status, body, _ = await api.call("PATCH", path, change, headers={"If-Match": etag})
            assert_problem(status, body, 412)
            assert body["current_etag"] == response.headers["ETag"]
            etag = response.headers["ETag"]
            replaced = _weekly(news, "06:00", ["mon"], monday, volume=60)
            status, put, response = await api.call(
                "PUT", path, replaced, headers={"If-Match": etag}
            )
            assert status == 200 and put["weekdays"] == ["mon"] and put["volume"] == 60, put
            etag = response.headers["ETag"]

            # cancel the recurring one: no more occurrences, the row stays as history
            status, body, _ = await api.call("DELETE", path, headers={"If-Match": '"stale"'})
            assert_problem(status, body, 412)
            status, gone, _ = await api.call("POST", f"{path}/cancel", headers={"If-Match": etag})
            assert status == 200 and gone["status"] == "cancelled", gone
            status, body, _ = await api.call("DELETE", path)
            assert_problem(status, body, 409)
            status, body, _ = await api.call("PATCH", path, {"volume": 10})
            assert_problem(status, body, 409)
            assert (await api.call("DELETE", "/schedules/99999"))[0] == 404
            status, cal, _ = await api.call("GET", week)
            assert first["id"] not in {a["schedule_id"] for a in cal["airings"]}
            assert cal["clashes"] == []
            status, page, _ = await api.call("GET", "/schedules?recurrence=weekly")
            assert {s["id"] for s in page["items"]} == {first["id"], after["id"]}

        async with station.app[keys.SESSIONS]() as db:
            actions = [a.action for a in (await db.exec(select(AuditEntry))).all()]
        assert actions.count("schedule.create") == 3
        assert actions.count("schedule.update") == 2 and "schedule.cancel" in actions


def body_of(schedule: dict[str, Any]) -> dict[str, Any]:
    """The recurrence of a schedule as read, as a request's recurrence."""
    return {
        "kind": schedule["recurrence"],
        "time": schedule["time_of_day"][:5],
        "weekdays": schedule["weekdays"],
        "valid_from": schedule["valid_from"],
        "valid_to": schedule["valid_to"],
        "exceptions": schedule["exceptions"],
    }


async def test_validation_monthly_once_and_roles(settings: Settings) -> None:
    async with running(settings) as station:
        news, _ = await _fleet(station)
        bt = await user_with_token(station, "bt1", Role.BROADCASTER)
        viewer = await user_with_token(station, "v1", Role.VIEWER)
        monday = _next_monday(settings)
        async with client(station, bt) as api:
            bad: list[tuple[dict[str, Any], str]] = [
                ({"kind": "weekly", "time": "06:00"}, "recurrence"),
                ({"kind": "daily"}, "recurrence"),
                ({"kind": "weekly", "time": "06:00", "weekdays": ["mo"]}, "recurrence.weekdays.0"),
                ({"kind": "monthly", "time": "06:00", "day_of_month": 32},
                 "recurrence.day_of_month"),
                ({"kind": "once", "at": "2030-01-01T06:00:00"}, "recurrence.at"),
                ({"kind": "once", "at": "2020-01-01T06:00:00+07:00"}, "recurrence.at"),
                ({"kind": "daily", "time": "06:00", "valid_from": "2031-01-02",
                  "valid_to": "2031-01-01"}, "recurrence"),
            ]  # fmt: skip
            for recurrence, field in bad:
                status, body, _ = await api.call(
                    "POST",
                    "/schedules",
                    {"programme_id": news, "recurrence": recurrence, "targets": {"all": True}},
                )
                assert_problem(status, body, 422, field=field)
            status, body, _ = await api.call(
                "POST",
                "/schedules",
                {
                    "programme_id": news,
                    "recurrence": {"kind": "daily", "time": "06:00"},
                    "start_at": "2031-01-01T06:00:00+07:00",
                    "targets": {"all": True},
                },
            )
            assert_problem(status, body, 422)
            status, body, _ = await api.call(
                "POST", "/schedules", _weekly(news, "06:00", ["mon"], monday, priority="loud")
            )
            assert_problem(status, body, 422)
            status, body, _ = await api.call(
                "POST",
                "/schedules",
                _weekly(news, "06:00", ["mon"], monday) | {"targets": {"villages": ["V404"]}},
            )
            assert_problem(status, body, 422)
            assert "V404" in body["detail"]

            monthly = {
                "programme_id": news,
                "recurrence": {"kind": "monthly", "time": "19:30", "day_of_month": 15},
                "targets": {"zones": ["Z2"]},
                "misfire": "skip",
            }
            status, made, _ = await api.call("POST", "/schedules", monthly)
            assert status == 201 and made["day_of_month"] == 15, made
            assert made["misfire_grace_s"] == 0
            at = (datetime.now(settings.station.tzinfo) + timedelta(days=3)).replace(
                hour=9, minute=0, second=0, microsecond=0
            )
            once = {
                "programme_id": news,
                "recurrence": {"kind": "once", "at": at.isoformat()},
                "targets": {"zones": ["Z2"]},
            }
            status, made, _ = await api.call("POST", "/schedules", once)
            assert status == 201 and made["status"] == "pending", made
            assert made["targets"] == {"clusters": ["C3", "C4"]} and "zones Z2" in made["note"]

        async with client(station, viewer) as api:
            status, body, _ = await api.call("POST", "/schedules", monthly)
            assert_problem(status, body, 403)
            status, body, _ = await api.call("DELETE", f"/schedules/{made['id']}")
            assert_problem(status, body, 403)
            assert (await api.call("GET", "/calendar"))[0] == 200
            assert (await api.call("GET", "/timeline?zone=Z2"))[0] == 200
        async with client(station) as anonymous:
            calls = [("GET", "/calendar"), ("GET", "/timeline"), ("GET", "/quotas"),
                     ("POST", "/schedules"), ("PUT", "/schedules/1"),
                     ("PATCH", "/schedules/1"), ("DELETE", "/schedules/1")]  # fmt: skip
            for method, path in calls:
                status, body, _ = await anonymous.call(method, path, json={})
                assert_problem(status, body, 401)


async def test_an_overlap_that_appears_later_is_shown_open_then_ordered(
    settings: Settings,
) -> None:
    async with running(settings) as station:
        news, notice = await _fleet(station)
        token = await user_with_token(station, "bt1", Role.BROADCASTER)
        monday = _next_monday(settings)
        async with client(station, token) as api:
            status, zone1, _ = await api.call(
                "POST", "/schedules", _weekly(news, "06:00", ["mon"], monday)
            )
            assert status == 201, zone1
            c3 = _weekly(notice, "06:05", ["mon"], monday) | {"targets": {"clusters": ["C3"]}}
            status, on_c3, _ = await api.call("POST", "/schedules", c3)
            assert status == 201 and on_c3["note"] == "", on_c3  # no shared cluster yet
            # C3 joins zone Z1: both now reach it at the same time, nobody chose an order
            await assign_zone(station.app[keys.SESSIONS], "Z1", ["C3"])
            week = f"/calendar?week={monday.isoformat()}&days=1"
            [clash] = (await api.call("GET", week))[1]["clashes"]
            assert clash["first"] is None and clash["clusters"] == ["C3"]
            path = f"/schedules/{on_c3['id']}"
            status, body, _ = await api.call("PATCH", path, {"volume": 50})
            assert_problem(status, body, 409)  # an edit meets the conflict: choose an order
            assert body["conflicts"][0]["schedule_id"] == zone1["id"]
            status, ordered, _ = await api.call("PATCH", path, {"on_conflict": "after"})
            assert status == 200 and ordered["rank"] == zone1["rank"] + 1, ordered
            [clash] = (await api.call("GET", week))[1]["clashes"]
            assert clash["first"] == zone1["id"]
