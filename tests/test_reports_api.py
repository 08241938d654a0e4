"""The reports through the REST API: viewer access, formats, content types, download names."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from api_support import assert_problem, client, running, settings_for, user_with_token
from openpyxl import load_workbook
from test_reports import half_year

from station import _keys as keys
from station.config import Settings
from station.db import Role


@pytest.fixture
def settings(tmp_path: Path, mqtt_url: str, database_url: str, station_id: str) -> Settings:
    return settings_for(tmp_path, mqtt_url, database_url, station_id)


async def test_reports_download_in_every_format(settings: Settings) -> None:
    async with running(settings) as station:
        await half_year(station.app[keys.SESSIONS])
        viewer = await user_with_token(station, "xem", Role.VIEWER)
        async with client(station, viewer) as api:
            status, body, resp = await api.call("GET", "/reports/activity?period=2024H1")
            assert status == 200 and resp.content_type == "application/json"
            assert body["summary"]["plays_ok"] == 966 and body["summary"]["hours"] == 118.12
            assert resp.headers["Content-Disposition"] == (
                'attachment; filename="loaxa-activity-2024H1.json"'
            )
            url = f"{api.base}/api/v1/reports/activity?period=2024H1&format=xlsx&lang=en"
            async with api.http.get(url, headers=api.headers()) as r:
                assert r.status == 200
                assert r.content_type == (
                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
                )
                assert 'filename="loaxa-activity-2024H1.xlsx"' in r.headers["Content-Disposition"]
                book = load_workbook(io.BytesIO(await r.read()))
            summary = {row[0]: row[1] for row in book["Summary"].iter_rows(values_only=True)}
            assert summary["Plays requested"] == 978
            status, text, resp = await api.call(
                "GET", "/reports/inventory?from=2024-01-01&to=2024-12-31&format=csv"
            )
            assert status == 200 and resp.content_type == "text/csv"
            assert (
                "Mở rộng,3" in text
                and "loaxa-inventory-2024-01-01_2024-12-31.csv"
                in (resp.headers["Content-Disposition"])
            )
            status, html, resp = await api.call(
                "GET", "/reports/activity?period=2024H1&format=html&lang=en"
            )
            assert status == 200 and resp.content_type == "text/html"
            assert html.count("<svg") == 4 and "Airtime by topic" in html
            assert "Cluster availability (time online)" in html
            status, body, _ = await api.call("GET", "/reports/activity")
            assert_problem(status, body, 422, "period")
            status, body, _ = await api.call("GET", "/reports/activity?period=2024H2")
            assert_problem(status, body, 422)
        async with client(station) as anonymous:
            status, body, _ = await anonymous.call("GET", "/reports/inventory?period=2024Y")
            assert_problem(status, body, 401)
