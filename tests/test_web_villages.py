"""The villages & zones and CSV import screens in Chromium, as a technician on a 360 px phone:
coverage highlighted, add and edit a village, a zone with members added and removed, a CSV
import checked first (one bad row shown with its reason) then imported; the same in English.
Screenshots go to artifacts/screenshots/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from api_support import PASSWORD, running, settings_for
from sqlmodel import select
from test_web_browser import CHROMIUM, console_page, log_in, shot

from station import _keys as keys
from station._registry import add_village, move_cluster
from station._services import register_clusters
from station.api import create_user
from station.config import Settings
from station.db import AuditEntry, Cluster, ClusterStatus, ClusterZone, Role, Village

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")

if CHROMIUM.exists():
    from playwright.async_api import Browser, FilePayload, expect
else:  # pragma: no cover
    Browser = FilePayload = object  # type: ignore[assignment,misc]


@pytest.fixture
def settings(tmp_path: Path, mqtt_url: str, database_url: str, station_id: str) -> Settings:
    return settings_for(tmp_path, mqtt_url, database_url, station_id)


async def test_villages_zones_and_csv_import(settings: Settings, browser: Browser) -> None:
    async with running(settings) as station:
        sessions = station.app[keys.SESSIONS]
        await create_user(sessions, "tuan", Role.TECHNICIAN, PASSWORD)
        await add_village(sessions, "V1", "Thôn Đông", 120)
        await add_village(sessions, "V2", "Thôn Tây", 80)
        await register_clusters(sessions, [("C1", "Cụm loa Đông"), ("C2", "Cụm loa Tây")])
        await move_cluster(sessions, "C1", village_id="V1")
        await move_cluster(sessions, "C2", village_id="V2")
        async with sessions() as db:
            c2 = await db.get(Cluster, "C2")
            assert c2 is not None
            c2.status = ClusterStatus.FAULTY  # V2's only cluster is broken: V2 is not covered
            db.add(c2)
            await db.commit()

        async with console_page(browser, station) as page:
            await log_in(page, "tuan")
            await page.get_by_role("link", name="Thôn/bản & vùng").click()
            await expect(page).to_have_url(re.compile(r"/console/villages$"))
            rows = page.locator("#village-table tbody tr")
            await expect(page.locator("#coverage-summary")).to_have_text(
                "1/2 thôn, bản không có cụm loa nào hoạt động."
            )
            v2 = page.locator('#village-table tr[data-village="V2"]')
            await expect(v2).to_have_class(re.compile(r"\buncovered\b"))
            await expect(v2).to_contain_text("Không có loa hoạt động")
            await expect(page.locator('#village-table tr[data-village="V1"]')).to_have_class(
                re.compile(r"\bcovered\b")
            )
            await shot(page, "80-villages-coverage")

            # add a village, then edit another one (GET with ETag, PATCH with If-Match)
            await page.get_by_label("Mã thôn").fill("V3")
            await page.get_by_label("Tên thôn").fill("Thôn Bắc")
            await page.get_by_label("Số hộ").fill("55")
            await page.get_by_role("button", name="Lưu").click()
            await expect(page.locator("#lx-status")).to_have_text("Đã thêm thôn V3.")
            await expect(page.locator('#village-table tr[data-village="V3"]')).to_contain_text(
                "Thôn Bắc"
            )
            await page.locator('button[data-edit="V1"]').click()
            await expect(page.locator("#village-form-title")).to_have_text("Sửa thôn V1")
            await expect(page.get_by_label("Mã thôn")).to_have_value("V1")
            await page.get_by_label("Số hộ").fill("130")
            await page.get_by_label("Vĩ độ").fill("21.05")
            await page.get_by_label("Kinh độ").fill("105.8")
            await page.get_by_role("button", name="Lưu").click()
            await expect(page.locator("#lx-status")).to_have_text("Đã lưu thôn V1.")
            await expect(page.locator('#village-table tr[data-village="V1"]')).to_contain_text(
                "130"
            )

            # a zone, with a member added and another added then removed
            await page.get_by_label("Mã vùng").fill("cho")
            await page.get_by_label("Tên vùng").fill("Khu chợ")
            await page.get_by_role("button", name="Tạo vùng").click()
            await expect(page.locator("#lx-status")).to_have_text("Đã tạo vùng cho.")
            zone = page.locator('#zone-list li[data-zone="cho"]')
            for cluster_id in ("C1", "C2"):
                await zone.get_by_label("Chọn cụm loa cho vùng Khu chợ").select_option(cluster_id)
                await zone.get_by_role("button", name="Thêm vào vùng").click()
                await expect(zone.locator(f'[data-member="{cluster_id}"]')).to_be_visible()
            await zone.get_by_role("button", name="Bỏ C2 khỏi vùng Khu chợ").click()
            await expect(page.locator("#lx-status")).to_have_text("Đã bỏ C2 khỏi vùng Khu chợ.")
            await expect(zone.locator('[data-member="C2"]')).to_have_count(0)
            await expect(zone.locator('[data-member="C1"]')).to_be_visible()
            await shot(page, "81-villages-zone")

            await page.get_by_label("Chỉ hiện thôn không có loa hoạt động").check()
            await expect(rows).to_have_count(2)
            await expect(page.locator('#village-table tr[data-village="V1"]')).to_have_count(0)
            await shot(page, "82-villages-uncovered-only")

            # CSV import: check first, one bad row shown with its line and reason, then import
            await page.get_by_role("link", name="Nhập từ tệp CSV").click()
            await expect(page).to_have_url(re.compile(r"/console/import$"))
            await page.get_by_label("Loại dữ liệu").select_option("villages")
            csv_text = "id,name,households\nV4,Thôn Nam,40\nV5,,12\nV6,Thôn Trung,\n"
            await page.get_by_label("Tệp CSV").set_input_files(
                files=FilePayload(name="thon.csv", mimeType="text/csv", buffer=csv_text.encode())
            )
            await page.get_by_role("button", name="Kiểm tra").click()
            await expect(page.locator("#import-summary")).to_have_text("2 dòng hợp lệ, 1 dòng lỗi.")
            bad = page.locator('#import-table tr[data-line="3"]')
            await expect(bad).to_have_class(re.compile(r"row-error"))
            await expect(bad).to_contain_text("Lỗi")
            await expect(bad).to_contain_text("Thôn, bản cần có tên.")  # its code, in Vietnamese
            await shot(page, "83-import-checked")
            async with sessions() as db:  # the check wrote nothing
                assert await db.get(Village, "V4") is None
            await page.get_by_role("button", name="Nhập", exact=True).click()
            await expect(page.locator("#import-summary")).to_have_text(
                "Đã nhập 2 dòng, 1 dòng bị từ chối."
            )
            await expect(page.locator('#import-table tr[data-line="2"]')).to_contain_text("Đã nhập")
            await shot(page, "84-import-done")

            # the same screens in English
            await page.get_by_role("link", name="Thôn/bản & vùng").click()
            await page.locator('.langs a[data-lang="en"]').click()
            await expect(page.get_by_role("heading", name="Villages & zones")).to_be_visible()
            await expect(page.locator("#coverage-summary")).to_have_text(
                "4 of 5 villages have no working cluster."
            )
            await expect(page.locator('#village-table tr[data-village="V4"]')).to_contain_text(
                "No working cluster"
            )
            await shot(page, "85-villages-en")
            await page.get_by_role("link", name="Import from CSV").click()
            await page.get_by_label("What to import").select_option("villages")
            await page.get_by_label("CSV file").set_input_files(
                files=FilePayload(name="v.csv", mimeType="text/csv", buffer=b"id,name\nV4,Again\n")
            )
            await page.get_by_role("button", name="Check").click()
            await expect(page.locator("#import-summary")).to_have_text(
                "0 valid rows, 1 rows with errors."
            )
            await expect(page.locator('#import-table tr[data-line="2"]')).to_contain_text(
                "already exists"
            )
            await expect(page.get_by_role("button", name="Import", exact=True)).to_be_disabled()
            await shot(page, "86-import-en")

        async with sessions() as db:
            members = (await db.exec(select(ClusterZone))).all()
            actions = set((await db.exec(select(AuditEntry.action))).all())
            v1 = await db.get(Village, "V1")
        assert [(m.zone_id, m.cluster_id) for m in members] == [("cho", "C1")]
        assert v1 is not None and (v1.households, v1.lat) == (130, 21.05)
        assert {"village.create", "village.update", "zone.create", "zone.assign", "zone.remove",
                "village.import"} <= actions  # fmt: skip
