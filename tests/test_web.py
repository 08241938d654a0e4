"""The web console over plain HTTP: page shells, redirects, language, catalogues, dashboard."""

from __future__ import annotations

import json
import re
from pathlib import Path

import aiohttp
import pytest
from api_support import PASSWORD, Client, client, running, settings_for, user_with_token

from station import _keys as keys
from station.api import create_user
from station.config import Settings
from station.db import Cluster, Role
from station.web import LANGUAGES, SCREENS, Catalogue

WEB = Path(__file__).resolve().parents[1] / "station" / "web"


async def page(
    web: Client, path: str, allow_redirects: bool = True
) -> tuple[int, str, aiohttp.ClientResponse]:
    """GET a console path (not under /api/v1) with the client's cookies."""
    async with web.http.get(web.base + path, allow_redirects=allow_redirects) as response:
        return response.status, await response.text(), response


@pytest.fixture
def settings(tmp_path: Path, mqtt_url: str, database_url: str, station_id: str) -> Settings:
    return settings_for(tmp_path, mqtt_url, database_url, station_id)


def test_catalogues_have_the_same_keys_and_cover_every_literal_key() -> None:
    catalogue = Catalogue.load()
    keys_by_lang = {lang: set(catalogue.strings[lang]) for lang in LANGUAGES}
    assert keys_by_lang["vi"] == keys_by_lang["en"]
    used: set[str] = set()
    for template in (WEB / "templates").glob("*.html"):
        used |= set(re.findall(r"\bt\('([a-z_.0-9]+)'", template.read_text("utf-8")))
    for script in (WEB / "static").glob("*.js"):
        used |= set(re.findall(r"LX\.t\(\"([a-z_.0-9]+)\"", script.read_text("utf-8")))
    used |= {s.title_key for s in SCREENS}
    used = {k for k in used if not k.endswith((".", "_"))}  # prefixes of computed keys
    assert used - keys_by_lang["vi"] == set()
    # Vietnamese really is Vietnamese (diacritics), English is not a copy.
    assert "Đăng nhập" in catalogue.strings["vi"].values()
    assert catalogue.text("en", "auth.login") == "Log in"
    assert catalogue.text("en", "common.shown_of", n=2, total=5) == "Showing 2 of 5"
    assert "</" not in catalogue.for_script("vi")


async def test_pages_need_a_session_and_follow_the_role(settings: Settings) -> None:
    async with running(settings) as station:
        sessions = station.app[keys.SESSIONS]
        await create_user(sessions, "viewer1", Role.VIEWER, PASSWORD)
        async with client(station) as web:
            status, body, response = await page(web, "/", allow_redirects=False)
            assert status == 302 and response.headers["Location"] == "/console/"
            status, body, response = await page(web, "/console/audit", allow_redirects=False)
            assert status == 302
            assert response.headers["Location"] == "/console/login?next=/console/audit"
            status, body, response = await page(web, "/console/login")
            assert status == 200 and "Đăng nhập" in body
            csp = response.headers["Content-Security-Policy"]
            assert "default-src 'self'" in csp and "script-src 'self'" in csp
            assert response.headers["Cache-Control"] == "no-store"
            # no open redirect after login
            status, body, _ = await page(web, "/console/login?next=//evil.example/")
            assert 'data-next="/console/"' in body

            assert (await web.login("viewer1"))[0] == 200
            status, body, _ = await page(web, "/console/")
            assert status == 200 and 'name="loaxa-csrf" content="' + web.csrf in body
            assert 'href="/console/audit"' not in body  # no audit menu entry for viewers
            assert 'href="/console/media"' in body
            status, body, _ = await page(web, "/console/audit")
            assert status == 403 and "Vai trò của bạn" in body
            status, body, response = await page(web, "/console/login", allow_redirects=False)
            assert status == 302  # already logged in


async def test_language_choice_is_remembered(settings: Settings) -> None:
    async with running(settings) as station, client(station) as web:
        status, body, response = await page(
            web, "/console/lang/en?next=/console/login", allow_redirects=False
        )
        assert status == 302 and response.headers["Location"] == "/console/login"
        status, body, _ = await page(web, "/console/login")
        assert '<html lang="en">' in body and "Log in" in body
        status, body, _ = await page(web, "/console/lang/fr", allow_redirects=False)
        assert status == 404
        status, body, response = await page(
            web, "/console/lang/vi?next=https://evil.example/", allow_redirects=False
        )
        assert response.headers["Location"] == "/console/"


async def test_one_time_password_sends_to_the_password_page(settings: Settings) -> None:
    async with running(settings) as station:
        await create_user(
            station.app[keys.SESSIONS], "lan", Role.ADMIN, PASSWORD, must_change_password=True
        )
        async with client(station) as web:
            assert (await web.login("lan"))[0] == 200
            status, body, response = await page(web, "/console/", allow_redirects=False)
            assert status == 302 and response.headers["Location"] == "/console/password"
            status, body, _ = await page(web, "/console/password")
            assert status == 200 and "mật khẩu dùng một lần" in body


async def test_static_assets_are_served(settings: Settings) -> None:
    async with running(settings) as station, client(station) as web:
        for name in ("console.js", "console.css", *(s.script for s in SCREENS)):
            status, body, _ = await page(web, f"/console/static/{name}")
            assert status == 200 and body, name


async def test_dashboard_summary(settings: Settings) -> None:
    async with running(settings) as station:
        token = await user_with_token(station, "viewer1", Role.VIEWER)
        async with station.app[keys.SESSIONS]() as db:
            db.add(Cluster(id="C01", name="Cụm 1", online=True))
            db.add(Cluster(id="C02", name="Cụm 2"))
            await db.commit()
        async with client(station, token) as api:
            status, body, _ = await api.call("GET", "/console/dashboard")
        assert status == 200, body
        assert body["counts"] == {
            "total": 2,
            "online": 1,
            "offline": 1,
            "on_air": 0,
            "alerts_open": 0,
        }
        assert [c["id"] for c in body["clusters"]] == ["C01", "C02"]
        assert body["on_air"] == [] and body["next"] == [] and body["alerts"] == []
        json.dumps(body)
        async with client(station, token) as api:
            status, body, _ = await api.call("GET", "/console/media/99/audio")
        assert status == 404, body
        async with client(station) as anonymous:
            status, _, _ = await anonymous.call("GET", "/console/dashboard")
            assert status == 401
            status, _, _ = await anonymous.call("GET", "/console/media/1/audio")
            assert status == 401
