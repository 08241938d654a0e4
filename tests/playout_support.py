"""Helpers of the tests that air programmes on simulated clusters: audio in the library, a
programme scheduled once, bridges, a spy on the commands sent, waiting for proof of play."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from sqlmodel import select

from devices.protocol import Command
from simulator import SimulatedFleet
from station import _keys as keys
from station._programmes import ItemInput, add_programme
from station._schedules import ScheduleRequest, create_schedule, make_recurrence
from station._services import Sessions, add_media, create_programme, schedule_once
from station.config import Settings
from station.db import Cluster, ClusterKind, PlayRecord, PlaySession, Schedule
from station.media import synthesize_programme

HCM = ZoneInfo("Asia/Ho_Chi_Minh")


async def synthesized_media(
    app: web.Application, tmp_path: Path, seconds: float, title: str
) -> int:
    """``seconds`` of synthesized audio added to the station's library as ``title``; its id."""
    source = tmp_path / f"m{seconds}.wav"
    await synthesize_programme(source, seconds)
    item, _ = await add_media(
        app[keys.SESSIONS], app[keys.MEDIA_STORE], app[keys.MEDIA_WORKER], app[keys.SETTINGS],
        source, title,
    )  # fmt: skip
    assert item.id is not None
    return item.id


async def audio_programme(
    app: web.Application, tmp_path: Path, seconds: float, title: str, media_title: str
) -> int:
    """The programme ``title`` of ``seconds`` of synthesized audio (``media_title``); its id."""
    media_id = await synthesized_media(app, tmp_path, seconds, media_title)
    programme = await create_programme(app[keys.SESSIONS], title, [media_id])
    assert programme.id is not None
    return programme.id


async def news_once(
    app: web.Application, tmp_path: Path, seconds: float, in_s: float, targets: dict[str, Any]
) -> tuple[int, datetime]:
    """The programme "Tin sáng" (``seconds`` of audio titled "Tin") scheduled once on
    ``targets``, ``in_s`` seconds after its media is in the library: its media id and start."""
    sessions = app[keys.SESSIONS]
    media_id = await synthesized_media(app, tmp_path, seconds, "Tin")
    programme = await create_programme(sessions, "Tin sáng", [media_id])
    assert programme.id is not None
    start = datetime.now(UTC) + timedelta(seconds=in_s)
    await schedule_once(sessions, programme.id, start, targets)
    return media_id, start


def start_after_lead(settings: Settings, now: datetime) -> datetime:
    """A whole second a little more than 3 s after the dispatch lead from ``now``: time to
    dispatch before it starts."""
    lead = timedelta(seconds=settings.scheduler.dispatch_lead_s + 3)
    return (now + lead).replace(microsecond=0) + timedelta(seconds=1)


async def daily_media_then_relay(
    app: web.Application, tmp_path: Path, title: str, relay_url: str, relay_s: int
) -> tuple[Schedule, datetime]:
    """The programme ``title``, 1 s of audio then ``relay_s`` of ``relay_url``, every day on
    every cluster at volume 65 from a few seconds after the dispatch lead (start_after_lead):
    its schedule and today's start."""
    sessions, settings = app[keys.SESSIONS], app[keys.SETTINGS]
    media_id = await synthesized_media(app, tmp_path, 1.0, "t")
    items = [
        ItemInput("media", media_id=media_id),
        ItemInput("relay", url=relay_url, duration_s=relay_s),
    ]
    programme = await add_programme(sessions, title, items)
    assert programme.id is not None
    now = datetime.now(HCM)
    start = start_after_lead(settings, now)
    request = ScheduleRequest(
        programme.id,
        {"all": True},
        make_recurrence("daily", time_of_day=start.timetz().replace(tzinfo=None)),
        volume=65,
    )
    return (await create_schedule(sessions, settings, request, now)).schedule, start


async def make_bridges(sessions: Sessions, bridges: dict[str, tuple[str, str]]) -> None:
    """Registered clusters made bridges, each with its FM set (``bridge -> (fm, zone code)``)."""
    async with sessions() as db:
        for bridge_id, (fm_id, code) in bridges.items():
            bridge, fm = await db.get(Cluster, bridge_id), await db.get(Cluster, fm_id)
            assert bridge is not None and fm is not None
            bridge.kind = ClusterKind.BRIDGE
            fm.kind, fm.bridge_id, fm.zone_code = ClusterKind.FM, bridge_id, code
            db.add_all([bridge, fm])
        await db.commit()


def spy_on_sends(gateway: Any, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Command]]:
    """Every command the gateway sends from now on, in order (each is still sent)."""
    sent: list[tuple[str, Command]] = []
    send = gateway.send

    async def spy(cluster_id: str, command: Command, timeout: float | None = None) -> None:
        sent.append((cluster_id, command))
        await send(cluster_id, command, timeout)

    monkeypatch.setattr(gateway, "send", spy)
    return sent


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
    for _ in range(int(timeout / 0.1)):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


async def until_within(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    """Polls ``check`` every 0.1 s until it holds, for ``timeout`` seconds at most."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout} s")


async def records_when(
    sessions: Sessions, done: Callable[[Sequence[PlayRecord]], bool], timeout: float
) -> Sequence[PlayRecord]:
    """Every play record, once ``done`` says so of them (polled every 0.2 s)."""
    async with asyncio.timeout(timeout):
        while True:
            async with sessions() as db:
                records = (await db.exec(select(PlayRecord))).all()
            if done(records):
                return records
            await asyncio.sleep(0.2)


async def records_by_session(sessions: Sessions) -> dict[tuple[str, str], PlayRecord]:
    """Every play record by (session, cluster)."""
    async with sessions() as db:
        return {(r.session_id, r.cluster_id): r for r in (await db.exec(select(PlayRecord))).all()}


async def session_of(sessions: Sessions, schedule_id: int) -> str:
    """The id of the (one) session made of ``schedule_id``."""
    async with sessions() as db:
        row = (
            await db.exec(select(PlaySession).where(PlaySession.schedule_id == schedule_id))
        ).one()
        return row.id


def outcomes(fleet: SimulatedFleet) -> dict[str, list[tuple[str, str]]]:
    """What each simulated cluster played: (session id, outcome), in order."""
    return {cid: [(r.session_id, r.outcome) for r in rs] for cid, rs in fleet.records().items()}
