"""The console's emergency screen in Chromium: trigger an emergency (confirmation, a second user
under the two-person rule) on simulated clusters, see it on air on the dashboard and the
emergency screen, stop it. Screenshots go to artifacts/screenshots/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from api_support import PASSWORD, running, settings_for
from sqlmodel import col, select
from test_web_browser import CHROMIUM, console_page, log_in, shot

from simulator import SimulatedFleet
from station import _keys as keys
from station._services import add_media, register_clusters
from station.api import create_user
from station.db import AuditEntry, Role
from station.media import synthesize_programme

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")

if CHROMIUM.exists():
    from playwright.async_api import Browser, expect
else:  # pragma: no cover
    Browser = object  # type: ignore[assignment,misc]


async def test_emergency_with_a_second_person_on_air_then_stopped(
    browser: Browser, tmp_path: Path, mqtt_url: str, database_url: str, station_id: str
) -> None:
    settings = settings_for(tmp_path, mqtt_url, database_url, station_id, emergency_two_person=True)
    ids = ["K01", "K02"]
    audio = tmp_path / "bao-bao.wav"
    await synthesize_programme(audio, 60.0)  # on air long enough to be seen, then stopped
    async with running(settings) as station:
        app = station.app
        sessions = app[keys.SESSIONS]
        await create_user(sessions, "hoa", Role.BROADCASTER, PASSWORD)
        await create_user(sessions, "minh", Role.APPROVER, PASSWORD)
        await register_clusters(sessions, [(c, f"Cụm loa {c[1:]}") for c in ids])
        app[keys.GATEWAY].remember(ids)
        await add_media(
            sessions, app[keys.MEDIA_STORE], app[keys.MEDIA_WORKER], settings, audio, "Báo bão số 3"
        )
        async with (
            SimulatedFleet(station.runtime.mqtt_url, station_id, ids),
            console_page(browser, station) as page,
        ):
            await log_in(page, "hoa")
            await expect(page.locator("#count-online")).to_have_text("2")
            await page.get_by_role("link", name="Phát khẩn cấp").click()
            await expect(page).to_have_url(re.compile(r"/console/emergency$"))
            await expect(page.locator("#em-active")).to_contain_text("Không có phát khẩn cấp")
            await expect(page.locator("#em-media")).to_contain_text("Báo bão số 3")
            await page.locator("#em-volume").fill("90")
            await shot(page, "60-emergency-form")

            # the confirmation step, with the second person's fields
            await page.get_by_role("button", name="Phát khẩn cấp").click()
            await expect(page.locator("#em-confirm-text")).to_contain_text("Tất cả cụm loa")
            await page.get_by_label("Người xác nhận", exact=True).fill("minh")
            await page.get_by_label("Mật khẩu người xác nhận").fill("sai mật khẩu")
            await page.get_by_role("button", name="Xác nhận phát").click()
            await expect(page.locator("#lx-status")).to_contain_text("Cần người thứ hai")
            await shot(page, "61-emergency-second-person-refused")
            await page.get_by_label("Mật khẩu người xác nhận").fill(PASSWORD)
            await shot(page, "62-emergency-confirm")
            await page.get_by_role("button", name="Xác nhận phát").click()
            await expect(page.locator("#lx-status")).to_contain_text("Đã bắt đầu phát khẩn cấp")
            active = page.locator("#em-active li.emergency-active")
            await expect(active).to_have_count(1)
            await expect(active).to_contain_text("hoa + minh")
            await expect(active).to_contain_text("K01 (Đang phát)", timeout=30_000)
            await expect(active).to_contain_text("K02 (Đang phát)")
            await shot(page, "63-emergency-active")

            # on air on the dashboard
            await page.get_by_role("link", name="Tổng quan").click()
            await expect(page.locator("#count-on-air")).to_have_text("2", timeout=30_000)
            await expect(page.locator("#on-air")).to_contain_text("Khẩn cấp")
            await shot(page, "64-dashboard-emergency-on-air")

            # stop it
            await page.get_by_role("link", name="Phát khẩn cấp").click()
            page.once("dialog", lambda dialog: dialog.accept())
            await page.locator("#em-active").get_by_role("button", name="Dừng phát").click()
            await expect(page.locator("#lx-status")).to_contain_text("Đã dừng phát khẩn cấp")
            await expect(page.locator("#em-active")).to_contain_text(
                "Không có phát khẩn cấp", timeout=30_000
            )
            await expect(page.locator("#em-recent")).to_contain_text("dừng bởi hoa")
            await shot(page, "65-emergency-stopped")
            await page.get_by_role("link", name="Tổng quan").click()
            await expect(page.locator("#count-on-air")).to_have_text("0", timeout=30_000)

            # English
            await page.get_by_role("link", name="Phát khẩn cấp").click()
            await page.get_by_role("link", name="EN").click()
            await expect(
                page.get_by_role("heading", name="Emergency broadcast", exact=True)
            ).to_be_visible()
            await shot(page, "66-emergency-english")
        async with sessions() as db:
            rows = await db.exec(
                select(AuditEntry.action).where(col(AuditEntry.action).startswith("emergency."))
            )
            assert sorted(rows.all()) == ["emergency.start", "emergency.stop"]
