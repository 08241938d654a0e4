"""Helpers of the API tests: a running station, users, and a small JSON client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from station import _keys as keys
from station.api import create_token, create_user
from station.app import RunningStation, start_station
from station.config import Settings
from station.db import Role
from station.demo import demo_settings

PASSWORD = "correct horse battery"


def settings_for(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str, **auth: Any
) -> Settings:
    base = demo_settings(
        tmp_path, mqtt_url=mqtt_url, database_url=database_url, station_id=station_id
    )
    media = auth.pop("media", {})
    return base.model_copy(
        update={
            "auth": base.auth.model_copy(update=auth),
            "media": base.media.model_copy(update=media),
        }
    )


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[RunningStation]:
    station = await start_station(settings)
    try:
        yield station
    finally:
        await station.stop()


@dataclass
class Client:
    """JSON over HTTP to one station; ``token`` -> bearer, else cookies (+ CSRF if known)."""

    http: aiohttp.ClientSession
    base: str
    token: str = ""
    csrf: str = ""

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.csrf:
            headers.setdefault("X-CSRF-Token", self.csrf)
        return headers

    async def call(
        self,
        method: str,
        path: str,
        json: Any = None,
        headers: dict[str, str] | None = None,
        **kw: Any,
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        url = self.base + ("" if path.startswith("/api/") else "/api/v1") + path
        async with self.http.request(
            method, url, json=json, headers=self.headers(headers), **kw
        ) as response:
            ctype = response.content_type
            if ctype.endswith("json"):
                body = await response.json(content_type=None)
            else:
                body = await response.text()
            return response.status, body, response

    async def login(self, username: str, password: str = PASSWORD) -> tuple[int, Any]:
        status, body, _ = await self.call(
            "POST", "/auth/login", {"username": username, "password": password}
        )
        if status == 200:
            self.csrf = body["csrf_token"]
        return status, body


@asynccontextmanager
async def client(station: RunningStation, token: str = "") -> AsyncIterator[Client]:
    jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        yield Client(http, station.base_url, token)


async def user_with_token(station: RunningStation, username: str, role: Role) -> str:
    """Create ``username`` (password PASSWORD) and return a bearer token of theirs."""
    sessions = station.app[keys.SESSIONS]
    user, _ = await create_user(sessions, username, role, PASSWORD)
    _, secret = await create_token(sessions, user, f"{username}-test")
    return secret


def assert_problem(status: int, body: Any, expected: int, field: str | None = None) -> None:
    assert status == expected, body
    assert body["status"] == expected and body["title"], body
    if field is not None:
        fields = [e["field"] for e in body.get("errors") or []]
        assert field in fields, body
