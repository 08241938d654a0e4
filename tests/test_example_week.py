"""The example commune's week (tests/fixtures/week.csv) built through the station services."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from scheduler import Action, ClusterTimeline
from station._programmes import ItemInput, add_programme
from station._schedules import (
    ScheduleRequest,
    create_schedule,
    make_recurrence,
    schedule_timeline,
)
from station._services import Sessions, StationError
from station._week_csv import import_week, parse_targets, parse_week_csv
from station.config import Settings
from station.db import (
    Cluster,
    ClusterZone,
    MediaItem,
    Programme,
    Schedule,
    ScheduleStatus,
    Village,
    Zone,
    create_engine_for,
    session_factory,
    upgrade_async,
)

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
WEEK_CSV = Path(__file__).parent / "fixtures" / "week.csv"
MONDAY = date(2026, 3, 2)
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=HCM)  # the Sunday before
RELAYS = {
    "Tiếp âm thời sự VOV1": "http://vov.example/vov1",
    "Tiếp âm Đài Phát thanh tỉnh": "http://radio.example/tinh",
}
VILLAGES = {"T01": ["C01", "C02"], "T05": ["C03", "C04"], "T09": ["C05", "C06"]}


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[Sessions]:
    await upgrade_async(database_url)
    engine = create_engine_for(database_url)
    factory = session_factory(engine)
    async with factory() as db:
        for village, clusters in VILLAGES.items():
            db.add(Village(id=village, name=f"Thôn {village[1:]}"))
            db.add_all(Cluster(id=c, name=c, village_id=village) for c in clusters)
        db.add(Zone(id="song", name="ven sông"))
        await db.flush()
        db.add_all(ClusterZone(zone_id="song", cluster_id=c) for c in ("C01", "C05"))
        rows = parse_week_csv(WEEK_CSV.read_text(encoding="utf-8"))
        for n, row in enumerate(r for r in rows if r.kind == "media"):
            db.add(
                MediaItem(
                    sha256=f"{n:064x}",
                    source_sha256=f"{n:064x}",
                    title=row.title,
                    duration_ms=int(row.duration_s * 1000),
                    size_bytes=1000,
                )
            )
        await db.commit()
    try:
        yield factory
    finally:
        await engine.dispose()


async def _import(sessions: Sessions, settings: Settings) -> None:
    rows = parse_week_csv(WEEK_CSV.read_text(encoding="utf-8"))
    await import_week(sessions, settings, rows, NOW, relay_urls=RELAYS, valid_from=MONDAY)


def _by_day(line: ClusterTimeline) -> dict[str, list[tuple[str, str]]]:
    days: dict[str, list[tuple[str, str]]] = {}
    for slot in line.slots:
        start = slot.start.astimezone(HCM)
        end = slot.end.astimezone(HCM)
        days.setdefault(f"{start:%a}", []).append((f"{start:%H:%M}-{end:%H:%M}", slot.title))
    return days


async def test_the_example_week_builds_and_its_timeline_is_right(sessions: Sessions) -> None:
    settings = Settings()
    await _import(sessions, settings)
    async with sessions() as db:
        schedules = (await db.exec(select(Schedule))).all()
        cotu = (await db.exec(select(Programme).where(Programme.language == "ctu"))).one()
    assert len(schedules) == 11
    assert {s.status for s in schedules} == {ScheduleStatus.ACTIVE}
    assert cotu.topics == ["II.8 dân tộc và tôn giáo"]

    start = datetime.combine(MONDAY, time(), HCM)
    week = await schedule_timeline(
        sessions, settings, {"clusters": ["C01", "C05"]}, start, start + timedelta(days=7)
    )
    c01, c05 = _by_day(week["C01"]), _by_day(week["C05"])
    assert c01["Mon"] == [
        ("05:30-05:45", "Tiếp âm thời sự VOV1"),
        ("05:45-06:00", "Bản tin xã buổi sáng"),
        ("06:00-06:10", "Chuyển đổi số cho người dân"),
        ("17:00-17:15", "Bản tin xã buổi chiều"),
        ("17:15-17:30", "Tiếp âm Đài Phát thanh tỉnh"),
    ]
    assert c01["Wed"][-1] == ("17:30-17:40", "Thông báo của UBND xã (trực tiếp)")
    assert ("06:00-06:10", "Bản tin tiếng Cơ Tu") in c05["Fri"]
    assert all(title != "Bản tin tiếng Cơ Tu" for _, title in c01["Fri"])
    assert c01["Sat"] == [("17:00-17:15", "Phòng chống thiên tai mùa bão")]
    assert "Sun" not in c01
    assert sum(map(len, c01.values())) == 26 and sum(map(len, c05.values())) == 27
    assert [s.priority for s in week["C01"].slots[:2]] == ["relay", "scheduled"]
    assert all(s.how == Action.START for s in week["C01"].slots)  # nothing clashes

    by_zone = await schedule_timeline(
        sessions, settings, {"zones": ["song"]}, start, start + timedelta(days=7)
    )
    assert sorted(by_zone) == ["C01", "C05"]
    t09 = await schedule_timeline(
        sessions, settings, {"villages": ["T09"]}, start, start + timedelta(days=1)
    )
    assert sorted(t09) == ["C05", "C06"]


async def test_urban_quota_refuses_the_long_morning_slot(sessions: Sessions) -> None:
    settings = Settings.model_validate({"playout": {"village_localities": {"T09": "urban"}}})
    with pytest.raises(StationError) as caught:
        await _import(sessions, settings)
    message = str(caught.value)
    assert "line 3 (Bản tin xã buổi sáng)" in message
    assert (
        "locality 'urban': a 30-minute session at 2026-03-02T05:30+07:00 (max 15 minutes)"
        in message
    )
    assert "C05, C06" in message
    assert "(schedules 1 from the lines before were made)" in message


async def test_an_overlapping_bulletin_is_refused_then_accepted_after(sessions: Sessions) -> None:
    settings = Settings()
    await _import(sessions, settings)
    async with sessions() as db:
        media = MediaItem(
            sha256="f" * 64,
            source_sha256="f" * 64,
            title="Thông báo tiêm phòng",
            duration_ms=300_000,
            size_bytes=1,
        )
        db.add(media)
        await db.commit()
        assert media.id is not None
    programme = await add_programme(
        sessions, "Thông báo tiêm phòng", [ItemInput("media", media_id=media.id)]
    )
    assert programme.id is not None
    request = ScheduleRequest(
        programme.id,
        {"villages": ["T09"]},
        make_recurrence("weekly", time_of_day=time(5, 50), weekdays="mon", valid_from=MONDAY),
        misfire_grace_s=1800,
    )
    with pytest.raises(StationError) as caught:
        await create_schedule(sessions, settings, request, NOW)
    message = str(caught.value)
    assert "overlaps schedules of the same priority" in message
    assert "on C05, C06 at 2026-03-01T22:50+00:00-22:55" in message
    assert "--on-conflict before|after" in message

    accepted = await create_schedule(
        sessions, settings, ScheduleRequest(**{**_fields(request), "on_conflict": "after"}), NOW
    )
    assert accepted.schedule.rank == 1 and "plays after" in accepted.schedule.note
    [conflict] = accepted.conflicts
    assert conflict.clusters == {"C05", "C06"} and len(conflict.overlaps) == 5  # 5 Mondays

    start = datetime.combine(MONDAY, time(5), HCM)
    line = (
        await schedule_timeline(
            sessions, settings, {"clusters": ["C05"]}, start, start + timedelta(hours=2)
        )
    )["C05"]
    shown = [(f"{s.start.astimezone(HCM):%H:%M}", s.title, s.how) for s in line.slots]
    assert shown == [
        ("05:30", "Tiếp âm thời sự VOV1", Action.START),
        ("05:45", "Bản tin xã buổi sáng", Action.START),
        ("06:00", "Chuyển đổi số cho người dân", Action.PREEMPT),
        ("06:10", "Thông báo tiêm phòng", Action.RESUME),
    ]
    assert [e.action for e in line.events if e.session_id.startswith(f"s{accepted.schedule.id}-")][
        :1
    ] == [Action.QUEUE]


def _fields(request: ScheduleRequest) -> dict[str, object]:
    return {name: getattr(request, name) for name in ScheduleRequest.__slots__}


def test_week_plan_rows_and_bad_input() -> None:
    rows = parse_week_csv(WEEK_CSV.read_text(encoding="utf-8"))
    assert len(rows) == 11
    assert rows[0].weekdays == "mon-fri" and rows[0].duration_s == 900
    assert rows[6].targets == {"villages": ["T09"]}
    assert parse_targets("zone:song cluster:C01; T02") == {
        "zones": ["song"],
        "clusters": ["C01"],
        "villages": ["T02"],
    }
    header = "weekday,start,end,slot,kind,title,topic,language,targets\n"
    with pytest.raises(StationError, match="line 2: bad weekday"):
        parse_week_csv(header + "mon-sun-x,05:30,05:45,m,relay,X,,vi,all\n")
    with pytest.raises(StationError, match="line 2: end 05:00 is not after start 05:30"):
        parse_week_csv(header + "mon,05:30,05:00,m,relay,X,,vi,all\n")
    with pytest.raises(StationError, match="header"):
        parse_week_csv("a,b\n1,2\n")
