"""The Source Information System link in the console, Chromium on a 360 px phone.

A broadcaster opens "Bản tin cấp trên": an emergency bulletin waiting for confirmation stands
out at the top; she confirms it (a confirmation step) and it airs through the emergency path.
She uploads a recording for a text-only priority bulletin, which becomes placeable, and records
another one with the browser's microphone (Chromium's fake tone); in the
exchange log ("Nhật ký trao đổi") she sees the outbox with a failed message and retries it;
the same section in English. Screenshots go to artifacts/screenshots/ (99-...)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from api_support import PASSWORD, running
from sqlmodel import select
from test_web_browser import CHROMIUM, console_page, log_in, shot

from station import _keys as keys
from station._services import add_media
from station.api import create_user
from station.app import RunningStation
from station.config import Settings
from station.db import (
    BulletinClass,
    BulletinStatus,
    MediaItem,
    OutboxMessage,
    OutboxStatus,
    PlaySession,
    Role,
    UpstreamBulletin,
    UpstreamExchange,
)
from station.media import synthesize_programme
from tests.upstream_support import villages_with_clusters

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")

if CHROMIUM.exists():
    from playwright.async_api import Browser, expect
else:  # pragma: no cover
    Browser = object  # type: ignore[assignment,misc]


async def seed(station: RunningStation, tmp_path: Path) -> dict[str, int]:
    """Village T01 (C01); emergency E1 (recorded, waiting for confirmation), priority P2 (text
    only); an outbox with one failed message and a few exchanges."""
    app = station.app
    sessions = app[keys.SESSIONS]
    await villages_with_clusters(sessions, {"T01": ("Thôn Đông", 120)}, {"C01": "T01"})
    source = tmp_path / "lu.wav"
    await synthesize_programme(source, 5.0)
    audio, _ = await add_media(
        sessions, app[keys.MEDIA_STORE], app[keys.MEDIA_WORKER], app[keys.SETTINGS], source, "Lũ"
    )
    now = datetime.now(UTC)
    async with sessions() as db:
        rows = {
            "E1": UpstreamBulletin(
                upstream_id="QNA-2026-000501",
                bulletin_class=BulletinClass.EMERGENCY,
                status=BulletinStatus.CONFIRM_NEEDED,
                title="Cảnh báo lũ quét",
                text="Nước lũ lên nhanh, người dân di chuyển lên chỗ cao.",
                media_id=audio.id,
                valid_to=now + timedelta(hours=6),
                issuer="Ban chỉ huy PCTT tỉnh",
                received_via="webhook",
            ),
            "P2": UpstreamBulletin(
                upstream_id="QNA-2026-000502",
                bulletin_class=BulletinClass.PRIORITY,
                status=BulletinStatus.PROPOSED,
                title="Lịch tiêm chủng",
                text="Chỉ có nội dung chữ, chưa có bản ghi âm.",
                villages=["T01"],
                valid_from=now - timedelta(hours=1),
                valid_to=now + timedelta(days=2),
                received_via="pull",
            ),
            "N3": UpstreamBulletin(
                upstream_id="QNA-2026-000503",
                bulletin_class=BulletinClass.NORMAL,
                status=BulletinStatus.INBOX,
                title="Thông báo họp dân",
                text="Mời bà con dự họp thôn tối thứ Sáu.",
                valid_to=now + timedelta(days=3),
                received_via="pull",
            ),
        }
        db.add_all(rows.values())
        db.add_all(
            [
                OutboxMessage(kind="schedule", key="schedule:1:1", status=OutboxStatus.SENT),
                OutboxMessage(kind="report", key="report:activity:2026-10:auto",
                              status=OutboxStatus.FAILED, http_status=422,
                              last_error="unknown period", attempts=1),
            ]
        )  # fmt: skip
        db.add(UpstreamExchange(direction="down", kind="webhook", key="QNA-2026-000501",
                                status="ok"))  # fmt: skip
        db.add(UpstreamExchange(direction="up", kind="report", key="report:activity:2026-10:auto",
                                status="failed", http_status=422,
                                error="unknown period"))  # fmt: skip
        await db.commit()
        return {name: row.id for name, row in rows.items() if row.id is not None}


async def test_confirm_emergency_record_audio_and_exchange_log(
    settings: Settings, browser: Browser, tmp_path: Path
) -> None:
    async with running(settings) as station:
        sessions = station.app[keys.SESSIONS]
        await create_user(sessions, "hoa", Role.BROADCASTER, PASSWORD)
        ids = await seed(station, tmp_path)
        recording = tmp_path / "ghi-am.wav"
        await synthesize_programme(recording, 4.0)
        async with console_page(browser, station) as page:
            await log_in(page, "hoa")
            await page.get_by_role("link", name="Bản tin cấp trên").click()
            urgent = page.locator("#bl-emergency-card")
            await expect(urgent).to_be_visible()
            await expect(urgent.locator("h2")).to_have_text("Bản tin khẩn cấp chờ xác nhận")
            # the first card of the screen
            first = page.locator("section.card").first
            await expect(first).to_have_id("bl-emergency-card")
            e1 = urgent.locator(f'[data-bulletin="{ids["E1"]}"]')
            await expect(e1).to_contain_text("Cảnh báo lũ quét")
            await expect(e1).to_contain_text("Chờ xác nhận")
            await shot(page, "99-upstream-emergency-waiting")
            await e1.get_by_role("button", name="Xác nhận phát khẩn cấp").click()
            await expect(e1.locator(".bl-confirm-text")).to_have_text(
                "Phát khẩn cấp “Cảnh báo lũ quét” NGAY tới Toàn xã? "
                "Chương trình đang phát ở đó sẽ bị ngắt."
            )
            await shot(page, "99a-upstream-emergency-confirm")
            await e1.get_by_role("button", name="Đồng ý, phát khẩn cấp ngay").click()
            await expect(page.locator("#lx-status")).to_have_text(
                "Đã phát khẩn cấp bản tin “Cảnh báo lũ quét”."
            )
            await expect(urgent).to_be_hidden()
            await expect(page.locator(f'#bl-done [data-bulletin="{ids["E1"]}"]')).to_contain_text(
                "Đã phát khẩn cấp"
            )

            # a text-only priority bulletin: upload a recording, then it can be placed
            p2 = page.locator(f'#bl-proposed [data-bulletin="{ids["P2"]}"]')
            await expect(p2).to_contain_text("Chưa có bản ghi âm (chỉ có nội dung chữ).")
            form = p2.get_by_role("form", name="Bản ghi âm cho Lịch tiêm chủng")
            await expect(form.locator("h4")).to_have_text("Tải/ghi âm cho bản tin")
            await form.get_by_role("button", name="Tải lên và gắn vào bản tin").click()
            await expect(form.locator(".error")).to_have_text("Hãy chọn tệp âm thanh.")
            await form.get_by_label("Tệp âm thanh").set_input_files(str(recording))
            await shot(page, "99b-upstream-audio-chosen")
            await form.get_by_role("button", name="Tải lên và gắn vào bản tin").click()
            await expect(page.locator("#lx-status")).to_have_text(
                "Đã gắn bản ghi âm vào bản tin “Lịch tiêm chủng”."
            )
            p2 = page.locator(f'#bl-proposed [data-bulletin="{ids["P2"]}"]')
            await expect(p2.get_by_label("Nghe bản tin Lịch tiêm chủng")).to_be_visible()
            await expect(p2.locator(".bl-audio")).to_have_count(0)
            await expect(p2).to_contain_text("dài 0:04")

            # a normal text-only bulletin: read it into the browser's microphone
            n3 = page.locator(f'#bl-inbox [data-bulletin="{ids["N3"]}"]')
            await n3.get_by_role("button", name="Ghi âm").click()
            stop = n3.get_by_role("button", name="Dừng ghi âm và tải lên")
            await expect(stop).to_be_enabled()  # after a second of sound
            await stop.click()
            await expect(page.locator("#lx-status")).to_have_text(
                "Đã gắn bản ghi âm vào bản tin “Thông báo họp dân”."
            )
            n3 = page.locator(f'#bl-inbox [data-bulletin="{ids["N3"]}"]')
            await expect(n3.get_by_label("Nghe bản tin Thông báo họp dân")).to_be_visible()

            # the exchange log, the outbox and "retry now"
            log = page.locator("#bl-exchange-card")
            await expect(log.get_by_role("heading", name="Nhật ký trao đổi")).to_be_visible()
            await expect(log.locator("#bl-outbox-counts")).to_contain_text("1 lỗi")
            await expect(log.locator(".bl-failed")).to_contain_text("unknown period")
            await expect(log.locator("#bl-outbox")).not_to_contain_text("null")
            failed = log.locator("tbody tr.row-error")
            await expect(failed).to_contain_text("Lỗi")
            await expect(failed).to_contain_text("Báo cáo")
            await log.locator("h2").scroll_into_view_if_needed()  # static: the rows re-render
            await shot(page, "99c-upstream-exchange-log")
            await log.get_by_role("button", name="Gửi lại ngay").click()
            await expect(page.locator("#lx-status")).to_contain_text(
                "Đã đưa 1 tin lỗi vào lại hàng đợi"
            )
            await expect(log.locator("#bl-outbox-counts")).to_contain_text("0 lỗi")

            await page.get_by_role("link", name="EN").click()
            log = page.locator("#bl-exchange-card")
            await expect(log.get_by_role("heading", name="Exchange log")).to_be_visible()
            await expect(log.locator("#bl-outbox-counts")).to_contain_text("0 failed")
            await shot(page, "99d-upstream-exchange-log-en")

        async with sessions() as db:
            emergencies = (
                await db.exec(select(PlaySession).where(PlaySession.kind == "emergency"))
            ).all()
            e1_row = await db.get(UpstreamBulletin, ids["E1"])
            p2_row = await db.get(UpstreamBulletin, ids["P2"])
            n3_row = await db.get(UpstreamBulletin, ids["N3"])
            recorded = (
                await db.get(MediaItem, n3_row.media_id)
                if n3_row is not None and n3_row.media_id is not None
                else None
            )
            failed_left = (
                await db.exec(select(OutboxMessage).where(OutboxMessage.status == "failed"))
            ).all()
        assert (
            len(emergencies) == 1
            and emergencies[0].triggered_by == "upstream:Ban chỉ huy PCTT tỉnh"
        )
        assert e1_row is not None and e1_row.status == BulletinStatus.TRIGGERED
        assert e1_row.decided_by == "hoa"
        assert p2_row is not None and p2_row.media_id is not None
        assert p2_row.status == BulletinStatus.PROPOSED
        assert failed_left == []
        assert recorded is not None and recorded.duration_ms >= 900
