"""Programmes in the web console, in a real Chromium (Debian's, via Playwright).

Journey (Vietnamese, phone width): a broadcaster builds a programme of a news file, a VOV relay
of 15 minutes and 3 s of silence, tagged with topic II.7; the API shows every item, the topic
and the language. An approver approves it (API). The broadcaster opens it with "Sửa", adds a
live slot on mount "xa" and drops the silence: saved as version 2, which says it needs approval
again and is listed "Chưa duyệt". Opened again while someone else renames it through the API:
saving gets 412, a Vietnamese message, and the form shows the current version; saving again
works. Screenshots: artifacts/screenshots/76-*..79-*.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from api_support import PASSWORD, client, running, settings_for
from test_web_browser import CHROMIUM, console_page, shot

from station import _keys as keys
from station.api import create_user
from station.app import RunningStation
from station.config import Settings
from station.db import MediaItem, Role

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")

if CHROMIUM.exists():  # the import is only needed (and only guaranteed) where the tests run
    from playwright.async_api import Browser, Page, expect
else:  # pragma: no cover
    Browser = Page = object  # type: ignore[assignment,misc]

RELAY = "http://vov1.example/live"
EXPECTED = ("status of 412 (Precondition Failed)",)


@pytest.fixture
def settings(tmp_path: Path, mqtt_url: str, database_url: str, station_id: str) -> Settings:
    return settings_for(tmp_path, mqtt_url, database_url, station_id, approval_required=True)


async def _setup(station: RunningStation) -> None:
    sessions = station.app[keys.SESSIONS]
    await create_user(sessions, "hoa", Role.BROADCASTER, PASSWORD)
    await create_user(sessions, "chu-tich", Role.APPROVER, PASSWORD)
    async with sessions() as db:
        db.add(
            MediaItem(
                sha256="c" * 64,
                source_sha256="d" * 64,
                title="Bản tin sáng",
                duration_ms=120_000,
                size_bytes=1000,
            )
        )
        await db.commit()


async def _api(
    station: RunningStation,
    user: str,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, str]:
    async with client(station) as api:
        assert (await api.login(user))[0] == 200
        status, answer, response = await api.call(method, path, body, headers)
    return status, answer, response.headers.get("ETag", "")


async def _log_in(page: Page) -> None:
    await page.goto("/console/login?next=/console/schedules")
    await page.get_by_label("Tên đăng nhập").fill("hoa")
    await page.get_by_label("Mật khẩu").fill(PASSWORD)
    await page.get_by_role("button", name="Đăng nhập").click()
    await expect(page.get_by_role("heading", name="Tạo chương trình")).to_be_visible()


async def _add(page: Page, kind: str, minutes: str = "", seconds: str = "", **fields: str) -> None:
    await page.get_by_label("Loại mục").select_option(kind)
    for label, value in fields.items():
        await page.locator(f"#prog-{label}").fill(value)
    await page.get_by_label("Thời lượng: phút").fill(minutes)
    await page.get_by_label("giây", exact=True).fill(seconds)
    await page.get_by_role("button", name="Thêm mục", exact=True).click()


async def test_programme_with_relay_and_topic_then_edit(
    settings: Settings, browser: Browser
) -> None:
    async with running(settings) as station:
        await _setup(station)
        async with console_page(browser, station, expected=EXPECTED) as page:
            await _log_in(page)
            status = page.locator("#lx-status")
            order = page.locator("#prog-items li")

            # build: the news file, a 15-minute VOV relay, 3 s of silence; topic II.7
            await page.get_by_label("Tên chương trình").fill("Thời sự và tiếp âm VOV")
            await page.get_by_label("Bản tin sáng").check()
            await page.get_by_label("Chủ đề (Phụ lục 01)").select_option("II.7")
            await expect(page.get_by_label("Ngôn ngữ phát thanh")).to_have_value("vi")
            await page.get_by_role("button", name="Thêm mục", exact=True).click()
            await expect(status).to_contain_text("Nhập địa chỉ luồng")  # relay without URL
            await _add(page, "relay", "15", url=RELAY, **{"item-title": "Thời sự VOV1"})
            await expect(page.locator("#prog-mount-box")).to_be_hidden()
            await _add(page, "silence", "", "3")
            await expect(order).to_have_count(3)
            await expect(order.nth(1)).to_contain_text(f"Tiếp âm: {RELAY}")
            await expect(order.nth(1)).to_contain_text("15:00")
            await expect(page.locator("#prog-total")).to_contain_text("3 mục · tổng 17:03")
            await shot(page, "76-programme-relay-phone")
            await page.get_by_role("button", name="Tạo chương trình").click()
            await expect(status).to_contain_text("Đã tạo chương trình “Thời sự và tiếp âm VOV”")
            await expect(order).to_have_count(1)  # the form is empty again ("no items")
            row = page.locator("#programmes li", has_text="Thời sự và tiếp âm VOV")
            await expect(row).to_contain_text("II.7")

            _, page_, _ = await _api(station, "hoa", "GET", "/programmes")
            [made] = page_["items"]
            assert [i["kind"] for i in made["items"]] == ["media", "relay", "silence"]
            assert made["items"][1]["url"] == RELAY and made["items"][1]["duration_s"] == 900
            assert made["items"][1]["title"] == "Thời sự VOV1"
            assert made["items"][2]["duration_s"] == 3
            assert made["topics"] == ["II.7"] and made["language"] == "vi"
            path = f"/programmes/{made['id']}"
            approved = await _api(station, "chu-tich", "POST", f"{path}/approvals", {"version": 1})
            assert approved[0] == 201

            # edit: a live slot on mount "xa" instead of the silence -> version 2, unapproved
            await page.reload()
            await expect(row).to_contain_text("Đã duyệt")
            await page.get_by_role(
                "button", name="Sửa chương trình «Thời sự và tiếp âm VOV»"
            ).click()
            await expect(page.get_by_role("heading", name="Sửa chương trình")).to_be_visible()
            await expect(page.get_by_label("Tên chương trình")).to_have_value(
                "Thời sự và tiếp âm VOV"
            )
            await expect(page.get_by_label("Chủ đề (Phụ lục 01)")).to_have_value("II.7")
            await expect(order).to_have_count(3)
            await expect(page.get_by_label("Bản tin sáng")).to_be_checked()
            await page.get_by_role("button", name="Bỏ mục 3").click()
            await _add(page, "live", "5", mount="xa")
            await page.get_by_role("button", name="Chuyển mục 3 lên").click()
            await expect(order.nth(1)).to_contain_text("Phát trực tiếp (xa)")
            await page.get_by_label("Ngôn ngữ phát thanh").select_option("ctu")
            await shot(page, "77-programme-edit-phone")
            await page.get_by_role("button", name="Lưu thay đổi").click()
            await expect(status).to_contain_text("Đã lưu “Thời sự và tiếp âm VOV” (phiên bản 2)")
            await expect(status).to_contain_text("cần lãnh đạo phê duyệt lại")
            await expect(row).to_contain_text("Chưa duyệt")
            await expect(page.get_by_role("heading", name="Tạo chương trình")).to_be_visible()
            _, now, etag = await _api(station, "hoa", "GET", path)
            assert now["version"] == 2 and not now["approved"] and now["language"] == "ctu"
            assert [i["kind"] for i in now["items"]] == ["media", "live", "relay"]
            assert now["items"][1]["mount"] == "xa" and now["items"][1]["duration_s"] == 300

            # someone renames it while it is open: 412, said in Vietnamese, form reloaded
            await page.get_by_role(
                "button", name="Sửa chương trình «Thời sự và tiếp âm VOV»"
            ).click()
            await expect(order).to_have_count(3)
            renamed = await _api(
                station, "hoa", "PATCH", path, {"title": "Thời sự sáng"}, {"If-Match": etag}
            )
            assert renamed[0] == 200
            await page.get_by_role("button", name="Bỏ mục 3").click()
            await page.get_by_role("button", name="Lưu thay đổi").click()
            await expect(status).to_contain_text("vừa được người khác thay đổi")
            await expect(status).to_contain_text("CHƯA được lưu")
            await expect(page.get_by_label("Tên chương trình")).to_have_value("Thời sự sáng")
            await expect(order).to_have_count(3)  # their version, with the relay
            await shot(page, "78-programme-stale-phone")
            await page.get_by_role("button", name="Bỏ mục 3").click()
            await page.get_by_role("button", name="Lưu thay đổi").click()
            await expect(status).to_contain_text("Đã lưu “Thời sự sáng” (phiên bản 4)")
            _, last, _ = await _api(station, "hoa", "GET", path)
            assert [i["kind"] for i in last["items"]] == ["media", "live"]
            assert last["topics"] == ["II.7"] and last["version"] == 4
            await shot(page, "79-programme-saved-phone")
