"""Editing a schedule in the web console, in a real Chromium (Debian's, via Playwright).

Journey (Vietnamese): a broadcaster makes a weekly notice for zone Thôn Đông, opens it with
"Sửa" from the list, moves it to 06:30 on other weekdays; the API shows the change and the
calendar of a future week moved. Opened again from a calendar slot while someone else changes
it through the API: saving gets 412, a clear message, and the form shows the current version;
saving again works. Sent to every cluster it would break the airtime quota: the refusal is
said in Vietnamese from the violation's codes. Moved onto the afternoon news it overlaps: the
conflict is shown as on create and accepted to play after. In English the edit labels exist.
Screenshots go to artifacts/screenshots/ (phone width 360 px).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from api_support import PASSWORD, client, running
from schedule_support import console_zone, quota_settings, ten_minute_media
from test_web_browser import CHROMIUM, console_page, shot

from station import _keys as keys
from station._schedules import ScheduleRequest, create_schedule, make_recurrence
from station._services import create_programme
from station.app import RunningStation
from station.config import Settings
from station.web import Catalogue

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")

if CHROMIUM.exists():  # the import is only needed (and only guaranteed) where the tests run
    from playwright.async_api import Browser, Page, expect
else:  # pragma: no cover
    Browser = Page = object  # type: ignore[assignment,misc]

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@pytest.fixture
def settings(tmp_path: Path, mqtt_url: str, database_url: str, station_id: str) -> Settings:
    return quota_settings(tmp_path, mqtt_url, database_url, station_id, max_sessions_per_day=2)


async def _setup(station: RunningStation, settings: Settings) -> dict[str, int]:
    """Clusters C01-C03 (zone Z1: C01, C02), three 10-minute programmes, the afternoon news
    every day at 17:00 everywhere and a noon notice every day on C03 only (so C03 has its two
    sessions a day already)."""
    sessions = station.app[keys.SESSIONS]
    await console_zone(station)
    media = await ten_minute_media(sessions, 3)
    ids: dict[str, int] = {}
    for name, title, item in (
        ("news", "Bản tin chiều", media[0]),
        ("notice", "Thông báo xã", media[1]),
        ("noon", "Nhạc trưa", media[2]),
    ):
        made = await create_programme(sessions, title, [item])
        assert made.id
        ids[name] = made.id
    tz = settings.station.timezone
    now = datetime.now(UTC)
    for programme, at, targets in (
        ("news", time(17, 0), {"all": True}),
        ("noon", time(11, 0), {"clusters": ["C03"]}),
    ):
        rule = make_recurrence("daily", time_of_day=at, timezone=tz)
        result = await create_schedule(
            sessions, settings, ScheduleRequest(ids[programme], targets, rule), now
        )
        assert result.schedule.id
        ids[f"{programme}_schedule"] = result.schedule.id
    return ids


# The browser logs every refused request; these are the answers the journey provokes.
EXPECTED = (
    "status of 409 (Conflict)",
    "status of 412 (Precondition Failed)",
    "status of 422 (Unprocessable Entity)",
)


async def _api_schedule(station: RunningStation, schedule_id: int) -> dict[str, Any]:
    async with client(station) as api:
        assert (await api.login("hoa"))[0] == 200
        status, body, _ = await api.call("GET", f"/schedules/{schedule_id}")
    assert status == 200, body
    return dict(body)


async def _change_through_api(station: RunningStation, schedule_id: int) -> None:
    """Someone else moves the schedule to 06:45 (PATCH with the ETag they read)."""
    async with client(station) as api:
        assert (await api.login("hoa"))[0] == 200
        status, body, response = await api.call("GET", f"/schedules/{schedule_id}")
        assert status == 200
        change = {"recurrence": {"kind": "weekly", "time": "06:45", "weekdays": body["weekdays"]}}
        status, body, _ = await api.call(
            "PATCH", f"/schedules/{schedule_id}", change, {"If-Match": response.headers["ETag"]}
        )
        assert status == 200, body


async def _week_shows(page: Page, schedule_id: int, at: str, days: set[str]) -> None:
    """The shown week (wholly in the future) has the schedule at ``at`` in the morning slot of
    exactly ``days``."""
    columns = page.locator("#week .day")
    await expect(columns).to_have_count(7)
    for i, day in enumerate(WEEKDAYS):
        found = columns.nth(i).locator(f'.slot-morning .entry[data-schedule="{schedule_id}"]')
        if day in days:
            await expect(found).to_have_count(1)
            await expect(found).to_contain_text(at)
        else:
            await expect(found).to_have_count(0)


async def _log_in(page: Page) -> None:
    await page.goto("/console/login?next=/console/schedules")
    await page.get_by_label("Tên đăng nhập").fill("hoa")
    await page.get_by_label("Mật khẩu").fill(PASSWORD)
    await page.get_by_role("button", name="Đăng nhập").click()
    await expect(page.get_by_role("heading", name="Lịch phát hằng tuần / lặp lại")).to_be_visible()


async def test_edit_weekly_schedule_stale_quota_conflict(
    settings: Settings, browser: Browser
) -> None:
    async with running(settings) as station:
        ids = await _setup(station, settings)
        async with console_page(browser, station, expected=EXPECTED) as page:
            await _log_in(page)
            status = page.locator("#lx-status")
            form = page.locator("#recurring-form")
            card = page.locator("#recurring-card")

            # a weekly notice (preset Mon, Wed, Fri at 06:00) for zone Thôn Đông, volume 70
            await form.locator("#rec-programme").select_option(str(ids["notice"]))
            await form.get_by_label("Theo khu vực").check()
            await form.locator('#rec-places input[value="Z1"]').check()
            await form.get_by_label("Âm lượng (0–100)").fill("70")
            await page.get_by_role("button", name="Lưu lịch lặp lại").click()
            await expect(status).to_contain_text("Đã lưu lịch lặp lại")
            notice = ids["noon_schedule"] + 1
            await page.get_by_role("button", name="Tuần sau").click()
            await _week_shows(page, notice, "06:00", {"mon", "wed", "fri"})

            # "Sửa" from the list: the same form, pre-filled
            item = page.locator(f'#recurring li[data-schedule="{notice}"]')
            await item.get_by_role("button", name=f"Sửa lịch #{notice}").click()
            await expect(
                card.get_by_role("heading", name=f"Sửa lịch phát #{notice}")
            ).to_be_visible()
            await expect(page.locator("#rec-editing")).to_contain_text("Thông báo xã")
            await expect(form.locator("#rec-programme")).to_have_value(str(ids["notice"]))
            await expect(form.get_by_label("Lặp lại")).to_have_value("weekly")
            await expect(form.get_by_label("Giờ phát")).to_have_value("06:00")
            for day, label in (("mon", "T2"), ("wed", "T4"), ("fri", "T6"), ("tue", "T3")):
                box = form.get_by_label(label, exact=True)
                await (
                    expect(box).to_be_checked() if day != "tue" else expect(box).not_to_be_checked()
                )
            await expect(form.get_by_label("Theo khu vực")).to_be_checked()
            await expect(form.locator('#rec-places input[value="Z1"]')).to_be_checked()
            await expect(form.get_by_label("Âm lượng (0–100)")).to_have_value("70")
            await expect(form.get_by_label("Nếu đài ngừng lúc đến giờ")).to_have_value("default")
            await shot(page, "74-schedule-edit-phone")

            # move it to 06:30 on Tue, Wed, Fri
            await form.get_by_label("Giờ phát").fill("06:30")
            await form.get_by_label("T2", exact=True).uncheck()
            await form.get_by_label("T3", exact=True).check()
            await page.get_by_role("button", name="Lưu thay đổi").click()
            await expect(status).to_contain_text(f"Đã lưu thay đổi lịch #{notice}")
            await expect(
                card.get_by_role("heading", name="Lịch phát hằng tuần / lặp lại")
            ).to_be_visible()
            stored = await _api_schedule(station, notice)
            assert stored["time_of_day"] == "06:30:00"
            assert stored["weekdays"] == ["tue", "wed", "fri"]
            assert stored["targets"] == {"zones": ["Z1"]} and stored["volume"] == 70
            assert stored["priority"] == "scheduled" and stored["status"] == "active"
            await expect(page.locator("#recurring")).to_contain_text("T3, T4, T6 06:30")
            await page.get_by_role("button", name="Tuần sau").click()
            await _week_shows(page, notice, "06:30", {"tue", "wed", "fri"})

            # open it from a calendar slot; someone else changes it meanwhile: 412
            slot = page.locator(f'#week .slot-morning .entry[data-schedule="{notice}"]').first
            await slot.get_by_role("button", name=f"Sửa lịch #{notice}").click()
            await expect(
                card.get_by_role("heading", name=f"Sửa lịch phát #{notice}")
            ).to_be_visible()
            await expect(form.get_by_label("Giờ phát")).to_have_value("06:30")
            await _change_through_api(station, notice)
            await form.get_by_label("Âm lượng (0–100)").fill("50")
            await page.get_by_role("button", name="Lưu thay đổi").click()
            await expect(status).to_contain_text(f"Lịch #{notice} vừa được người khác thay đổi")
            await expect(status).to_contain_text("CHƯA được lưu")
            await expect(status).not_to_contain_text("changed")
            # the form now shows the current version, still in edit mode
            await expect(form.get_by_label("Giờ phát")).to_have_value("06:45")
            await expect(form.get_by_label("Âm lượng (0–100)")).to_have_value("70")
            await expect(
                card.get_by_role("heading", name=f"Sửa lịch phát #{notice}")
            ).to_be_visible()
            await shot(page, "75-schedule-edit-stale-phone")
            assert (await _api_schedule(station, notice))["volume"] == 70
            await form.get_by_label("Âm lượng (0–100)").fill("50")
            await page.get_by_role("button", name="Lưu thay đổi").click()
            await expect(status).to_contain_text(f"Đã lưu thay đổi lịch #{notice}")
            stored = await _api_schedule(station, notice)
            assert stored["volume"] == 50 and stored["time_of_day"] == "06:45:00"

            # to every cluster: C03 would have three sessions a day (quota 2), said in Vietnamese
            item = page.locator(f'#recurring li[data-schedule="{notice}"]')
            await item.get_by_role("button", name=f"Sửa lịch #{notice}").click()
            await expect(
                card.get_by_role("heading", name=f"Sửa lịch phát #{notice}")
            ).to_be_visible()
            await expect(form.get_by_label("Giờ phát")).to_have_value("06:45")
            await form.get_by_label("Tất cả cụm loa").check()
            await page.get_by_role("button", name="Lưu thay đổi").click()
            await expect(status).to_contain_text(
                "Vượt hạn mức thời lượng phát — nông thôn: 3 phiên"
            )
            await expect(status).to_contain_text("(tối đa 2 phiên một ngày)")
            await expect(status).to_contain_text("tại C03")
            await expect(status).not_to_contain_text("locality")
            assert (await _api_schedule(station, notice))["targets"] == {"zones": ["Z1"]}

            # onto the afternoon news: the conflict box as on create; accept, play after
            await form.get_by_label("Theo khu vực").check()
            await form.locator('#rec-places input[value="Z1"]').check()
            await form.get_by_label("Buổi").select_option("17:00")
            await page.get_by_role("button", name="Lưu thay đổi").click()
            conflict = page.locator("#conflict-box")
            await expect(conflict).to_be_visible()
            await expect(conflict).to_contain_text(
                f"Lịch #{ids['news_schedule']} «Bản tin chiều» trên C01, C02"
            )
            await conflict.get_by_role("button", name="Chấp nhận, phát sau").click()
            await expect(status).to_contain_text(f"Đã lưu thay đổi lịch #{notice}")
            await expect(conflict).to_be_hidden()
            stored = await _api_schedule(station, notice)
            news = await _api_schedule(station, ids["news_schedule"])
            assert stored["time_of_day"] == "17:00:00" and stored["rank"] > news["rank"]
            assert stored["volume"] == 50

            # in English: the edit labels exist; stopping the edit leaves it unchanged
            await page.get_by_role("link", name="EN", exact=True).click()
            item = page.locator(f'#recurring li[data-schedule="{notice}"]')
            await item.get_by_role("button", name=f"Edit schedule #{notice}").click()
            await expect(
                card.get_by_role("heading", name=f"Edit schedule #{notice}")
            ).to_be_visible()
            await expect(page.get_by_role("button", name="Save changes")).to_be_visible()
            await expect(form.get_by_label("Air time")).to_have_value("17:00")
            await page.get_by_role("button", name="Stop editing").click()
            await expect(status).to_contain_text("Editing stopped")
            heading = card.get_by_role("heading", name="Weekly / recurring schedule")
            await expect(heading).to_be_visible()
            await expect(page.get_by_role("button", name="Save recurring schedule")).to_be_visible()


async def test_edit_one_off_from_upcoming_list(settings: Settings, browser: Browser) -> None:
    """A one-off (on C01: C03 has its two sessions a day) is edited as "once": a new time;
    then a refused new schedule names the field by its label, in Vietnamese."""
    async with running(settings) as station:
        ids = await _setup(station, settings)
        sessions = station.app[keys.SESSIONS]
        tz = settings.station.tzinfo
        tomorrow = datetime.now(tz).date() + timedelta(days=1)
        rule = make_recurrence(
            "once",
            at=datetime.combine(tomorrow, time(9, 0), tz),
            timezone=settings.station.timezone,
        )
        made = await create_schedule(
            sessions,
            settings,
            ScheduleRequest(ids["notice"], {"clusters": ["C01"]}, rule),
            datetime.now(UTC),
        )
        one_off = made.schedule.id
        async with console_page(browser, station, expected=EXPECTED) as page:
            await _log_in(page)
            form = page.locator("#recurring-form")
            item = page.locator(f'#upcoming li[data-schedule="{one_off}"]')
            await item.get_by_role("button", name=f"Sửa lịch #{one_off}").click()
            await expect(form.get_by_label("Lặp lại")).to_have_value("once")
            await expect(form.get_by_label("Ngày phát")).to_have_value(tomorrow.isoformat())
            await expect(form.get_by_label("Giờ phát")).to_have_value("09:00")
            await expect(form.get_by_label("Từ ngày")).to_be_hidden()
            await form.get_by_label("Giờ phát").fill("09:30")
            await page.get_by_role("button", name="Lưu thay đổi").click()
            await expect(page.locator("#lx-status")).to_contain_text(
                f"Đã lưu thay đổi lịch #{one_off}"
            )
            stored = await _api_schedule(station, one_off)
            start = datetime.fromisoformat(stored["start_at"]).astimezone(tz)
            assert (start.date(), start.time()) == (tomorrow, time(9, 30))
            assert stored["recurrence"] == "once" and stored["status"] == "pending"

            # back to creating: a field refusal is named by its label, its reason in Vietnamese
            await expect(form.get_by_label("Lặp lại")).to_have_value("weekly")
            yesterday = datetime.now(tz).date() - timedelta(days=1)
            await form.get_by_label("Đến ngày").fill(yesterday.isoformat())
            await page.get_by_role("button", name="Lưu lịch lặp lại").click()
            status = page.locator("#lx-status")
            await expect(status).to_contain_text(
                "Dữ liệu không hợp lệ — Lịch lặp lại: “Đến ngày” đứng trước “Từ ngày”"
            )
            await expect(status).not_to_contain_text("valid_to")


def test_edit_strings_in_both_languages() -> None:
    catalogue = Catalogue.load()
    for key in (
        "schedules.edit",
        "schedules.save_changes",
        "schedules.stale",
        "schedules.violation_sessions_per_day",
        "schedules.violation_minutes_per_session",
        "schedules.violation_days_per_week",
        "schedules.kind_once",
    ):
        vi, en = catalogue.strings["vi"][key], catalogue.strings["en"][key]
        assert vi and en and vi != en, key
