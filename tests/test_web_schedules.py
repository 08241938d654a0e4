"""Recurring schedules in the web console, in a real Chromium (Debian's, via Playwright).

Journey: a broadcaster makes a weekly schedule for a zone that overlaps the daily morning
news; the conflict is shown, accepted to play after; the week calendar shows both recurring
occurrences (marked as overlapping) and the airtime used per day; in English, a daily
afternoon schedule lands in the afternoon slot; then it is cancelled. Screenshots go to
artifacts/screenshots/ (phone width 360 px, and desktop).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time
from pathlib import Path

import pytest
from api_support import PASSWORD, running
from schedule_support import console_zone, quota_settings, ten_minute_media
from test_web_browser import CHROMIUM, DESKTOP, PHONE, console_page, shot

from station import _keys as keys
from station._schedules import ScheduleRequest, create_schedule, make_recurrence
from station._services import create_programme
from station.app import RunningStation
from station.config import Settings

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")

if CHROMIUM.exists():  # the import is only needed (and only guaranteed) where the tests run
    from playwright.async_api import Browser, Page, expect
else:  # pragma: no cover
    Browser = Page = object  # type: ignore[assignment,misc]


@pytest.fixture
def settings(tmp_path: Path, mqtt_url: str, database_url: str, station_id: str) -> Settings:
    return quota_settings(
        tmp_path,
        mqtt_url,
        database_url,
        station_id,
        max_sessions_per_day=3,
        max_minutes_per_session=45,
    )


async def _setup(station: RunningStation, settings: Settings) -> tuple[int, int, int]:
    """Clusters C01-C03 (zone Z1: C01, C02), two 10-minute programmes, and the daily news at
    06:00 on every cluster. Returns (news programme, notice programme, news schedule)."""
    sessions = station.app[keys.SESSIONS]
    await console_zone(station)
    media = await ten_minute_media(sessions, 2)
    news = await create_programme(sessions, "Bản tin sáng", [media[0]])
    notice = await create_programme(sessions, "Thông báo xã", [media[1]])
    assert news.id and notice.id
    daily = make_recurrence("daily", time_of_day=time(6, 0), timezone=settings.station.timezone)
    made = await create_schedule(
        sessions, settings, ScheduleRequest(news.id, {"all": True}, daily), datetime.now(UTC)
    )
    assert made.schedule.id
    return news.id, notice.id, made.schedule.id


async def test_weekly_schedule_conflict_calendar_both_languages(
    settings: Settings, browser: Browser
) -> None:
    async with running(settings) as station:
        news, notice, daily = await _setup(station, settings)
        async with console_page(browser, station) as page:
            await page.goto("/console/login?next=/console/schedules")
            await page.get_by_label("Tên đăng nhập").fill("hoa")
            await page.get_by_label("Mật khẩu").fill(PASSWORD)
            await page.get_by_role("button", name="Đăng nhập").click()
            await expect(
                page.get_by_role("heading", name="Lịch phát hằng tuần / lặp lại")
            ).to_be_visible()
            # the daily news is in every morning slot of the week, with the quota use
            mornings = page.locator(".slot-morning .entry.recurring")
            await expect(mornings).to_have_count(7)
            await expect(page.locator(".quota").first).to_have_text("nông thôn: 1/3 phiên")
            await expect(page.locator("#recurring")).to_contain_text("Bản tin sáng")

            # a weekly notice for zone Thôn Đông at 06:05 overlaps it: the conflict is shown
            form = page.locator("#recurring-form")
            await form.locator("#rec-programme").select_option(str(notice))
            await expect(form.get_by_label("Lặp lại")).to_have_value("weekly")
            await form.get_by_label("Giờ phát").fill("06:05")
            await expect(form.get_by_label("Buổi")).to_have_value("")
            await form.get_by_label("T2", exact=True).check()  # with the preset T4, T6
            await form.get_by_label("Theo khu vực").check()
            await form.locator('#rec-places input[value="Z1"]').check()
            await form.get_by_label("Âm lượng (0–100)").fill("70")
            await page.get_by_role("button", name="Lưu lịch lặp lại").click()
            conflict = page.locator("#conflict-box")
            await expect(conflict).to_be_visible()
            await expect(conflict).to_contain_text(f"Lịch #{daily} «Bản tin sáng» trên C01, C02")
            await shot(page, "70-recurring-conflict-phone")
            await conflict.get_by_role("button", name="Chấp nhận, phát sau").click()
            await expect(page.locator("#lx-status")).to_contain_text("Đã lưu lịch lặp lại")
            await expect(conflict).to_be_hidden()

            # the calendar marks the overlap on both; the list says who goes first
            clashing = page.locator(".slot-morning .entry.clash")
            await expect(clashing.filter(has_text="Thông báo xã").first).to_contain_text("06:05")
            await expect(clashing.filter(has_text="Bản tin sáng").first).to_contain_text("06:00")
            assert await clashing.filter(has_text="Thông báo xã").count() >= 1
            await expect(page.locator("#clash-card")).to_be_visible()
            await expect(page.locator("#clashes")).to_contain_text(
                f"#{daily} «Bản tin sáng» ⟷ #{daily + 1} «Thông báo xã»"
            )
            await expect(page.locator("#clashes")).to_contain_text(f"#{daily} phát trước")
            await expect(page.locator("#recurring")).to_contain_text("Thông báo xã")
            await expect(page.locator("#recurring")).to_contain_text("T2, T4, T6 06:05")
            # one listener session each morning: the 06:05 notice follows the news
            await expect(page.locator(".quota").first).to_have_text("nông thôn: 1/3 phiên")
            await shot(page, "71-recurring-calendar-phone")
            await page.set_viewport_size(DESKTOP)  # type: ignore[arg-type]
            await shot(page, "72-recurring-calendar-desktop")
            await page.set_viewport_size(PHONE)  # type: ignore[arg-type]

            # in English: a daily afternoon schedule lands in the afternoon slot
            await page.get_by_role("link", name="EN", exact=True).click()
            await expect(
                page.get_by_role("heading", name="Weekly / recurring schedule")
            ).to_be_visible()
            form = page.locator("#recurring-form")
            await form.locator("#rec-programme").select_option(str(news))
            await form.get_by_label("Repeat").select_option("daily")
            await expect(form.get_by_label("Weekdays on air")).to_be_hidden()
            await form.get_by_label("Slot").select_option("17:00")
            await expect(form.get_by_label("Air time")).to_have_value("17:00")
            await page.get_by_role("button", name="Save recurring schedule").click()
            await expect(page.locator("#lx-status")).to_contain_text("Recurring schedule #")
            afternoon = page.locator(".slot-afternoon .entry.recurring")
            await expect(afternoon.first).to_contain_text("17:00")
            await expect(afternoon.first).to_contain_text("Bản tin sáng")
            await expect(
                page.locator(".quota", has_text="rural: 2/3 sessions").first
            ).to_be_visible()
            await expect(page.locator("#clashes")).to_contain_text(f"#{daily} plays first")
            await shot(page, "73-recurring-calendar-en")

            # cancel it: the afternoon slots empty, the morning ones stay
            item = page.locator("#recurring li").filter(has_text=re.compile("Every day 17:00"))
            page.once("dialog", lambda dialog: dialog.accept())
            await item.get_by_role("button", name="Cancel").click()
            await expect(page.locator("#lx-status")).to_contain_text("Broadcast cancelled")
            await expect(afternoon).to_have_count(0)
            await expect(page.locator(".slot-morning .entry.recurring").first).to_be_visible()
            await page.get_by_role("link", name="VI", exact=True).click()
            listed = page.get_by_role("heading", name="Lịch lặp lại", exact=True)
            await expect(listed).to_be_visible()
