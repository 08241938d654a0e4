"""Refusals in the console are said in the reader's language from their ``code``.

A technician registers a cluster that exists already and adds a zone that exists already:
the API's English detail ("cluster C1 is already registered") never shows; the console says
it in Vietnamese, and in English after the language toggle. A broadcaster whose programme title
is over the API's limit (an old page without the form's own limit) reads which field and why in
Vietnamese, then in English, not pydantic's English sentence.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from api_support import PASSWORD, running, settings_for
from browser_support import CHROMIUM
from test_web_browser import DESKTOP, console_page, log_in, shot

from station import _keys as keys
from station._registry import add_zone
from station._services import register_clusters
from station.api import create_user
from station.config import Settings
from station.db import MediaItem, Role

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")

if CHROMIUM.exists():  # the import is only needed (and only guaranteed) where the tests run
    from playwright.async_api import Browser, expect
else:  # pragma: no cover
    Browser = object  # type: ignore[assignment,misc]


@pytest.fixture
def settings(tmp_path: Path, mqtt_url: str, database_url: str, station_id: str) -> Settings:
    return settings_for(tmp_path, mqtt_url, database_url, station_id)


async def test_refusals_show_in_vietnamese_then_english(
    settings: Settings, browser: Browser
) -> None:
    async with running(settings) as station:
        sessions = station.app[keys.SESSIONS]
        await create_user(sessions, "tuan", Role.TECHNICIAN, PASSWORD)
        await register_clusters(sessions, [("C1", "Loa chợ")])
        await add_zone(sessions, "Z1", "Thôn Đông")
        async with console_page(browser, station, DESKTOP, expected=("409",)) as page:
            await log_in(page, "tuan")
            status = page.locator("#lx-status")

            await page.get_by_role("link", name="Cụm loa").click()
            await page.get_by_label("Mã cụm loa", exact=True).fill("C1")
            await page.get_by_role("button", name="Đăng ký", exact=True).click()
            await expect(status).to_have_text("Cụm loa C1 đã được đăng ký rồi.")
            await expect(status).to_have_class("status error")
            await shot(page, "80-refusal-cluster-exists-vi")

            await page.get_by_role("link", name="Thôn/bản & vùng").click()
            await page.get_by_label("Mã vùng").fill("Z1")
            await page.get_by_label("Tên vùng").fill("Thôn Đông 2")
            await page.get_by_role("button", name="Tạo vùng").click()
            await expect(status).to_have_text("Vùng phát Z1 đã có rồi.")

            await page.get_by_role("link", name="EN").click()
            await expect(page.locator("html")).to_have_attribute("lang", "en")
            await page.get_by_role("link", name="Clusters").click()
            await page.get_by_label("Cluster id", exact=True).fill("C1")
            await page.get_by_role("button", name="Register", exact=True).click()
            await expect(status).to_have_text("Cluster C1 is already registered.")
            await shot(page, "81-refusal-cluster-exists-en")


async def test_a_field_problem_shows_in_vietnamese_then_english(
    settings: Settings, browser: Browser
) -> None:
    async with running(settings) as station:
        sessions = station.app[keys.SESSIONS]
        await create_user(sessions, "hoa", Role.BROADCASTER, PASSWORD)
        async with sessions() as db:
            db.add(MediaItem(sha256="c" * 64, source_sha256="d" * 64, title="Bản tin sáng",
                             duration_ms=120_000, size_bytes=1000))  # fmt: skip
            await db.commit()
        async with console_page(browser, station, DESKTOP, expected=("422",)) as page:
            await log_in(page, "hoa")
            status = page.locator("#lx-status")

            async def create_with_long_title() -> None:
                title = page.locator("#prog-title")
                # The form stops typing at 200 characters; the API's limit is what is shown.
                await title.evaluate("el => el.removeAttribute('maxlength')")
                await title.fill("Bản tin " * 30)  # 240 characters
                await page.locator("#prog-media input[type=checkbox]").first.check()
                await page.locator("#prog-submit").click()

            await page.get_by_role("link", name="Chương trình & lịch phát").click()
            await create_with_long_title()
            await expect(status).to_have_text("Dữ liệu không hợp lệ — Tiêu đề: dài quá 200 ký tự")
            await expect(status).to_have_class("status error")
            await shot(page, "82-refusal-field-too-long-vi")

            await page.get_by_role("link", name="EN").click()
            await expect(page.locator("html")).to_have_attribute("lang", "en")
            await create_with_long_title()
            await expect(status).to_have_text(
                "Invalid input — Title: is longer than 200 characters"
            )
