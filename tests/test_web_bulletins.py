"""The upstream bulletins and topic catalogue screens in Chromium on a 360 px phone.

A broadcaster sees a proposed priority bulletin with the programme it clashes with, places it
before item 1 (confirmed) and sees it scheduled; declines a normal bulletin from the inbox;
in English, a text-only bulletin is refused (409, said in plain words) and then declined.
An approver adds a topic, renames and retires it, and finds it again only with "show
retired"; a broadcaster sees the catalogue without the editing buttons. Screenshots go to
artifacts/screenshots/ (90-...)."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from api_support import PASSWORD, running
from sqlmodel import select
from test_web_browser import CHROMIUM, console_page, log_in, shot

from station import _keys as keys
from station._programmes import ItemInput, add_programme
from station._schedules import ScheduleRequest, create_schedule, make_recurrence
from station.api import create_user
from station.app import RunningStation
from station.config import Settings
from station.db import (
    BulletinClass,
    BulletinStatus,
    MediaItem,
    Role,
    Topic,
    UpstreamBulletin,
)
from tests.upstream_support import villages_with_clusters

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")

if CHROMIUM.exists():
    from playwright.async_api import Browser, expect
else:  # pragma: no cover
    Browser = object  # type: ignore[assignment,misc]

HCM = ZoneInfo("Asia/Ho_Chi_Minh")


async def seed(station: RunningStation) -> dict[str, int]:
    """Villages T01 (C01, C02) and T02 (C03); a daily programme to everyone (jingle-like
    silence + news); priority bulletins P1 (T01, 60 s audio) and P2 (T02, text only) and a
    normal bulletin N1 (the whole commune). Returns the bulletins' ids."""
    sessions = station.app[keys.SESSIONS]
    await villages_with_clusters(
        sessions,
        {"T01": ("Thôn Đông", 120), "T02": ("Thôn Tây", 80)},
        {"C01": "T01", "C02": "T01", "C03": "T02"},
    )
    now = datetime.now(HCM)
    async with sessions() as db:
        news = MediaItem(sha256="a" * 64, source_sha256="a" * 64, title="Tin xã",
                         duration_ms=300_000, size_bytes=1)  # fmt: skip
        audio = MediaItem(sha256="b" * 64, source_sha256="b" * 64, title="Bản tin tỉnh",
                          duration_ms=60_000, size_bytes=1)  # fmt: skip
        db.add_all([news, audio])
        await db.flush()
        rows = {
            "P1": UpstreamBulletin(
                upstream_id="QNA-2026-000432",
                bulletin_class=BulletinClass.PRIORITY,
                status=BulletinStatus.PROPOSED,
                title="Phòng chống sốt xuất huyết",
                text="Sở Y tế đề nghị các thôn phát bản tin phòng chống sốt xuất huyết.",
                media_id=audio.id,
                villages=["T01"],
                valid_from=now - timedelta(hours=1),
                valid_to=now + timedelta(days=2),
                issuer="Sở Y tế",
                received_via="pull",
            ),
            "P2": UpstreamBulletin(
                upstream_id="QNA-2026-000433",
                bulletin_class=BulletinClass.PRIORITY,
                status=BulletinStatus.PROPOSED,
                title="Lịch tiêm chủng",
                text="Chỉ có nội dung chữ, chưa có bản ghi âm.",
                villages=["T02"],
                valid_from=now - timedelta(hours=1),
                valid_to=now + timedelta(days=2),
                received_via="webhook",
            ),
            "N1": UpstreamBulletin(
                upstream_id="QNA-2026-000434",
                bulletin_class=BulletinClass.NORMAL,
                status=BulletinStatus.INBOX,
                title="Thông báo thu thuế",
                text="Thông báo về việc nộp thuế đất.",
                valid_to=now + timedelta(days=5),
                received_via="pull",
            ),
        }
        db.add_all(rows.values())
        await db.commit()
        ids = {name: row.id for name, row in rows.items()}
        news_id = news.id
    assert news_id is not None
    programme = await add_programme(
        sessions,
        "Chương trình thời sự",
        [
            ItemInput("silence", duration_s=30, title="Nhạc hiệu"),
            ItemInput("media", media_id=news_id),
        ],
        topics=["II.1"],
    )
    assert programme.id is not None
    slot = time(17, 0) if 4 <= now.hour < 7 else time(6, 0)  # never about to start right now
    await create_schedule(
        sessions,
        station.app[keys.SETTINGS],
        ScheduleRequest(programme.id, {"all": True}, make_recurrence("daily", time_of_day=slot)),
        now,
    )
    return {name: ident for name, ident in ids.items() if ident is not None}


async def test_place_a_priority_bulletin_and_decline_others(
    settings: Settings, browser: Browser
) -> None:
    async with running(settings) as station:
        sessions = station.app[keys.SESSIONS]
        await create_user(sessions, "hoa", Role.BROADCASTER, PASSWORD)
        ids = await seed(station)
        async with console_page(browser, station) as page:
            await log_in(page, "hoa")
            await page.get_by_role("link", name="Bản tin cấp trên").click()
            waiting = await (await page.request.get("/api/v1/bulletins")).json()
            assert [b["status"] for b in waiting["items"]] == ["proposed", "proposed", "inbox"]
            await expect(page.get_by_role("heading", name="Bản tin cấp trên")).to_be_visible()
            p1 = page.locator(f'#bl-proposed [data-bulletin="{ids["P1"]}"]')
            await expect(p1).to_contain_text("Phòng chống sốt xuất huyết")
            await expect(p1).to_contain_text("Ưu tiên")
            await expect(p1).to_contain_text("Thôn Đông")  # the village by its name
            await expect(p1).to_contain_text("Phát trên cụm loa: C01, C02")
            await expect(p1.get_by_label("Nghe bản tin Phòng chống sốt xuất huyết")).to_be_visible()
            # the clash: the daily programme on C01, C02 with its two items
            clash = p1.locator(".bl-clash").first
            await expect(clash).to_contain_text("Chương trình thời sự")
            await expect(clash.locator("li")).to_have_count(2)
            await expect(clash.locator("li").first).to_contain_text("Nhạc hiệu")
            await shot(page, "90-bulletins-proposed")

            await p1.get_by_label("Trước một mục của chương trình").check()
            await expect(p1.get_by_label("Mục", exact=True)).to_have_value("1")
            await p1.get_by_role("button", name="Xếp lịch…").click()
            await expect(p1.locator(".bl-confirm-text")).to_contain_text(
                "TRƯỚC mục 1 “Nhạc hiệu” của chương trình “Chương trình thời sự”"
            )
            await shot(page, "91-bulletins-confirm")
            await p1.get_by_role("button", name="Đồng ý, xếp lịch").click()
            await expect(page.locator("#lx-status")).to_have_text(
                "Đã xếp lịch bản tin “Phòng chống sốt xuất huyết”."
            )
            done = page.locator(f'#bl-done [data-bulletin="{ids["P1"]}"]')
            await expect(done).to_contain_text("Đã xếp lịch bởi hoa lúc")
            await expect(p1).to_have_count(0)
            await shot(page, "92-bulletins-scheduled")

            # the normal bulletin waits in the inbox: clashes on demand, then declined
            n1 = page.locator(f'#bl-inbox [data-bulletin="{ids["N1"]}"]')
            await expect(n1).to_contain_text("Toàn xã")
            await n1.get_by_role("button", name="Xem chương trình trùng giờ và xếp lịch").click()
            await expect(n1.locator(".bl-clash").first).to_contain_text("Chương trình thời sự")
            await n1.get_by_role("button", name="Từ chối…").click()
            await n1.get_by_label("Lý do (không bắt buộc)").fill("Đã phát tuần trước")
            await n1.get_by_role("button", name="Đồng ý, từ chối").click()
            await expect(page.locator("#lx-status")).to_have_text(
                "Đã từ chối bản tin “Thông báo thu thuế”."
            )
            await expect(page.locator(f'#bl-done [data-bulletin="{ids["N1"]}"]')).to_contain_text(
                "Đã từ chối bởi hoa lúc"
            )

            # in English: a text-only bulletin cannot be placed (409, said plainly); declined
            await page.get_by_role("link", name="EN").click()
            await expect(page.get_by_role("heading", name="Upstream bulletins")).to_be_visible()
            p2 = page.locator(f'#bl-proposed [data-bulletin="{ids["P2"]}"]')
            await expect(p2).to_contain_text("No recording yet (text only).")
            await p2.get_by_label("Instead of an item of a programme").check()
            await p2.get_by_role("button", name="Place…").click()
            await expect(p2.locator(".bl-confirm-text")).to_contain_text("INSTEAD OF item 1")
            await p2.get_by_role("button", name="Yes, place it").click()
            await expect(p2.locator(".bl-place .error")).to_contain_text("Could not place it:")
            await expect(page.locator("#lx-status")).to_contain_text("no audio")
            await shot(page, "93-bulletins-refused-en")
            p2 = page.locator(f'#bl-proposed [data-bulletin="{ids["P2"]}"]')
            await p2.get_by_role("button", name="Decline…").click()
            await p2.get_by_role("button", name="Yes, decline it").click()
            await expect(page.locator(f'#bl-done [data-bulletin="{ids["P2"]}"]')).to_contain_text(
                "Declined by hoa at"
            )
            await expect(page.locator("#bl-proposed")).to_contain_text(
                "No priority bulletin is waiting."
            )
            await shot(page, "94-bulletins-done-en")

            # the inbox list behind the screen: open ones by default, the latest N of all
            waiting = await (await page.request.get("/api/v1/bulletins")).json()
            assert waiting["items"] == []
            latest = await page.request.get("/api/v1/bulletins?include_done=true&limit=2")
            assert [b["upstream_id"] for b in (await latest.json())["items"]] == [
                "QNA-2026-000433",
                "QNA-2026-000434",
            ]

        async with sessions() as db:
            rows = {
                b.id: b
                for b in (await db.exec(select(UpstreamBulletin))).all()
                if b.id in ids.values()
            }
        p1_row, n1_row, p2_row = rows[ids["P1"]], rows[ids["N1"]], rows[ids["P2"]]
        assert p1_row.status == BulletinStatus.SCHEDULED and p1_row.decided_by == "hoa"
        assert p1_row.schedule_ids and p1_row.programme_id is not None
        assert n1_row.status == BulletinStatus.DECLINED and "Đã phát tuần trước" in n1_row.note
        assert p2_row.status == BulletinStatus.DECLINED and not p2_row.schedule_ids


async def test_topic_catalogue_add_rename_retire(settings: Settings, browser: Browser) -> None:
    async with running(settings) as station:
        sessions = station.app[keys.SESSIONS]
        await create_user(sessions, "lanh", Role.APPROVER, PASSWORD)
        await create_user(sessions, "hoa", Role.BROADCASTER, PASSWORD)
        async with console_page(browser, station) as page:
            await log_in(page, "lanh")
            await page.get_by_role("link", name="Chủ đề").click()
            await expect(page.get_by_role("heading", name="Chủ đề", exact=True)).to_be_visible()
            await expect(page.locator('tr[data-topic="II.1"]')).to_be_visible()  # seeded

            await page.get_by_text("Thêm chủ đề").click()  # folded: the list is long on a phone
            form = page.locator("#topic-form")
            await form.get_by_label("Mã").fill("ii.10")  # the roman part goes to capitals
            await expect(form.get_by_label("Mã")).to_have_value("II.10")
            await form.get_by_label("Tên tiếng Việt").fill("Chuyển đổi số cấp xã")
            await form.get_by_label("Trong một năm").check()
            await form.get_by_label("Năm", exact=True).fill("2026")
            await form.get_by_role("button", name="Thêm", exact=True).click()
            await expect(page.locator("#lx-status")).to_have_text("Đã thêm chủ đề II.10.")
            row = page.locator('tr[data-topic="II.10"]')
            await expect(row).to_contain_text("Chuyển đổi số cấp xã")
            await expect(row).to_contain_text("Chuyên đề (mục II)")
            # the same code again: refused, said in Vietnamese
            await form.get_by_label("Mã").fill("II.10")
            await form.get_by_label("Tên tiếng Việt").fill("Trùng mã")
            await form.get_by_role("button", name="Thêm", exact=True).click()
            await expect(page.locator("#topic-error")).to_contain_text(
                "Mã II.10 đã được dùng (kể cả chủ đề đã thôi dùng)"
            )
            await shot(page, "95-topics-added")

            await row.get_by_role("button", name="Đổi tên chủ đề II.10").click()
            rename = page.locator("#rename-form")
            await rename.get_by_label("Tên tiếng Anh").fill("Digital transformation")
            await page.get_by_role("button", name="Lưu tên").click()
            await expect(page.locator("#lx-status")).to_have_text("Đã đổi tên chủ đề II.10.")
            await expect(row).to_contain_text("Digital transformation")

            await row.get_by_role("button", name="Thôi dùng chủ đề II.10").click()
            await expect(page.locator("#retire-text")).to_contain_text("Thôi dùng chủ đề II.10")
            await shot(page, "96-topics-retire-confirm")
            await page.get_by_role("button", name="Đồng ý, thôi dùng").click()
            await expect(page.locator("#lx-status")).to_have_text("Đã thôi dùng chủ đề II.10.")
            await expect(row).to_have_count(0)
            await page.get_by_label("Hiện cả chủ đề đã thôi dùng").check()
            await expect(row).to_contain_text("Đã thôi dùng")
            await expect(row.get_by_role("button")).to_have_count(0)
            await shot(page, "97-topics-retired-shown")

            await page.get_by_role("link", name="EN").click()
            await expect(page.get_by_role("heading", name="Topics", exact=True)).to_be_visible()
            await page.get_by_label("Show retired topics too").check()
            await expect(row).to_contain_text("Digital transformation")
            await expect(row).to_contain_text("Retired")
            await shot(page, "98-topics-en")

        async with console_page(browser, station) as page:  # a broadcaster only reads
            await log_in(page, "hoa")
            await page.get_by_role("link", name="Chủ đề").click()
            await expect(page.locator('tr[data-topic="II.1"]')).to_be_visible()
            await expect(page.locator("#topic-table button")).to_have_count(0)
            await expect(page.locator("#topic-form")).to_have_count(0)

        async with sessions() as db:
            topic = await db.get(Topic, "II.10")
        assert topic is not None and not topic.active and topic.title_en == "Digital transformation"
        assert topic.valid_from is not None and topic.valid_from.isoformat() == "2026-01-01"
