"""Approval holds at air time, not only when scheduling (``auth.approval_required``).

The dispatcher's feed (``PlayoutStore``) leaves out schedules whose programme's current version
is not approved at that moment: a withdrawn approval takes sessions already sent ahead out of
the clusters' held lists at the next rebuild, and a job that fires anyway sends nothing. The
CLI refuses to schedule an unapproved programme with the API's message.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import cast
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from devices import ClusterGateway
from devices.protocol import Command, PlayCommand, ScheduleCommand
from scheduler import Dispatcher
from station._playout_store import PlayoutStore
from station._programmes import ItemInput, add_programme
from station._schedules import (
    ApprovalRequired,
    ScheduleRequest,
    create_schedule,
    make_recurrence,
    require_approval,
    unapproved_programmes,
)
from station._services import Sessions, schedule_once
from station.api import create_user
from station.cli import main
from station.config import load_config
from station.db import (
    BulletinClass,
    BulletinStatus,
    Cluster,
    MediaItem,
    ProgrammeApproval,
    Role,
    UpstreamBulletin,
    create_engine_for,
    session_factory,
    upgrade_async,
)

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = datetime(2026, 3, 2, 5, 0, tzinfo=HCM)  # a Monday, an hour before the 06:00 slot


class HeldLists:
    """Simulated clusters: each keeps the last schedule list it was sent (as a device does)."""

    def __init__(self) -> None:
        self.held: dict[str, list[str]] = {}
        self.plays: list[str] = []

    async def send(self, cluster_id: str, command: Command, timeout: float | None = None) -> None:
        if isinstance(command, ScheduleCommand):
            self.held[cluster_id] = [s.session_id for s in command.sessions]
        elif isinstance(command, PlayCommand):
            self.plays.append(command.session_id)


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[Sessions]:
    await upgrade_async(database_url)
    engine = create_engine_for(database_url)
    factory = session_factory(engine)
    async with factory() as db:
        db.add_all([Cluster(id="C1"), Cluster(id="C2")])
        db.add(
            MediaItem(
                sha256="a" * 64, source_sha256="a" * 64, title="Tin", duration_ms=60_000,
                size_bytes=1000,
            )
        )  # fmt: skip
        await db.commit()
    try:
        yield factory
    finally:
        await engine.dispose()


async def _approved_programme(sessions: Sessions, title: str = "Sáng") -> tuple[int, int]:
    """A programme and the approver who approved its version 1."""
    programme = await add_programme(sessions, title, [ItemInput("media", media_id=1)])
    approver, _ = await create_user(sessions, f"duyet{title[:1].lower()}", Role.APPROVER, None)
    assert programme.id is not None and approver.id is not None
    async with sessions() as db:
        db.add(ProgrammeApproval(programme_id=programme.id, version=1, approved_by=approver.id))
        await db.commit()
    return programme.id, approver.id


async def _withdraw(sessions: Sessions, programme_id: int) -> None:
    async with sessions() as db:
        approval = (
            await db.exec(
                select(ProgrammeApproval).where(ProgrammeApproval.programme_id == programme_id)
            )
        ).one()
        await db.delete(approval)
        await db.commit()


async def test_withdrawn_approval_leaves_held_lists_and_is_not_dispatched(
    sessions: Sessions,
) -> None:
    settings = load_config(None)
    programme_id, _ = await _approved_programme(sessions)
    request = ScheduleRequest(
        programme_id, {"clusters": ["C1", "C2"]}, make_recurrence("daily", time_of_day=time(6))
    )
    await create_schedule(sessions, settings, request, NOW)
    store = PlayoutStore(sessions, approval_required=True)
    fleet = HeldLists()
    now = NOW.astimezone(UTC)
    dispatcher = Dispatcher(
        store, cast(ClusterGateway, fleet), lambda cid, item: f"http://st/{item.sha256}",
        clock=lambda: now,
    )  # fmt: skip
    try:
        await dispatcher.reconcile()
        first = fleet.held["C1"][0]
        assert fleet.held["C1"] == fleet.held["C2"] and first.startswith("s1-")

        await _withdraw(sessions, programme_id)  # the approver withdraws it
        await dispatcher.reconcile()  # what the endpoint does at once (the poll does too)
        assert fleet.held == {"C1": [], "C2": []}
        assert await store.due_occurrences(now, now + timedelta(days=2)) == []
        # A job that fires anyway (planned before the withdrawal) sends nothing.
        start = NOW.replace(hour=6).astimezone(UTC)
        plan = await store.prepare_session(1, start, start + timedelta(minutes=1), occurrence=start)
        assert plan is None and fleet.plays == []

        # Approved again: back on the lists, under the same session id.
        async with sessions() as db:
            db.add(ProgrammeApproval(programme_id=programme_id, version=1, approved_by=1))
            await db.commit()
        await dispatcher.reconcile()
        assert fleet.held["C1"][0] == first
    finally:
        await dispatcher.stop()


async def test_one_off_waits_and_the_rule_follows_the_config(sessions: Sessions) -> None:
    programme_id, _ = await _approved_programme(sessions)
    start = datetime.now(UTC) + timedelta(hours=2)
    row = await schedule_once(sessions, programme_id, start, {"all": True})
    held = PlayoutStore(sessions, approval_required=True)
    free = PlayoutStore(sessions)  # approval not required: everything airs as before
    assert [s.id for s in await held.pending_schedules()] == [row.id]
    await _withdraw(sessions, programme_id)
    assert await held.pending_schedules() == []
    assert [s.id for s in await free.pending_schedules()] == [row.id]
    assert row.id is not None
    assert await held.prepare_session(row.id, start, start + timedelta(minutes=1)) is None

    # An edit (a new version) needs its own approval; a placed bulletin's programme airs.
    base = load_config(None)
    auth = base.auth.model_copy(update={"approval_required": True})
    settings = base.model_copy(update={"auth": auth})
    with pytest.raises(ApprovalRequired, match=f"programme {programme_id} version 1 is not"):
        await require_approval(sessions, settings, programme_id)
    bulletin = await add_programme(sessions, "Bản tin", [ItemInput("media", media_id=1)])
    assert bulletin.id is not None
    async with sessions() as db:
        db.add(
            UpstreamBulletin(
                upstream_id="UP-1", bulletin_class=BulletinClass.PRIORITY, title="Lũ",
                status=BulletinStatus.SCHEDULED, villages=[], issuer="huyện",
                received_via="pull", programme_id=bulletin.id,
            )
        )  # fmt: skip
        await db.commit()
    async with sessions() as db:
        waiting = await unapproved_programmes(db, [programme_id, bulletin.id])
    assert waiting == {programme_id}


def test_cli_schedule_add_and_import_refuse_unapproved_programmes(
    tmp_path: Path,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = tmp_path / "loaxa.yaml"
    config.write_text(
        f"database: {{url: '{database_url}'}}\nauth: {{approval_required: true}}\n",
        encoding="utf-8",
    )
    c = ("-c", str(config))
    assert main(["programme", "add", "relay:15m:http://vov.example/1", "--title", "VOV", *c]) == 0
    capsys.readouterr()
    when = ("--daily", "--time", "06:00")
    assert main(["schedule", "add", "--programme", "1", *when, *c]) == 2
    err = capsys.readouterr().err
    # The API's 409 detail, word for word.
    assert err == "loaxa: programme 1 version 1 is not approved yet\n"
    assert main(["schedule", "add", "--media", "1", *when, *c]) == 2
    assert "not approved yet (auth.approval_required)" in capsys.readouterr().err
    week = tmp_path / "week.csv"
    week.write_text("weekday,start,end,slot,kind,title,topic,language,targets\n", encoding="utf-8")
    assert main(["schedule", "import", str(week), *c]) == 2
    assert "a week plan makes a new programme" in capsys.readouterr().err
    assert main(["schedule", "list", *c]) == 0
    listed = capsys.readouterr().out
    assert "once" not in listed and "daily" not in listed

    # Approved (an approver's row), the same command goes through.
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough secret\n"))
    assert main(["user", "add", "tuan", "--role", "approver", "--password-stdin", *c]) == 0

    async def approve() -> None:
        engine = create_engine_for(database_url)
        async with session_factory(engine)() as db:
            db.add(ProgrammeApproval(programme_id=1, version=1, approved_by=1))
            await db.commit()
        await engine.dispose()

    asyncio.run(approve())
    capsys.readouterr()
    assert main(["schedule", "add", "--programme", "1", *when, *c]) == 0
    assert capsys.readouterr().out.startswith("schedule 1: programme 1, daily")


async def test_calendar_and_timeline_show_schedules_waiting_for_approval(
    sessions: Sessions,
) -> None:
    from station._schedules import schedule_timeline, waiting_on, week_view

    base = load_config(None)
    settings = base.model_copy(
        update={"auth": base.auth.model_copy(update={"approval_required": True})}
    )
    programme_id, _ = await _approved_programme(sessions)
    daily = make_recurrence("daily", time_of_day=time(6))
    await create_schedule(
        sessions, settings, ScheduleRequest(programme_id, {"all": True}, daily), NOW
    )
    monday = NOW.replace(hour=0)
    end = monday + timedelta(days=1)
    view = await week_view(sessions, settings, None, monday, end)
    assert [a.waiting_approval for a in view.airings] == [False]
    line = (await schedule_timeline(sessions, settings, {"clusters": ["C1"]}, monday, end))["C1"]
    assert len(line.slots) == 1

    await _withdraw(sessions, programme_id)
    view = await week_view(sessions, settings, None, monday, end)
    assert [a.waiting_approval for a in view.airings] == [True]  # shown, marked
    line = (await schedule_timeline(sessions, settings, {"clusters": ["C1"]}, monday, end))["C1"]
    assert line.slots == ()  # it does not air, so it cuts in over nothing
    assert [(r.id, t) for r, t in await waiting_on(sessions, settings, {"clusters": ["C1"]})] == [
        (1, "Sáng")
    ]


async def test_withdrawing_through_the_api_takes_it_off_a_simulated_cluster(
    tmp_path: Path,
    mqtt_url: str,
    database_url: str,
    station_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from api_support import client, running, settings_for, user_with_token

    from simulator import SimulatedFleet
    from station import _keys as keys
    from station._services import add_media, register_clusters
    from station.media import synthesize_programme

    settings = settings_for(tmp_path, mqtt_url, database_url, station_id, approval_required=True)
    async with running(settings) as station:
        app = station.app
        sessions = app[keys.SESSIONS]
        await register_clusters(sessions, [("E1", "E1")])
        app[keys.GATEWAY].remember(["E1"])
        source = tmp_path / "tin.wav"
        await synthesize_programme(source, 1.0)
        item, _ = await add_media(
            sessions, app[keys.MEDIA_STORE], app[keys.MEDIA_WORKER], settings, source, "Tin"
        )
        programme = await add_programme(sessions, "Sáng", [ItemInput("media", media_id=item.id)])
        lead = await user_with_token(station, "lead1", Role.APPROVER)
        broadcaster = await user_with_token(station, "bt1", Role.BROADCASTER)
        approvals = f"/programmes/{programme.id}/approvals"
        start = datetime.now(UTC) + timedelta(hours=2)
        async with (
            SimulatedFleet(station.runtime.mqtt_url, station_id, ["E1"]) as fleet,
            client(station, lead) as leader,
            client(station, broadcaster) as api,
        ):
            cluster = fleet.clusters["E1"]
            assert (await leader.call("POST", approvals, {"version": 1}))[0] == 201
            new = {"programme_id": programme.id, "start_at": start.isoformat(),
                   "targets": {"clusters": ["E1"]}}  # fmt: skip
            status, body, _ = await api.call("POST", "/schedules", new)
            assert status == 201, body
            await _until(lambda: any(r.outcome == "pending" for r in cluster.records))
            held = next(r for r in cluster.records if r.outcome == "pending")
            assert held.session_id.startswith(f"s{body['id']}-")

            assert (await leader.call("DELETE", f"{approvals}/1"))[0] == 204
            await _until(lambda: held.outcome == "withdrawn")  # the endpoint rebuilt the lists
            status, cal, _ = await api.call("GET", f"/calendar?week={start.date().isoformat()}")
            assert status == 200
            assert [a["waiting_approval"] for a in cal["airings"]] == [True]
            assert app[keys.STORE].approval_required

            # An edit of an approved programme (a new version) takes its sessions off: the
            # endpoint rebuilds the dispatcher before it answers (not at the periodic reconcile).
            dispatcher = app[keys.DISPATCHER]
            rebuilds: list[int] = []
            reconcile = dispatcher.reconcile

            async def counted() -> None:
                rebuilds.append(1)
                await reconcile()

            monkeypatch.setattr(dispatcher, "reconcile", counted)
            other = await add_programme(sessions, "Trưa", [ItemInput("media", media_id=item.id)])
            other_approvals = f"/programmes/{other.id}/approvals"
            assert (await leader.call("POST", other_approvals, {"version": 1}))[0] == 201
            new = {"programme_id": other.id, "start_at": (start + timedelta(hours=1)).isoformat(),
                   "targets": {"clusters": ["E1"]}}  # fmt: skip
            status, body, _ = await api.call("POST", "/schedules", new)
            assert status == 201, body
            mark = f"s{body['id']}-"
            await _until(lambda: any(r.session_id.startswith(mark) for r in cluster.records))
            again = next(r for r in cluster.records if r.session_id.startswith(mark))
            status, _, response = await api.call("GET", f"/programmes/{other.id}")
            assert status == 200 and again.outcome == "pending"
            status, body, _ = await api.call(
                "PATCH", f"/programmes/{other.id}", {"title": "Trưa (sửa)"},
                headers={"If-Match": response.headers["ETag"]},
            )  # fmt: skip
            assert status == 200, body
            assert rebuilds, "the edit did not rebuild the dispatcher"
            await _until(lambda: again.outcome == "withdrawn")


async def _until(check: Callable[[], bool], timeout: float = 45.0) -> None:
    # Generous: on a loaded CI machine a list whose send timed out goes again at the next
    # periodic reconcile (15 s).
    for _ in range(int(timeout / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")
