"""Live alerts in the ``alerts`` table (subject: the mount), written off the audio path.

A relay whose upstream serves an HTML page raises ``not_audio``: it is a row (``mount`` set,
``cluster_id`` null) with its raise and clear times, shown by ``GET /api/v1/live/alerts``,
``loaxa live status``, ``loaxa alerts`` and the console's dashboard, kept across a restart;
cluster views (``/api/v1/alerts``, the clusters' alert counts) leave it out. The hub's writer
keeps events in memory while the database fails and writes them, in order, once it is back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from station import _keys as keys
from station._alerts import open_alert_counts
from station._services import Sessions, register_clusters
from station.api import Role
from station.cli import main
from station.db import Alert, AlertKind, create_engine_for, session_factory, upgrade_async
from station.live import LiveHub, MountConfig
from tests.api_support import client, running, user_with_token
from tests.live_support import FFMPEG, eventually, hub_of, live_settings


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[Sessions]:
    await upgrade_async(database_url)
    engine = create_engine_for(database_url)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


def _hub() -> LiveHub:
    return LiveHub(FFMPEG, MountConfig(), lambda m, c: f"http://x/live/{m}?c={c}", "loaxa/v1/t")


async def _rows(sessions: Sessions) -> list[Alert]:
    async with sessions() as db:
        return list((await db.exec(select(Alert).order_by(col(Alert.id)))).all())


async def test_alerts_are_rows_of_the_mount_raised_cleared_and_closed_at_restart(
    sessions: Sessions,
) -> None:
    hub = _hub()
    await hub.store_alerts(sessions)
    hub.alert("vov", "dead", "no bytes for 10 s", True)
    hub.alert("vov", "dead", "no bytes for 10 s", True)  # already open: one row
    hub.alert("vov", "silence", "under -50 dB for 15 s", True)
    hub.alert("vov", "dead", "", False)
    hub.alert("xa", "auth", "source client with a wrong password", True)
    hub.alert("xa", "auth", "", False)  # an event: raised and cleared at once
    hub.alert("xa", "nonsense", "", True)  # an unknown kind is logged, never stored
    await hub.flush_alerts()
    rows = await _rows(sessions)
    assert [(a.mount, a.cluster_id, a.kind, a.cleared_at is None) for a in rows] == [
        ("vov", None, AlertKind.DEAD, False),
        ("vov", None, AlertKind.SILENCE, True),
        ("xa", None, AlertKind.AUTH, False),
    ]
    dead = rows[0]
    assert dead.detail == "no bytes for 10 s" and dead.cleared_at is not None
    assert dead.raised_at <= dead.cleared_at and dead.raised_at.tzinfo is not None
    async with sessions() as db:
        assert await open_alert_counts(db) == {}  # per cluster: mounts are not clusters
    await hub.stop_all()

    # A new run: no mount runs, so the silence left open is closed; history stays.
    again = _hub()
    await again.store_alerts(sessions)
    rows = await _rows(sessions)
    assert len(rows) == 3 and all(a.cleared_at is not None for a in rows)
    again.alert("vov", "silence", "under -50 dB for 15 s", True)  # a new one is a new row
    await again.stop_all()
    rows = await _rows(sessions)
    assert [a.kind for a in rows] == [AlertKind.DEAD, AlertKind.SILENCE, AlertKind.AUTH,
                                      AlertKind.SILENCE]  # fmt: skip
    assert rows[-1].cleared_at is None  # written by stop_all; the next start closes it


async def test_writer_keeps_events_while_the_database_fails(sessions: Sessions) -> None:
    failing = {"left": 2}

    def flaky() -> Any:
        if failing["left"] > 0:
            failing["left"] -= 1
            raise OSError("database unreachable")
        return sessions()

    hub = _hub()
    await hub.store_alerts(sessions)
    writer = hub.alert_writer
    assert writer is not None
    writer.sessions = flaky  # type: ignore[assignment]
    writer.retry_s = (0.01, 0.05)
    hub.alert("vov", "not_audio", "upstream sent text/html", True)  # returns at once: queued
    hub.alert("vov", "not_audio", "", False)
    hub.alert("vov", "dead", "no bytes for 10 s", True)
    await eventually(lambda: writer.written == 3)  # retried by the held task until it worked
    assert writer.failures >= 1 and writer.pending == 0
    rows = await _rows(sessions)
    assert [(a.kind, a.cleared_at is None) for a in rows] == [
        (AlertKind.NOT_AUDIO, False),
        (AlertKind.DEAD, True),
    ]
    await hub.stop_all()


async def test_an_alert_names_exactly_one_subject(sessions: Sessions) -> None:
    await register_clusters(sessions, [("C1", "C1")])
    now = datetime.now(UTC)
    for cluster_id, mount in ((None, None), ("C1", "vov")):
        async with sessions() as db:
            db.add(Alert(cluster_id=cluster_id, mount=mount, kind=AlertKind.DEAD, raised_at=now))
            with pytest.raises(IntegrityError):
                await db.commit()
    async with sessions() as db:
        db.add(Alert(cluster_id="C1", kind=AlertKind.OFFLINE, raised_at=now))
        db.add(Alert(mount="vov", kind=AlertKind.NO_SOURCE, raised_at=now))
        await db.commit()
        count = await db.exec(select(sa.func.count()).select_from(Alert))
        assert count.one() == 2


class HtmlUpstream:
    """The provider's maintenance page where the radio should be."""

    def __init__(self) -> None:
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/radio", self.page)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/radio"

    @staticmethod
    async def page(_request: web.Request) -> web.Response:
        return web.Response(text="<html>Trang bảo trì</html>", content_type="text/html")

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def test_a_relay_alert_is_shown_everywhere_and_survives_a_restart(
    tmp_path: Path,
    mqtt_url: str,
    database_url: str,
    station_id: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    upstream = HtmlUpstream()
    await upstream.start()
    settings = live_settings(tmp_path, mqtt_url, database_url, station_id, mqtt=False)
    config = tmp_path / "loaxa.yaml"
    config.write_text(f"database: {{url: '{database_url}'}}\n", encoding="utf-8")
    try:
        async with running(settings) as station:
            await register_clusters(station.app[keys.SESSIONS], [("C1", "C1")])
            hub = hub_of(station)
            await hub.start("vov", f"relay:{upstream.url}")
            await eventually(lambda: any(a.kind == "not_audio" for a in hub.alerts))
            token = await user_with_token(station, "tech", Role.BROADCASTER)
            async with client(station, token) as api:
                status, body, _ = await api.call("GET", "/live/alerts?state=open")
                assert status == 200, body
                [alert] = body["items"]
                assert (alert["mount"], alert["kind"], alert["cleared_at"]) == (
                    "vov", "not_audio", None
                )  # fmt: skip
                assert "text/html" in alert["detail"]
                status, body, _ = await api.call("GET", "/console/dashboard")
                assert status == 200, body
                shown = [(a["mount"], a["cluster_id"], a["kind"]) for a in body["alerts"]]
                assert shown == [("vov", None, "not_audio")]
                assert [c["alerts"] for c in body["clusters"]] == [0]
                status, body, _ = await api.call("GET", "/alerts?state=all")
                assert status == 200 and body["items"] == [], body  # clusters' alerts only

            base = ["--url", station.base_url, "--token", token]
            assert await asyncio.to_thread(main, ["live", "status", *base]) == 0
            out = capsys.readouterr().out
            assert "vov" in out and "alert: vov not_audio since" in out
            assert await asyncio.to_thread(main, ["alerts", "-c", str(config)]) == 0
            out = capsys.readouterr().out
            assert "live:vov" in out and "not_audio" in out

            await hub.stop("vov")  # a stopped mount airs nothing: its alert is over
            async with client(station, token) as api:
                status, body, _ = await api.call("GET", "/live/alerts?state=open")
                assert status == 200 and body["items"] == [], body

        async with running(settings) as station:  # history is in the table, not in memory
            assert list(hub_of(station).alerts) == []
            token = await user_with_token(station, "tech2", Role.VIEWER)
            async with client(station, token) as api:
                status, body, _ = await api.call("GET", "/live/alerts")
            assert status == 200, body
            [alert] = body["items"]
            assert alert["kind"] == "not_audio" and alert["cleared_at"] is not None
        assert await asyncio.to_thread(main, ["alerts", "--all", "-c", str(config)]) == 0
        assert "live:vov" in capsys.readouterr().out
    finally:
        await upstream.stop()
