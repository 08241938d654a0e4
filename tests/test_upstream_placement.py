"""Priority bulletins: the operator sees the clashes and places (before/after/instead of an
item of the next programme, or as an own session) or declines; the result is real schedules
through the quota and conflict checks, undone as a whole when refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from api_support import assert_problem, client, running, settings_for, user_with_token
from sqlmodel import col, select

from station import _keys as keys
from station._programmes import ItemInput, add_programme, programme_specs
from station._schedules import (
    ScheduleRequest,
    create_schedule,
    make_recurrence,
    schedule_timeline,
)
from station._services import Sessions
from station.api import Actor
from station.cli import main
from station.config import Settings
from station.db import (
    AuditEntry,
    BulletinClass,
    BulletinStatus,
    Cluster,
    MediaItem,
    OutboxMessage,
    Programme,
    Role,
    Schedule,
    ScheduleStatus,
    UpstreamBulletin,
    Village,
    create_engine_for,
    session_factory,
    upgrade_async,
)
from station.upstream._placement import (
    PlacementError,
    auto_place_due,
    decline_bulletin,
    place_bulletin,
    proposal,
)

HCM = ZoneInfo("Asia/Ho_Chi_Minh")


async def cli(argv: list[str]) -> int:
    return await asyncio.to_thread(main, argv)  # the CLI runs its own event loop


NOW = datetime(2026, 3, 1, 12, 0, tzinfo=HCM)
SETTINGS = Settings()
OPERATOR = Actor("cli:lan")


async def seed(sessions: Sessions, now: datetime = NOW) -> int:
    """Villages T01 (C01, C02) and T02 (C03); a daily 06:00 programme to everyone (30 s
    jingle-like silence + 10 min news); bulletins P1 (T01, 60 s audio) and P2 (text only)."""
    async with sessions() as db:
        db.add_all([Village(id="T01", name="Thôn 1"), Village(id="T02", name="Thôn 2")])
        db.add_all(Cluster(id=f"C0{n}", name=f"C0{n}", village_id="T01") for n in (1, 2))
        db.add(Cluster(id="C03", name="C03", village_id="T02"))
        for n, (title, ms) in enumerate((("Tin xã", 600_000), ("Bản tin tỉnh", 60_000)), 1):
            db.add(MediaItem(sha256=f"{n}" * 64, source_sha256=f"{n}" * 64, title=title,
                             duration_ms=ms, size_bytes=1))  # fmt: skip
        for ident, media_id in (("P1", 2), ("P2", None)):
            db.add(
                UpstreamBulletin(
                    upstream_id=ident,
                    bulletin_class=BulletinClass.PRIORITY,
                    status=BulletinStatus.PROPOSED,
                    title=f"Bản tin {ident}",
                    media_id=media_id,
                    villages=["T01"],
                    valid_from=now - timedelta(hours=1),
                    valid_to=now + timedelta(days=2),
                    received_via="pull",
                )
            )
        await db.commit()
    programme = await add_programme(
        sessions,
        "Sáng",
        [ItemInput("silence", duration_s=30, title="Nhạc hiệu"), ItemInput("media", media_id=1)],
        topics=["II.1"],
    )
    assert programme.id is not None
    result = await create_schedule(
        sessions,
        SETTINGS,
        ScheduleRequest(
            programme.id, {"all": True}, make_recurrence("daily", time_of_day=time(6, 0))
        ),
        now,
    )
    assert result.schedule.id is not None
    return result.schedule.id


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[Sessions]:
    await upgrade_async(database_url)
    engine = create_engine_for(database_url)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


async def bulletin(sessions: Sessions, ident: str) -> UpstreamBulletin:
    async with sessions() as db:
        row = (
            await db.exec(select(UpstreamBulletin).where(UpstreamBulletin.upstream_id == ident))
        ).one()
    return row


async def test_clashes_and_placing_before_an_item(sessions: Sessions) -> None:
    daily = await seed(sessions)
    p1 = await bulletin(sessions, "P1")
    assert p1.id is not None
    found = await proposal(sessions, SETTINGS, p1.id, NOW)
    assert found.clusters == ["C01", "C02"] and found.duration_s == 60
    assert [c.start.astimezone(HCM) for c in found.clashes] == [
        datetime(2026, 3, 2, 6, 0, tzinfo=HCM),
        datetime(2026, 3, 3, 6, 0, tzinfo=HCM),
    ]  # within the validity window (to 3/3 12:00) only
    first = found.clashes[0]
    assert first.schedule_id == daily and first.clusters == ["C01", "C02"]
    assert [(i.item, i.kind, i.duration_s) for i in first.items] == [
        (1, "silence", 30),
        (2, "media", 600),
    ]
    assert first.items[1].start.astimezone(HCM).time() == time(6, 0, 30)

    placed = await place_bulletin(
        sessions, SETTINGS, OPERATOR, p1.id, "before", session_id=first.session_id, item=2, now=NOW
    )
    assert placed.status == BulletinStatus.SCHEDULED
    assert placed.decided_by == "cli:lan" and placed.decided_at == NOW
    assert len(placed.schedule_ids) == 2 and placed.programme_id is not None
    async with sessions() as db:
        original = await db.get(Schedule, daily)
        assert original is not None and original.exceptions == ["2026-03-02"]
        assert original.status == ScheduleStatus.ACTIVE
        with_bulletin, rest = [await db.get(Schedule, i) for i in placed.schedule_ids]
        spec = (await programme_specs(db, [placed.programme_id]))[placed.programme_id]
        programme = await db.get(Programme, placed.programme_id)
        audit = (
            await db.exec(select(AuditEntry).where(AuditEntry.action == "bulletin.scheduled"))
        ).one()
        status = (
            await db.exec(select(OutboxMessage).where(OutboxMessage.kind == "bulletin_status"))
        ).one()
    assert with_bulletin is not None and rest is not None
    assert with_bulletin.targets == {"clusters": ["C01", "C02"]}
    assert rest.targets == {"clusters": ["C03"]} and rest.programme_id == original.programme_id
    assert with_bulletin.start_at == rest.start_at == first.start
    assert [i.media_id for i in spec.items] == [None, 2, 1]  # the bulletin before item 2
    assert programme is not None and programme.topics == ["II.1"]
    assert audit.actor == "cli:lan" and audit.target == "bulletin:P1"
    assert audit.details["mode"] == "before" and audit.details["item"] == 2
    assert status.key == "bulletin:P1:scheduled" and status.payload["status"] == "scheduled"

    # the timeline: T01 hears the bulletin at 06:00:30 on 3/2, T02 the usual programme
    lines = await schedule_timeline(
        sessions, SETTINGS, {"all": True}, first.start, first.start + timedelta(days=1, hours=1)
    )
    by_cluster = {c: [(s.schedule_id, s.start) for s in line.slots] for c, line in lines.items()}
    next_day = first.start + timedelta(days=1)
    assert by_cluster["C01"] == [(with_bulletin.id, first.start), (daily, next_day)]
    assert by_cluster["C03"] == [(rest.id, first.start), (daily, next_day)]

    with pytest.raises(PlacementError, match="is scheduled, not proposed") as refused:
        await decline_bulletin(sessions, OPERATOR, p1.id, now=NOW)
    assert refused.value.status == 409


async def test_refused_placement_is_undone_and_other_modes(sessions: Sessions) -> None:
    daily = await seed(sessions)
    p1, p2 = await bulletin(sessions, "P1"), await bulletin(sessions, "P2")
    assert p1.id is not None and p2.id is not None
    found = await proposal(sessions, SETTINGS, p1.id, NOW)
    session_id = found.clashes[0].session_id
    # a long programme: with the bulletin after item 2 it breaks the 45 min rural quota
    async with sessions() as db:
        db.add(MediaItem(sha256="9" * 64, source_sha256="9" * 64, title="Dài",
                         duration_ms=44 * 60_000 + 30_000, size_bytes=1))  # fmt: skip
        await db.commit()
    long = await add_programme(sessions, "Dài", [ItemInput("media", media_id=3)])
    assert long.id is not None
    await create_schedule(
        sessions,
        SETTINGS,
        ScheduleRequest(long.id, {"all": True}, make_recurrence("daily", time_of_day=time(17))),
        NOW,
    )
    evening = (await proposal(sessions, SETTINGS, p1.id, NOW)).clashes
    long_session = next(c.session_id for c in evening if c.programme_id == long.id)
    async with sessions() as db:
        before = {s.id: (s.status, list(s.exceptions)) for s in (await db.exec(select(Schedule)))}
        programmes = len((await db.exec(select(Programme))).all())
    with pytest.raises(PlacementError, match="airtime quota") as refused:
        await place_bulletin(
            sessions, SETTINGS, OPERATOR, p1.id, "after", session_id=long_session, item=1, now=NOW
        )
    assert refused.value.status == 409
    async with sessions() as db:
        after = {s.id: (s.status, list(s.exceptions)) for s in (await db.exec(select(Schedule)))}
        assert after == before  # the exception added on the way was taken back
        assert len((await db.exec(select(Programme))).all()) == programmes
        assert (await db.get(UpstreamBulletin, p1.id)).status == BulletinStatus.PROPOSED  # type: ignore[union-attr]
        assert (await db.exec(select(OutboxMessage))).all() == []

    # bad inputs: item out of range, unknown session, own session outside the window, no audio
    for kw, message in (
        ({"mode": "instead", "session_id": session_id, "item": 3}, "items 1..2"),
        ({"mode": "before", "session_id": "s999-1", "item": 1}, "not among"),
        ({"mode": "session", "at": NOW + timedelta(days=3)}, "outside the bulletin's window"),
    ):
        with pytest.raises(PlacementError, match=message) as bad:
            await place_bulletin(sessions, SETTINGS, OPERATOR, p1.id, now=NOW, **kw)  # type: ignore[arg-type]
        assert bad.value.status == 422
    with pytest.raises(PlacementError, match="no audio yet"):
        await place_bulletin(
            sessions, SETTINGS, OPERATOR, p2.id, "session", at=NOW + timedelta(hours=1), now=NOW
        )

    # instead of item 1 on the recurring occurrence, then P2 declined
    placed = await place_bulletin(
        sessions, SETTINGS, OPERATOR, p1.id, "instead", session_id=session_id, item=1, now=NOW
    )
    async with sessions() as db:
        spec = (await programme_specs(db, [placed.programme_id or 0]))[placed.programme_id or 0]
        assert [i.media_id for i in spec.items] == [2, 1]
        assert (await db.get(Schedule, daily)).exceptions == ["2026-03-02"]  # type: ignore[union-attr]
    declined = await decline_bulletin(sessions, OPERATOR, p2.id, "không phù hợp", now=NOW)
    assert declined.status == BulletinStatus.DECLINED and declined.note == "declined: không phù hợp"
    # a normal bulletin from the inbox, to the whole commune, as its own session
    async with sessions() as db:
        normal = UpstreamBulletin(
            upstream_id="N1",
            bulletin_class=BulletinClass.NORMAL,
            status=BulletinStatus.INBOX,
            media_id=2,
            received_via="pull",
        )
        db.add(normal)
        await db.commit()
        await db.refresh(normal)
    assert normal.id is not None
    own = await place_bulletin(
        sessions, SETTINGS, OPERATOR, normal.id, "session", at=NOW + timedelta(hours=1), now=NOW
    )
    async with sessions() as db:
        session = await db.get(Schedule, own.schedule_ids[0])
        keys_ = (await db.exec(select(OutboxMessage.key).order_by(col(OutboxMessage.id)))).all()
    assert session is not None and session.targets == {"all": True}
    assert session.priority == "bulletin" and session.start_at == NOW + timedelta(hours=1)
    assert keys_ == ["bulletin:P1:scheduled", "bulletin:P2:declined", "bulletin:N1:scheduled"]


async def test_own_session_through_the_api_and_cli(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    settings = settings_for(tmp_path, mqtt_url, database_url, station_id)
    now = datetime.now(HCM).replace(microsecond=0)
    async with running(settings) as station:
        sessions = station.app[keys.SESSIONS]
        await seed(sessions, now)
        async with sessions() as db:  # villages this commune does not have
            db.add(UpstreamBulletin(upstream_id="P3", bulletin_class=BulletinClass.PRIORITY,
                                    status=BulletinStatus.PROPOSED, villages=["thon-9"],
                                    received_via="webhook"))  # fmt: skip
            await db.commit()
        p1, p2 = await bulletin(sessions, "P1"), await bulletin(sessions, "P2")
        viewer = await user_with_token(station, "xem", Role.VIEWER)
        operator = await user_with_token(station, "phat", Role.BROADCASTER)
        async with client(station, viewer) as api:
            status, body, _ = await api.call("GET", "/bulletins/proposed?limit=1")
            assert status == 200 and [b["bulletin"]["upstream_id"] for b in body["items"]] == [
                "P1",
                "P2",
                "P3",
            ]
            assert body["items"][2]["problem"] == "unknown village(s): thon-9"
            assert body["items"][2]["clashes"] == [] and body["items"][0]["problem"] == ""
            assert len(body["items"][0]["clashes"]) == 1
            assert body["items"][0]["clusters"] == ["C01", "C02"]
            status, body, _ = await api.call("GET", f"/bulletins/{p1.id}/clashes")
            assert status == 200 and body["duration_s"] == 60
            assert [i["item"] for i in body["clashes"][0]["items"]] == [1, 2]
            status, body, _ = await api.call("POST", f"/bulletins/{p1.id}/decline", {})
            assert_problem(status, body, 403)
            status, body, _ = await api.call("GET", "/bulletins/9999/clashes")
            assert_problem(status, body, 404)
        at = (now + timedelta(hours=2)).isoformat()
        async with client(station, operator) as api:
            status, body, _ = await api.call(
                "POST", f"/bulletins/{p1.id}/place", {"mode": "session"}
            )
            assert_problem(status, body, 422)
            status, body, _ = await api.call(
                "POST", f"/bulletins/{p1.id}/place", {"mode": "session", "at": at}
            )
            assert status == 200, body
            assert body["status"] == "scheduled" and body["decided_by"] == "phat (token 2)"
            status, body, _ = await api.call(
                "POST", f"/bulletins/{p1.id}/place", {"mode": "session", "at": at}
            )
            assert_problem(status, body, 409)
        async with sessions() as db:
            schedule = await db.get(
                Schedule, body_id := (await bulletin(sessions, "P1")).schedule_ids[0]
            )
            assert schedule is not None and schedule.priority == "bulletin"
            assert schedule.start_at == datetime.fromisoformat(at)
            assert schedule.targets == {"clusters": ["C01", "C02"]}, body_id
    config = tmp_path / "loaxa.yaml"
    config.write_text(f"database:\n  url: {database_url}\n", encoding="utf-8")
    assert await cli(["bulletins", "proposed", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert f"#{p2.id} [P2]" in out and "no audio yet" in out and "[P1]" not in out
    assert "unknown village(s): thon-9" in out
    assert "  1. " in out and "silence" in out
    assert await cli(["bulletins", "place", str(p2.id), "before", "-c", str(config)]) == 2
    assert "needs --session" in capsys.readouterr().err
    assert (
        await cli(["bulletins", "decline", str(p2.id), "--reason", "đã phát", "-c", str(config)])
        == 0
    )
    assert "declined" in capsys.readouterr().out
    assert await cli(["bulletins", "decline", str(p2.id), "-c", str(config)]) == 2
    assert "not proposed" in capsys.readouterr().err


def auto_settings(after_min: float | None) -> Settings:
    upstream = SETTINGS.upstream.model_copy(update={"auto_place_priority_after_min": after_min})
    return SETTINGS.model_copy(update={"upstream": upstream})


async def arrived(sessions: Sessions, at: datetime, **bulletins: datetime | None) -> None:
    """Set the arrival of every bulletin to ``at``; ``bulletins``: P3=valid_to adds P3 (60 s
    audio, T02, valid to then)."""
    async with sessions() as db:
        for ident, valid_to in bulletins.items():
            db.add(UpstreamBulletin(upstream_id=ident, bulletin_class=BulletinClass.PRIORITY,
                                    status=BulletinStatus.PROPOSED, title=f"Bản tin {ident}",
                                    media_id=2, villages=["T02"], valid_from=at,
                                    valid_to=valid_to, received_via="webhook"))  # fmt: skip
        await db.flush()
        for row in (await db.exec(select(UpstreamBulletin))).all():
            row.received_at = at
            db.add(row)
        await db.commit()


async def test_unattended_priority_bulletin_placed_at_the_deadline(sessions: Sessions) -> None:
    daily = await seed(sessions)
    came = NOW - timedelta(minutes=10)
    # P3 ends before the next programme (06:00 tomorrow): it gets an own session
    await arrived(sessions, came, P3=NOW + timedelta(hours=5))
    settings = auto_settings(30)
    assert await auto_place_due(sessions, settings, came + timedelta(minutes=29)) == []
    deadline = came + timedelta(minutes=30)
    placed = await auto_place_due(sessions, settings, deadline)
    assert sorted(b.upstream_id for b in placed) == ["P1", "P3"]  # P2 waits for a recording
    p1, p2, p3 = [await bulletin(sessions, i) for i in ("P1", "P2", "P3")]
    assert p2.status == BulletinStatus.PROPOSED and not p2.schedule_ids
    assert p1.status == p3.status == BulletinStatus.SCHEDULED
    assert p1.decided_by == p3.decided_by == "system" and p1.decided_at == deadline
    async with sessions() as db:
        original = await db.get(Schedule, daily)
        assert original is not None and original.exceptions == ["2026-03-02"]
        with_bulletin = await db.get(Schedule, p1.schedule_ids[0])
        assert with_bulletin is not None and p1.programme_id is not None
        spec = (await programme_specs(db, [p1.programme_id]))[p1.programme_id]
        own = await db.get(Schedule, p3.schedule_ids[0])
        audits = (
            await db.exec(
                select(AuditEntry)
                .where(AuditEntry.action == "bulletin.scheduled")
                .order_by(col(AuditEntry.id))
            )
        ).all()
        messages = (
            await db.exec(
                select(OutboxMessage)
                .where(OutboxMessage.kind == "bulletin_status")
                .order_by(col(OutboxMessage.id))
            )
        ).all()
    # before item 1 of the next programme, on the bulletin's clusters
    assert with_bulletin.targets == {"clusters": ["C01", "C02"]}
    assert with_bulletin.start_at == datetime(2026, 3, 2, 6, 0, tzinfo=HCM)
    assert [i.media_id for i in spec.items] == [2, None, 1]
    assert own is not None and own.priority == "bulletin" and own.targets == {"clusters": ["C03"]}
    assert own.start_at == deadline + timedelta(minutes=2)
    assert [a.actor for a in audits] == ["system", "system"]
    assert audits[0].details["auto"] is True and audits[0].details["mode"] == "before"
    assert audits[1].details["mode"] == "session"
    assert [m.key for m in messages] == ["bulletin:P1:scheduled", "bulletin:P3:scheduled"]
    assert messages[0].payload["status"] == "scheduled"
    assert messages[0].payload["details"]["auto"] is True
    # a second run does nothing more
    assert await auto_place_due(sessions, settings, deadline + timedelta(minutes=5)) == []


async def test_auto_placement_leaves_operator_decisions_and_can_be_off(sessions: Sessions) -> None:
    await seed(sessions)
    came = NOW - timedelta(minutes=10)
    await arrived(sessions, came, P3=NOW + timedelta(days=1))
    late = came + timedelta(hours=3)
    for off in (0, None):
        assert await auto_place_due(sessions, auto_settings(off), late) == []
    assert (await bulletin(sessions, "P1")).status == BulletinStatus.PROPOSED
    p1, p3 = await bulletin(sessions, "P1"), await bulletin(sessions, "P3")
    assert p1.id is not None and p3.id is not None
    await decline_bulletin(sessions, OPERATOR, p1.id, "đã phát", now=NOW)
    at = NOW + timedelta(hours=1)
    await place_bulletin(sessions, SETTINGS, OPERATOR, p3.id, "session", at=at, now=NOW)
    assert await auto_place_due(sessions, auto_settings(30), late) == []
    p1, p3 = await bulletin(sessions, "P1"), await bulletin(sessions, "P3")
    assert p1.status == BulletinStatus.DECLINED and p1.decided_by == "cli:lan"
    assert p3.status == BulletinStatus.SCHEDULED and p3.decided_by == "cli:lan"
    async with sessions() as db:
        system = (await db.exec(select(AuditEntry).where(AuditEntry.actor == "system"))).all()
    assert system == []


async def test_refused_auto_placement_is_noted_once_and_tried_again(sessions: Sessions) -> None:
    await seed(sessions)
    came = NOW - timedelta(minutes=40)
    await arrived(sessions, came)
    async with sessions() as db:  # P1 now targets a village this commune does not have
        p1 = (
            await db.exec(select(UpstreamBulletin).where(UpstreamBulletin.upstream_id == "P1"))
        ).one()
        p1.villages = ["thon-9"]
        db.add(p1)
        await db.commit()
    assert await auto_place_due(sessions, auto_settings(30), NOW) == []
    p1 = await bulletin(sessions, "P1")
    assert p1.status == BulletinStatus.PROPOSED
    assert p1.note == "automatic placement failed: unknown village(s): thon-9"
    async with sessions() as db:
        p1.villages = ["T01"]
        db.add(p1)
        await db.commit()
    [placed] = await auto_place_due(sessions, auto_settings(30), NOW + timedelta(minutes=1))
    assert placed.upstream_id == "P1" and placed.status == BulletinStatus.SCHEDULED
