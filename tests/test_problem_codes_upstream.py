"""The upstream bulletin refusals and the rows of the CSV import reports carry a registered
``code`` with its parameters (the English message stays): the console says them in Vietnamese.

Over HTTP: placing, declining, confirming a bulletin and attaching a recording refused with
their codes; a placement refused by the schedule checks keeps the schedule's code; the fleet
import (villages, clusters) and the week plan import report each bad row's code and
parameters. In Chromium: a refused row of the CSV import screen is said in Vietnamese.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from api_support import PASSWORD, assert_problem, client, running, user_with_token
from browser_support import CHROMIUM

from station import _keys as keys
from station._programmes import ItemInput
from station._registry import add_village
from station._registry_import import import_villages
from station._services import StationError, register_clusters
from station._week_csv import parse_week_csv
from station.api import create_user
from station.api._problems import CODES
from station.app import RunningStation
from station.config import Settings
from station.db import BulletinClass, BulletinStatus, MediaItem, Role, UpstreamBulletin
from station.upstream._placement import PlacementError, _insert
from station.web._i18n import Catalogue

if CHROMIUM.exists():
    from playwright.async_api import Browser, FilePayload, expect
else:  # pragma: no cover
    Browser = FilePayload = object  # type: ignore[assignment,misc]

WEEK_HEADER = "weekday,start,end,slot,kind,title,topic,language,targets\n"


async def _media(station: RunningStation, title: str) -> int:
    async with station.app[keys.SESSIONS]() as db:
        item = MediaItem(sha256="a" * 64, source_sha256="b" * 64, title=title,
                         duration_ms=20_000, size_bytes=60_000)  # fmt: skip
        db.add(item)
        await db.commit()
        assert item.id is not None
        return item.id


async def _bulletin(
    station: RunningStation,
    ident: str,
    status: BulletinStatus,
    *,
    klass: BulletinClass = BulletinClass.PRIORITY,
    media_id: int | None = None,
    villages: tuple[str, ...] = (),
) -> int:
    now = datetime.now(UTC)
    async with station.app[keys.SESSIONS]() as db:
        row = UpstreamBulletin(
            upstream_id=ident, bulletin_class=klass, status=status, title=f"Bản tin {ident}",
            text="Nội dung bản tin.", media_id=media_id, villages=list(villages),
            valid_from=now - timedelta(hours=1), valid_to=now + timedelta(hours=6),
            received_via="webhook",
        )  # fmt: skip
        db.add(row)
        await db.commit()
        assert row.id is not None
        return row.id


def _assert_registered(code: str, params: dict[str, Any]) -> None:
    """The code is registered, and the parameters its catalogue entries name are given."""
    assert code in CODES, code
    catalogue = Catalogue.load()
    for lang in ("vi", "en"):
        text = catalogue.strings[lang][f"code.{code}"]
        assert set(re.findall(r"\{([a-z_]+)\}", text)) <= set(params), (code, lang, params)


async def test_bulletin_refusals_carry_their_codes(settings: Settings) -> None:
    async with running(settings) as station:
        sessions = station.app[keys.SESSIONS]
        await register_clusters(sessions, [("C1", "Loa chợ")])
        media_id = await _media(station, "Bản tin lũ")
        silent = await _bulletin(station, "P-1", BulletinStatus.PROPOSED)
        done = await _bulletin(station, "P-2", BulletinStatus.SCHEDULED, media_id=media_id)
        ready = await _bulletin(station, "P-3", BulletinStatus.PROPOSED, media_id=media_id)
        nowhere = await _bulletin(
            station, "P-4", BulletinStatus.PROPOSED, media_id=media_id, villages=("NOPE",)
        )
        admin = await user_with_token(station, "root1", Role.ADMIN)
        soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()

        async with client(station, admin) as api:
            session = {"mode": "session", "at": soon}
            status, body, _ = await api.call("POST", f"/bulletins/{silent}/place", session)
            assert_problem(status, body, 409)
            assert body["code"] == "bulletin_no_audio" and body["bulletin_id"] == silent
            assert "has no audio yet" in body["detail"]  # the English detail stays

            status, body, _ = await api.call("POST", f"/bulletins/{done}/place", session)
            assert_problem(status, body, 409)
            assert body["code"] == "bulletin_not_proposed"
            assert (body["bulletin_id"], body["bulletin_status"]) == (done, "scheduled")
            status, body, _ = await api.call("POST", f"/bulletins/{done}/decline", {})
            assert body["code"] == "bulletin_not_proposed"

            late = {"mode": "session", "at": (datetime.now(UTC) + timedelta(days=3)).isoformat()}
            status, body, _ = await api.call("POST", f"/bulletins/{ready}/place", late)
            assert_problem(status, body, 422, field="at")
            assert body["code"] == "bulletin_outside_window"
            start = datetime.fromisoformat(body["window_start"])
            end = datetime.fromisoformat(body["window_end"])
            assert start < datetime.fromisoformat(late["at"]) and end - start < timedelta(hours=7)

            clash = {"mode": "before", "session_id": "s-nope-1", "item": 1}
            status, body, _ = await api.call("POST", f"/bulletins/{ready}/place", clash)
            assert_problem(status, body, 422, field="session_id")
            assert body["code"] == "bulletin_clash_unknown" and body["session_id"] == "s-nope-1"

            # Refused by the schedule checks: the schedule's own code, nothing left behind.
            status, body, _ = await api.call("POST", f"/bulletins/{nowhere}/place", session)
            assert_problem(status, body, 409)
            assert body["code"] == "target_unknown" and body["ids"] == ["NOPE"], body

            status, body, _ = await api.call("POST", f"/bulletins/{done}/confirm")
            assert_problem(status, body, 409)
            assert body["code"] == "bulletin_not_confirm_needed"
            assert body["bulletin_status"] == "scheduled"

            status, body, _ = await api.call(
                "POST", f"/bulletins/{ready}/audio", {"media_id": media_id}
            )
            assert_problem(status, body, 409)
            assert body["code"] == "bulletin_has_recording" and body["bulletin_id"] == ready
            status, body, _ = await api.call(
                "POST", f"/bulletins/{done}/audio", {"media_id": media_id}
            )
            assert body["code"] == "bulletin_already_decided"
            status, body, _ = await api.call(
                "POST", f"/bulletins/{silent}/audio", {"media_id": 999}
            )
            assert_problem(status, body, 422, field="media_id")
            assert body["code"] == "media_unknown" and body["media_ids"] == [999]

            status, body, _ = await api.call("POST", "/bulletins/99999/place", session)
            assert_problem(status, body, 404)
            assert body["code"] == "bulletin_not_found"

        async with sessions() as db:
            row = await db.get(UpstreamBulletin, nowhere)
            assert row is not None and row.status == BulletinStatus.PROPOSED


def test_placement_input_errors_carry_codes() -> None:
    clip = ItemInput("media", 1, title="Bản tin")
    with pytest.raises(PlacementError) as caught:
        _insert([clip, clip], clip, "before", 5)
    assert caught.value.status == 422
    assert caught.value.code == "bulletin_item_out_of_range"
    assert caught.value.params == {"item": 5, "items": 2}
    _assert_registered("bulletin_item_out_of_range", caught.value.params)
    assert str(caught.value) == "item: the programme has items 1..2, not 5"


def test_week_plan_rows_carry_codes() -> None:
    cases = {
        "mon,6h,06:10,s,media,A,,vi,all": ("week_time_invalid", {"column": "start", "value": "6h"}),
        "mon,06:00,06:10,s,jingle,A,,vi,all": ("week_kind_invalid", {"value": "jingle"}),
        "mon,06:00,06:10,s,bogus,A,,vi,all": ("week_kind_invalid", {"value": "bogus"}),
        "xyz,06:00,06:10,s,media,A,,vi,all": ("week_weekdays_invalid", {"value": "xyz"}),
        "mon,06:10,06:00,s,media,A,,vi,all": (
            "week_end_not_after_start", {"start": "06:10", "end": "06:00"}
        ),
        "mon,06:00,06:10,s,media, ,,vi,all": ("week_title_needed", {}),
        "mon,06:00,06:10,s,media,A,,vi,bad:x": ("week_target_invalid", {"value": "bad:x"}),
    }  # fmt: skip
    for row, (code, params) in cases.items():
        with pytest.raises(StationError) as caught:
            parse_week_csv(WEEK_HEADER + row + "\n")
        assert caught.value.code == code, (row, caught.value)
        assert caught.value.params == {"line": 2, **params}, row
        assert str(caught.value).startswith("week plan line 2: "), row  # English for the CLI
        _assert_registered(code, caught.value.params)


async def test_import_reports_carry_row_codes(settings: Settings) -> None:
    async with running(settings) as station:
        sessions = station.app[keys.SESSIONS]
        await add_village(sessions, "V1", "Thôn Đông")
        await register_clusters(sessions, [("C1", "Loa chợ")])
        await _media(station, "Bản tin xã")
        admin = await user_with_token(station, "root1", Role.ADMIN)

        villages = "id,name,households\nV2,Thôn Tây,40\nV1,Lại,10\nV3,,5\nV4,Thôn Nam,nhiều\n"
        report = await import_villages(sessions, villages)
        rows = {r.line: r for r in report.rows}
        assert report.imported == ["V2"] and rows[2].code is None and rows[2].params == {}
        assert (rows[3].code, rows[3].params) == ("village_exists", {"village_id": "V1"})
        assert "already exists" in (rows[3].error or "")
        assert rows[4].code == "village_name_needed"
        assert rows[5].code == "import_not_a_number"
        assert rows[5].params == {"column": "households", "value": "nhiều"}

        csv_text = "id,name,village,status\nC1,Lại,,\nC2,Mới,NOPE,\nC3,Hỏng,,broken\nC4,Tốt,V1,\n"
        async with client(station, admin) as api:
            status, body, _ = await api.call(
                "POST", "/fleet/import?kind=clusters", data=csv_text.encode(),
                headers={"Content-Type": "text/csv"},
            )  # fmt: skip
            assert status == 200, body
            rows_by_line = {r["line"]: r for r in body["rows"]}
            assert body["imported"] == ["C4"] and rows_by_line[5]["code"] is None
            assert rows_by_line[2]["code"] == "cluster_exists"
            assert rows_by_line[2]["params"] == {"cluster_id": "C1"}
            assert "already registered" in rows_by_line[2]["error"]
            assert rows_by_line[3]["code"] == "village_unknown"
            assert rows_by_line[3]["params"]["village_id"] == "NOPE"
            assert rows_by_line[4]["code"] == "cluster_status_invalid"
            assert rows_by_line[4]["params"] == {"value": "broken"}
            for row in body["rows"]:
                if row["code"]:
                    _assert_registered(row["code"], row["params"])

            week = WEEK_HEADER + (
                "mon,06:00,06:10,morning,media,Bản tin xã,,vi,all\n"
                "tue,06:00,06:10,morning,media,Không có tin này,,vi,all\n"
                "wed,17:00,17:30,evening,relay,Tiếp âm VOV1,,vi,all\n"
                "thu,25:00,06:10,morning,media,Bản tin xã,,vi,all\n"
                "fri,06:00,06:10,morning,media,Bản tin xã\n"
            )
            status, body, _ = await api.call(
                "POST", "/schedules/import?dry_run=true", data=week.encode(),
                headers={"Content-Type": "text/csv"},
            )  # fmt: skip
            assert status == 200, body
            got = {r["line"]: (r["code"], r["params"]) for r in body["rows"]}
            assert got[2] == (None, {})
            assert got[3] == ("week_media_missing", {"line": 3, "title": "Không có tin này"})
            assert got[4] == ("week_relay_url_missing", {"line": 4, "title": "Tiếp âm VOV1"})
            assert got[5] == ("week_time_invalid", {"line": 5, "column": "start", "value": "25:00"})
            assert got[6] == ("csv_row_columns", {"line": 6})
            assert "no media item with this title" in body["rows"][1]["error"]
            for code, params in got.values():
                if code:
                    _assert_registered(code, params)

            # Refused for real: the 422's rows carry the same codes.
            status, body, _ = await api.call(
                "POST", "/schedules/import", data=week.encode(),
                headers={"Content-Type": "text/csv"},
            )  # fmt: skip
            assert_problem(status, body, 422)
            assert body["code"] == "week_plan_refused"
            assert [r["code"] for r in body["rows"]][1:] == [
                "week_media_missing", "week_relay_url_missing", "week_time_invalid",
                "csv_row_columns",
            ]  # fmt: skip


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")
async def test_import_screen_says_a_refused_row_in_vietnamese(
    settings: Settings, browser: Browser
) -> None:
    from test_web_browser import console_page, log_in

    async with running(settings) as station:
        sessions = station.app[keys.SESSIONS]
        await create_user(sessions, "tuan", Role.TECHNICIAN, PASSWORD)
        await add_village(sessions, "V1", "Thôn Đông")
        async with console_page(browser, station) as page:
            await log_in(page, "tuan")
            await expect(page).not_to_have_url(re.compile(r"/console/login"))
            await page.goto("/console/import")
            await page.get_by_label("Loại dữ liệu").select_option("villages")
            text = "id,name,households\nV2,Thôn Tây,40\nV3,Thôn Nam,nhiều\nV1,Lại,\n"
            await page.get_by_label("Tệp CSV").set_input_files(
                files=FilePayload(name="thon.csv", mimeType="text/csv", buffer=text.encode())
            )
            await page.get_by_role("button", name="Kiểm tra").click()
            await expect(page.locator("#import-summary")).to_have_text("1 dòng hợp lệ, 2 dòng lỗi.")
            number = page.locator('#import-table tr[data-line="3"]')
            await expect(number).to_contain_text(
                "Cột “households” cần một con số, không phải “nhiều”."
            )
            await expect(number).not_to_contain_text("not a number")
            # The English reason is still there, as the reason's tooltip.
            assert "not a number" in (
                await number.locator(".row-reason").get_attribute("title") or ""
            )
            exists = page.locator('#import-table tr[data-line="4"]')
            await expect(exists).to_contain_text("Thôn, bản V1 đã có rồi.")
