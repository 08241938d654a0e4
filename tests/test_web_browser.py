"""The web console in a real Chromium (Debian's, driven by Playwright; no browser download).

Journeys: log in (with the forced change of a one-time password), switch language, upload
media, create a programme and schedule it, see it in the week calendar, watch it play on
simulated clusters on the dashboard, read proof of play and the audit log, manage users,
register a cluster. A screenshot of each step goes to artifacts/screenshots/ (CI keeps them).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from api_support import PASSWORD, running, settings_for
from browser_support import CHROMIUM

from simulator import SimulatedFleet
from station import _keys as keys
from station._registry import add_village
from station._services import create_programme, register_clusters
from station.api import create_user
from station.app import RunningStation
from station.config import Settings
from station.db import MediaItem, Role
from station.media import synthesize_programme

SHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
PHONE = {"width": 360, "height": 780}
DESKTOP = {"width": 1280, "height": 900}

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")

if CHROMIUM.exists():  # the import is only needed (and only guaranteed) where the tests run
    from playwright.async_api import Browser, Locator, Page, expect
else:  # pragma: no cover
    Browser = Locator = Page = object  # type: ignore[assignment,misc]


@pytest.fixture
def settings(tmp_path: Path, mqtt_url: str, database_url: str, station_id: str) -> Settings:
    return settings_for(tmp_path, mqtt_url, database_url, station_id)


@asynccontextmanager
async def console_page(
    browser: Browser,
    station: RunningStation,
    viewport: dict[str, int] = PHONE,
    expected: tuple[str, ...] = ("40",),
) -> AsyncIterator[Page]:
    """A fresh browser context (own cookies) in Vietnam; fails on any script error but the
    logged HTTP refusals a journey provokes on purpose (console errors naming ``expected``)."""
    context = await browser.new_context(
        viewport=viewport,  # type: ignore[arg-type]
        locale="vi-VN",
        timezone_id="Asia/Ho_Chi_Minh",
        base_url=station.base_url,
        accept_downloads=True,
        permissions=["microphone"],
    )
    context.set_default_timeout(15_000)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda msg: (
            errors.append(msg.text)
            if msg.type == "error" and not any(e in msg.text for e in expected)
            else None
        ),
    )
    try:
        yield page
    finally:
        await context.close()
    assert errors == []


async def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.mouse.wheel(0, -100_000)  # the sticky status line back at the top
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def heard_something(meter: Locator) -> None:
    """The level meter moves (polled from Python: the page's CSP forbids eval)."""
    for _ in range(100):
        if await meter.evaluate("el => el.value") > 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the level meter never moved")


async def log_in(page: Page, username: str, password: str = PASSWORD) -> None:
    await page.goto("/console/")
    await expect(page).to_have_url(re.compile(r"/console/login"))
    await page.get_by_label("Tên đăng nhập").fill(username)
    await page.get_by_label("Mật khẩu").fill(password)
    await page.get_by_role("button", name="Đăng nhập").click()


async def test_login_one_time_password_language_and_logout(
    settings: Settings, browser: Browser
) -> None:
    async with running(settings) as station:
        await create_user(
            station.app[keys.SESSIONS],
            "lan",
            Role.ADMIN,
            "mot-lan-thoi-123",
            must_change_password=True,
        )
        async with console_page(browser, station) as page:
            await log_in(page, "lan", "wrong password")
            await expect(page.get_by_role("alert")).to_have_text("Sai tên đăng nhập hoặc mật khẩu.")
            await shot(page, "01-login-wrong-password")
            await page.get_by_label("Mật khẩu").fill("mot-lan-thoi-123")
            await page.get_by_role("button", name="Đăng nhập").click()
            await expect(page).to_have_url(re.compile(r"/console/password$"))
            await expect(page.locator(".notice")).to_contain_text("mật khẩu dùng một lần")
            await shot(page, "02-forced-password-change")
            await page.get_by_label("Mật khẩu hiện tại").fill("mot-lan-thoi-123")
            await page.get_by_label("Mật khẩu mới (ít nhất 10 ký tự)").fill(PASSWORD)
            await page.get_by_label("Nhập lại mật khẩu mới").fill(PASSWORD)
            await page.get_by_role("button", name="Đổi mật khẩu").click()
            await expect(page.get_by_role("heading", name="Tổng quan")).to_be_visible()
            await shot(page, "03-dashboard-vi")

            await page.get_by_role("link", name="EN").click()
            await expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
            await expect(page.locator("html")).to_have_attribute("lang", "en")
            await page.get_by_role("link", name="Media library").click()
            await expect(page.get_by_role("heading", name="Media library")).to_be_visible()
            await shot(page, "04-media-en")
            await page.get_by_role("link", name="VI", exact=True).click()
            await expect(page.get_by_role("heading", name="Thư viện âm thanh")).to_be_visible()

            await page.get_by_role("button", name="Đăng xuất").click()
            await expect(page).to_have_url(re.compile(r"/console/login"))
            await page.goto("/console/media")
            await expect(page).to_have_url(re.compile(r"/console/login\?next=/console/media"))


async def test_upload_schedule_calendar_and_watch_it_play(
    settings: Settings, browser: Browser, tmp_path: Path
) -> None:
    ids = ["C01", "C02", "C03"]
    audio = tmp_path / "ban-tin-sang.wav"
    await synthesize_programme(audio, 8.0)  # on air long enough for 3 s polls
    async with running(settings) as station:
        sessions = station.app[keys.SESSIONS]
        await create_user(sessions, "hoa", Role.BROADCASTER, PASSWORD)
        await register_clusters(sessions, [(c, f"Cụm loa {c[1:]}") for c in ids])
        station.app[keys.GATEWAY].remember(ids)
        async with (
            SimulatedFleet(station.runtime.mqtt_url, settings.station.id, ids),
            console_page(browser, station) as page,
        ):
            await log_in(page, "hoa")
            await expect(page.locator("#count-online")).to_have_text("3")
            await shot(page, "10-dashboard-online")

            # upload, with a progress bar
            await page.get_by_role("link", name="Thư viện âm thanh").click()
            await page.get_by_label("Tệp âm thanh").set_input_files(str(audio))
            await page.get_by_label("Tiêu đề").fill("Bản tin sáng thứ Hai")
            await page.get_by_role("button", name="Tải lên").click()
            await expect(page.locator("#upload-progress-wrap")).to_be_visible()
            await expect(page.locator("#lx-status")).to_contain_text("Đã thêm", timeout=30_000)
            await expect(page.locator("#upload-progress")).to_have_attribute("value", "100")
            row = page.locator("#media-table tbody tr").filter(has_text="Bản tin sáng thứ Hai")
            await expect(row).to_contain_text("0:08")
            player = row.get_by_label("Nghe Bản tin sáng thứ Hai")
            heard = await page.request.get(str(await player.get_attribute("src")))
            assert heard.status == 200 and heard.headers["content-type"] == "audio/mpeg"
            await shot(page, "11-media-uploaded")

            # a programme from it, scheduled tomorrow morning: the calendar shows it
            await page.get_by_role("link", name="Chương trình & lịch phát").click()
            await page.get_by_label("Tên chương trình").fill("Chương trình buổi sáng")
            await page.get_by_label(re.compile("Bản tin sáng thứ Hai")).check()
            await page.get_by_role("button", name="Tạo chương trình").click()
            await expect(page.locator("#lx-status")).to_contain_text("Đã tạo chương trình")
            tomorrow = datetime.now(settings.station.tzinfo).date() + timedelta(days=1)
            await page.get_by_label("Ngày", exact=True).fill(tomorrow.isoformat())
            await page.get_by_label("Giờ (giờ của đài)").fill("06:00")
            await page.get_by_role("button", name="Đặt lịch", exact=True).click()
            await expect(page.locator("#lx-status")).to_contain_text("Đã đặt lịch phát")
            morning = page.locator(f'.day[data-date="{tomorrow.isoformat()}"] .slot-morning')
            await expect(morning.locator(".entry")).to_contain_text("06:00")
            await expect(morning.locator(".entry")).to_contain_text("Chương trình buổi sáng")
            await shot(page, "12-calendar-phone")
            await page.set_viewport_size(DESKTOP)  # type: ignore[arg-type]
            await shot(page, "13-calendar-desktop")
            await page.set_viewport_size(PHONE)  # type: ignore[arg-type]

            # play it now on every cluster, and watch it on the dashboard
            await page.get_by_role("button", name="Phát ngay").click()
            await expect(page.locator("#lx-status")).to_contain_text("Đã đặt lịch phát")
            await page.get_by_role("link", name="Tổng quan").click()
            await expect(page.locator("#next-up")).to_contain_text("Chương trình buổi sáng")
            await shot(page, "14-dashboard-next")
            await expect(page.locator("#count-on-air")).to_have_text("3", timeout=30_000)
            await expect(page.locator("#on-air")).to_contain_text("Chương trình buổi sáng")
            await expect(page.locator(".tile.on-air")).to_have_count(3)
            await shot(page, "15-dashboard-on-air")
            await expect(page.locator("#count-on-air")).to_have_text("0", timeout=30_000)

            # proof of play
            await page.get_by_role("link", name="Nhật ký phát").click()
            finished = page.locator("#plays-table tbody tr").filter(has_text="Phát xong")
            await expect(finished).to_have_count(3)
            await shot(page, "16-plays")


async def test_audit_log_users_and_cluster_register(settings: Settings, browser: Browser) -> None:
    async with running(settings) as station:
        sessions = station.app[keys.SESSIONS]
        await create_user(sessions, "lan", Role.ADMIN, PASSWORD)
        await create_user(sessions, "tuan", Role.TECHNICIAN, PASSWORD)
        async with console_page(browser, station) as page:
            # a technician registers a cluster
            await log_in(page, "tuan")
            await page.get_by_role("link", name="Cụm loa").click()
            await page.get_by_label("Mã cụm loa").fill("C09")
            await page.get_by_label("Tên", exact=True).fill("Cụm loa thôn Đông")
            await page.get_by_role("button", name="Đăng ký", exact=True).click()
            await expect(page.locator("#lx-status")).to_contain_text("Đã đăng ký cụm loa C09")
            await expect(page.locator('#cluster-table tr[data-cluster="C09"]')).to_contain_text(
                "Cụm loa thôn Đông"
            )
            await expect(page.locator('#village-grid .tile[data-cluster="C09"]')).to_be_visible()
            await shot(page, "20-cluster-registered")
            await page.get_by_role("button", name="Đăng xuất").click()

        async with console_page(browser, station, DESKTOP) as page:
            await log_in(page, "lan")
            await page.get_by_role("link", name="Nhật ký thao tác").click()
            rows = page.locator("#audit-table tbody tr")
            await expect(rows.filter(has_text="cluster.register")).to_contain_text("C09")
            await page.get_by_label("Thao tác").fill("login")
            await page.get_by_role("button", name="Lọc").click()
            await expect(rows.filter(has_text="cluster.register")).to_have_count(0)
            await expect(rows.filter(has_text="user:tuan")).to_have_count(1)
            await expect(rows.filter(has_text="user:lan")).to_have_count(1)
            await shot(page, "21-audit-filtered")
            csv_link = page.get_by_role("link", name="Xuất CSV")
            await expect(csv_link).to_have_attribute("href", re.compile(r"action=login$"))
            async with asyncio.timeout(60):  # Playwright waits for a download without limit
                async with page.expect_download() as download_info:
                    await csv_link.click()
                download = await download_info.value
                saved = Path(await download.path())
            csv_text = await asyncio.to_thread(saved.read_text, "utf-8")
            assert "login" in csv_text and "cluster.register" not in csv_text

            await page.get_by_role("link", name="Người dùng").click()
            await page.get_by_label("Tên đăng nhập").fill("mai")
            await page.get_by_label("Họ tên").fill("Nguyễn Thị Mai")
            await page.get_by_label("Vai trò", exact=True).select_option("broadcaster")
            await page.get_by_role("button", name="Thêm", exact=True).click()
            await expect(page.locator("#user-password")).not_to_be_empty()
            await expect(page.locator('#user-table tr[data-user="mai"]')).to_contain_text(
                "phải đổi mật khẩu"
            )
            await shot(page, "22-users")


async def test_live_push_to_talk_from_the_browser_microphone(
    settings: Settings, browser: Browser
) -> None:
    async with running(settings) as station:
        await create_user(station.app[keys.SESSIONS], "hoa", Role.BROADCASTER, PASSWORD)
        async with console_page(browser, station) as page:
            await log_in(page, "hoa")
            await page.get_by_role("link", name="Phát trực tiếp").click()
            talk = page.get_by_role("button", name="Giữ để nói")
            box = await talk.bounding_box()
            assert box is not None
            await page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            await page.mouse.down()
            row = page.locator('#mount-table tr[data-mount="truc-tiep"]')
            await expect(row).to_contain_text("micro đã kết nối")
            await expect(page.locator("#live-state")).to_have_text("Đang phát trực tiếp…")
            await expect(talk).to_have_attribute("aria-pressed", "true")
            await heard_something(page.locator("#live-level"))
            await shot(page, "30-live-talking")
            await page.mouse.up()
            await expect(talk).to_have_attribute("aria-pressed", "false")
            await expect(row).not_to_contain_text("micro đã kết nối")
            await page.get_by_role("link", name="Tổng quan").click()
            await expect(page.locator("#on-air")).to_contain_text("truc-tiep")
            await page.get_by_role("link", name="Phát trực tiếp").click()
            await page.get_by_role("button", name="Kết thúc phát trực tiếp").click()
            await expect(page.locator("#lx-status")).to_contain_text("Đã kết thúc kênh truc-tiep")
            await expect(row).to_have_count(0)
            await shot(page, "31-live-ended")


async def test_approval_before_air(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str, browser: Browser
) -> None:
    settings = settings_for(tmp_path, mqtt_url, database_url, station_id, approval_required=True)
    async with running(settings) as station:
        sessions = station.app[keys.SESSIONS]
        await create_user(sessions, "hoa", Role.BROADCASTER, PASSWORD)
        await create_user(sessions, "chu-tich", Role.APPROVER, PASSWORD)
        async with sessions() as db:
            item = MediaItem(
                sha256="a" * 64,
                source_sha256="b" * 64,
                title="Thông báo",
                duration_ms=20_000,
                size_bytes=60_000,
            )
            db.add(item)
            await db.commit()
            await db.refresh(item)
        assert item.id is not None
        await create_programme(sessions, "Thông báo tiêm phòng", [item.id])
        async with console_page(browser, station) as page:
            await log_in(page, "hoa")
            await page.get_by_role("link", name="Chương trình & lịch phát").click()
            await expect(page.get_by_label("Chương trình", exact=True)).to_contain_text(
                "Chưa duyệt"
            )
            await page.get_by_role("button", name="Đặt lịch", exact=True).click()
            await expect(page.locator("#lx-status")).to_contain_text(
                "Chương trình chưa được lãnh đạo phê duyệt"
            )
            await shot(page, "40-approval-required")
        async with console_page(browser, station) as page:
            await log_in(page, "chu-tich")
            await page.get_by_role("link", name="Chương trình & lịch phát").click()
            await expect(page.locator("#schedule-form")).to_have_count(0)  # approvers do not edit
            await page.get_by_role("button", name="Phê duyệt").click()
            await expect(page.locator("#lx-status")).to_contain_text("Đã phê duyệt")
            await expect(page.locator("#programmes")).to_contain_text("Đã duyệt")
            await shot(page, "41-approved")
        async with console_page(browser, station) as page:
            await log_in(page, "hoa")
            await page.get_by_role("link", name="Chương trình & lịch phát").click()
            await expect(page.locator("#programmes")).to_contain_text("Đã duyệt")
            await page.get_by_role("button", name="Đặt lịch", exact=True).click()
            await expect(page.locator("#lx-status")).to_contain_text("Đã đặt lịch phát")
            await expect(page.locator("#upcoming")).to_contain_text("Thông báo tiêm phòng")


async def test_reports(settings: Settings, browser: Browser) -> None:
    async with running(settings) as station:
        await create_user(station.app[keys.SESSIONS], "chu-tich", Role.APPROVER, PASSWORD)
        async with console_page(browser, station) as page:
            await log_in(page, "chu-tich")
            await page.get_by_role("link", name="Báo cáo").click()
            await page.get_by_label("Cụm loa (số lượng").check()
            await page.get_by_label("Định dạng").select_option("csv")
            link = page.get_by_role("link", name="Mở báo cáo")
            await expect(link).to_have_attribute("href", re.compile(r"/reports/inventory\?"))
            await shot(page, "50-reports")
            href = await link.get_attribute("href")
            report = await page.request.get(str(href))
            assert report.status == 200, await report.text()


async def test_cluster_register_bundle_replace_retire_and_map(
    settings: Settings, browser: Browser
) -> None:
    async with running(settings) as station:
        sessions = station.app[keys.SESSIONS]
        await create_user(sessions, "tuan", Role.TECHNICIAN, PASSWORD)
        await add_village(sessions, "V1", "Thôn Đông", 120, 21.02, 105.80)
        await add_village(sessions, "V2", "Thôn Tây", 80, 21.00, 105.77)
        async with console_page(browser, station, DESKTOP) as page:
            await log_in(page, "tuan")
            await page.get_by_role("link", name="Cụm loa").click()
            await expect(page.locator('#village-map g[data-village="V1"]')).to_be_visible()
            await expect(page.locator("#alert-list")).to_contain_text("Không có cảnh báo")
            # register: the provisioning bundle is shown once
            await page.get_by_label("Mã cụm loa", exact=True).fill("C21")
            await page.get_by_role("button", name="Đăng ký", exact=True).click()
            await expect(page.locator("#lx-status")).to_contain_text("Đã đăng ký cụm loa C21")
            await expect(page.locator("#bundle-text")).to_contain_text("username=C21")
            await expect(page.locator("#bundle-text")).to_contain_text("password=")
            await shot(page, "60-cluster-bundle")
            # move it to a village, then replace it by a new ICT cluster
            await page.locator('#cluster-table tr[data-cluster="C21"]').click()
            await page.get_by_label("Chuyển đến thôn").select_option("V1")
            await page.get_by_role("button", name="Chuyển", exact=True).click()
            await expect(page.locator("#lx-status")).to_contain_text("Đã chuyển cụm loa C21")
            await page.get_by_label("Thay bằng mã mới").fill("C22")
            await page.get_by_role("button", name="Thay thế").click()
            await expect(page.locator("#lx-status")).to_contain_text("C21 đã được thay bằng C22")
            await expect(page.locator("#bundle-text")).to_contain_text("username=C22")
            await expect(page.locator('#cluster-table tr[data-cluster="C21"]')).to_contain_text(
                "Đã thu hồi"
            )
            await expect(page.locator('#cluster-table tr[data-cluster="C22"]')).to_contain_text(
                "V1"
            )
            await expect(page.locator('#village-grid .tile[data-cluster="C21"]')).to_have_count(0)
            await page.get_by_label("Cụm loa được chọn").fill("C22")
            await page.get_by_role("button", name="Phát tiếng bíp nhận diện").click()
            await expect(page.locator("#lx-status")).to_contain_text("Đã gửi lệnh nhận diện")
            await shot(page, "61-cluster-replaced")


async def test_media_delete_refusal_edit_and_cluster_password_reissue(
    settings: Settings, browser: Browser
) -> None:
    """A broadcaster edits an item, is told in Vietnamese which programme keeps another from
    being deleted, deletes an unused one; a technician reissues a cluster's password (the new
    bundle shown once) and records its SIM number."""
    async with running(settings) as station:
        sessions = station.app[keys.SESSIONS]
        await create_user(sessions, "hoa", Role.BROADCASTER, PASSWORD)
        await create_user(sessions, "tuan", Role.TECHNICIAN, PASSWORD)
        async with sessions() as db:
            used = MediaItem(sha256="a" * 64, source_sha256="b" * 64, title="Bản tin sáng",
                             duration_ms=30_000, size_bytes=90_000)  # fmt: skip
            spare = MediaItem(sha256="c" * 64, source_sha256="d" * 64, title="Nhạc hiệu cũ",
                              duration_ms=10_000, size_bytes=30_000)  # fmt: skip
            db.add_all([used, spare])
            await db.commit()
        assert used.id is not None and spare.id is not None
        await create_programme(sessions, "Chương trình buổi sáng", [used.id])
        async with console_page(browser, station, DESKTOP, expected=("409",)) as page:
            page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
            await log_in(page, "hoa")
            await page.get_by_role("link", name="Thư viện").click()
            row = page.locator(f'#media-table tr[data-media="{used.id}"]')
            await row.get_by_role("button", name="Sửa").click()
            edit = page.locator("#media-edit")
            await edit.get_by_label("Chủ đề").fill("II.4, I.9")
            await edit.get_by_role("button", name="Lưu").click()
            await expect(page.locator("#lx-status")).to_contain_text("Đã lưu “Bản tin sáng”")
            await expect(row).to_contain_text("I.9, II.4")
            await row.get_by_role("button", name="Xoá").click()
            status = page.locator("#lx-status")
            await expect(status).to_contain_text("Không xoá được “Bản tin sáng”")
            await expect(status).to_contain_text("chương trình “Chương trình buổi sáng”")
            await expect(row).to_be_visible()
            await shot(page, "67-media-in-use")
            spare_row = page.locator(f'#media-table tr[data-media="{spare.id}"]')
            await spare_row.get_by_role("button", name="Xoá").click()
            await expect(status).to_contain_text("Đã xoá “Nhạc hiệu cũ”")
            await expect(spare_row).to_have_count(0)
        async with console_page(browser, station, DESKTOP) as page:
            page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
            await log_in(page, "tuan")
            await page.get_by_role("link", name="Cụm loa").click()
            await page.get_by_label("Mã cụm loa", exact=True).fill("C31")
            await (
                page.locator("#register-form")
                .get_by_label("Số thuê bao SIM")
                .fill("+84 912 345 678")
            )
            await page.get_by_role("button", name="Đăng ký", exact=True).click()
            await expect(page.locator("#bundle-text")).to_contain_text("username=C31")
            first = await page.locator("#bundle-text").text_content()
            await expect(page.locator('#cluster-table tr[data-cluster="C31"]')).to_contain_text(
                "0912345678"
            )
            await page.get_by_label("Cụm loa được chọn").fill("C31")
            await page.get_by_role("button", name="Cấp lại mật khẩu").click()
            await expect(page.locator("#lx-status")).to_contain_text("Đã cấp mật khẩu mới cho C31")
            await expect(page.locator("#bundle-text")).not_to_have_text(first or "")
            await expect(page.locator("#bundle-text")).to_contain_text("password=")
            await page.get_by_role("button", name="Mở cụm loa được chọn").click()
            form = page.locator("#cluster-edit-form")
            await form.get_by_label("Số thuê bao SIM").fill("0987 654 321")
            await form.get_by_role("button", name="Lưu thay đổi").click()
            await expect(page.locator("#lx-status")).to_contain_text("Đã lưu thông tin cụm loa C31")
            await expect(page.locator('#cluster-table tr[data-cluster="C31"]')).to_contain_text(
                "0987654321"
            )
            await shot(page, "68-cluster-reissued")
