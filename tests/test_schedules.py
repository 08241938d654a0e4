"""Programme and schedule services and the ``loaxa programme|schedule`` commands."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from scheduler import Action, Recurrence
from station._playout_store import PlayoutStore
from station._programmes import ItemInput, add_programme, programme_specs
from station._schedules import (
    ScheduleRequest,
    cancel_schedule,
    create_schedule,
    list_schedules,
    make_recurrence,
    schedule_timeline,
    update_schedule,
)
from station._services import Sessions, StationError
from station.cli import main
from station.config import Settings
from station.db import (
    Cluster,
    ClusterStatus,
    ScheduleStatus,
    Village,
)
from tests.db_support import media_row, seeded

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=HCM)
SETTINGS = Settings()


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[Sessions]:
    rows = [
        Village(id="T01", name="Thôn 1"),
        *(Cluster(id=f"C0{n}", name=f"C0{n}", village_id="T01") for n in (1, 2)),
        Cluster(id="C03", name="C03"),
        Cluster(id="OLD", status=ClusterStatus.RETIRED),
        media_row("a", 600_000, 1),
    ]
    async with seeded(database_url, rows) as factory:
        yield factory


async def _programme(sessions: Sessions, *items: ItemInput) -> int:
    programme = await add_programme(
        sessions, "Sáng", list(items) or [ItemInput("media", media_id=1)]
    )
    assert programme.id is not None
    return programme.id


def _daily(at: time = time(6, 0), valid_to: date | None = None) -> Recurrence:
    return make_recurrence("daily", time_of_day=at, valid_to=valid_to)


async def test_programme_items_of_every_kind(sessions: Sessions) -> None:
    pid = await _programme(
        sessions,
        ItemInput("jingle", media_id=1),
        ItemInput("relay", url="http://vov.example/vov1", duration_s=900),
        ItemInput("live", duration_s=300),
        ItemInput("silence", duration_s=2),
        ItemInput("media", media_id=1),
    )
    async with sessions() as db:
        spec = (await programme_specs(db, [pid]))[pid]
    assert [i.kind for i in spec.items] == ["jingle", "relay", "live", "silence", "media"]
    assert spec.duration == timedelta(minutes=10 + 15 + 5 + 10, seconds=2)


BAD_ITEMS = [
    (ItemInput("relay", duration_s=60), "stream URL"),
    (ItemInput("relay", url="ftp://x/y", duration_s=60), "stream URL"),
    (ItemInput("live"), "positive duration"),
    (ItemInput("media", media_id=1, duration_s=5), "give no duration"),
    (ItemInput("media"), "needs a media id"),
    (ItemInput("media", media_id=99), "unknown media item"),
    (ItemInput("song", media_id=1), "unknown kind 'song'"),
]


async def test_bad_programme_items_are_refused(sessions: Sessions) -> None:
    for item, message in BAD_ITEMS:
        with pytest.raises(StationError, match=message):
            await add_programme(sessions, "X", [item])


BAD_TARGETS: list[tuple[dict[str, object], str]] = [
    ({"clusters": ["C09"]}, "unknown cluster"),
    ({"clusters": ["OLD"]}, "unknown cluster"),  # retired
    ({"zones": ["nowhere"]}, "unknown zone"),
    ({"villages": ["T99"]}, "unknown village"),
    ({"groups": ["x"]}, "unknown target key"),
    ({}, "give all, or clusters"),
    ({"all": True, "clusters": ["C01"]}, "cannot be combined"),
]


async def test_bad_targets_are_refused(sessions: Sessions) -> None:
    pid = await _programme(sessions)
    for targets, message in BAD_TARGETS:
        with pytest.raises(StationError, match=message):
            await create_schedule(sessions, SETTINGS, ScheduleRequest(pid, targets, _daily()), NOW)


async def test_once_is_pending_for_the_dispatcher_recurring_is_active(sessions: Sessions) -> None:
    pid = await _programme(sessions)
    at = datetime(2026, 3, 2, 6, 0, tzinfo=HCM)
    once = await create_schedule(
        sessions, SETTINGS, ScheduleRequest(pid, {"all": True}, make_recurrence("once", at=at)), NOW
    )
    daily = await create_schedule(
        sessions,
        SETTINGS,
        ScheduleRequest(pid, {"clusters": ["C01"]}, _daily(time(17, 0)), volume=80),
        NOW,
    )
    assert once.schedule.status == ScheduleStatus.PENDING and once.schedule.start_at == at
    alarm = make_recurrence("once", at=at + timedelta(hours=1))
    by_village = await create_schedule(
        sessions, SETTINGS, ScheduleRequest(pid, {"villages": ["T01"]}, alarm), NOW
    )
    # stored as clusters: the one-off dispatcher reads "all" and "clusters" only
    assert by_village.schedule.targets == {"clusters": ["C01", "C02"]}
    assert by_village.schedule.note == "targets: villages T01"
    assert daily.schedule.status == ScheduleStatus.ACTIVE
    assert daily.schedule.start_at == datetime(2026, 3, 1, 17, 0, tzinfo=HCM)  # the first one
    # The one-off dispatcher sees the one-off only: a rule never fires as a single broadcast.
    pending = await PlayoutStore(sessions).pending_schedules()
    assert sorted(p.id for p in pending) == [once.schedule.id, by_village.schedule.id]


async def test_update_cancel_and_list(sessions: Sessions) -> None:
    pid = await _programme(sessions)
    made = await create_schedule(
        sessions, SETTINGS, ScheduleRequest(pid, {"all": True}, _daily()), NOW
    )
    assert made.schedule.id is not None
    # Moving it by 5 minutes overlaps its old self: not a conflict.
    moved = ScheduleRequest(pid, {"all": True}, _daily(time(6, 5)))
    assert (await update_schedule(sessions, SETTINGS, made.schedule.id, moved, NOW)).conflicts == []
    weekly = make_recurrence(
        "weekly", time_of_day=time(7, 0), weekdays="sat,sun", exceptions=[date(2026, 3, 7)]
    )
    changed = await update_schedule(
        sessions, SETTINGS, made.schedule.id, ScheduleRequest(pid, {"all": True}, weekly), NOW
    )
    assert changed.schedule.weekdays == "sat,sun" and changed.schedule.exceptions == ["2026-03-07"]
    assert changed.schedule.start_at == datetime(2026, 3, 8, 7, 0, tzinfo=HCM)  # 7 March skipped
    await cancel_schedule(sessions, made.schedule.id)
    assert await list_schedules(sessions) == []
    assert len(await list_schedules(sessions, everything=True)) == 1
    with pytest.raises(StationError, match="cancelled: it can no longer change"):
        await cancel_schedule(sessions, made.schedule.id)
    with pytest.raises(StationError, match="unknown schedule 999"):
        await cancel_schedule(sessions, 999)


async def test_refusals_name_the_reason(sessions: Sessions) -> None:
    pid = await _programme(sessions)
    with pytest.raises(StationError, match="unknown priority 'urgent'"):
        await create_schedule(
            sessions,
            SETTINGS,
            ScheduleRequest(pid, {"all": True}, _daily(), priority="urgent"),
            NOW,
        )
    with pytest.raises(StationError, match="never airs"):
        past = _daily(valid_to=date(2026, 2, 1))
        await create_schedule(sessions, SETTINGS, ScheduleRequest(pid, {"all": True}, past), NOW)
    with pytest.raises(StationError, match="unknown programme 42"):
        await create_schedule(sessions, SETTINGS, ScheduleRequest(42, {"all": True}, _daily()), NOW)
    long = await _programme(sessions, *[ItemInput("media", media_id=1)] * 5)  # 50 minutes
    with pytest.raises(StationError, match="locality 'rural': a 50-minute session"):
        await create_schedule(
            sessions, SETTINGS, ScheduleRequest(long, {"all": True}, _daily()), NOW
        )


async def test_emergency_is_quota_exempt_and_preempts_in_the_timeline(sessions: Sessions) -> None:
    pid = await _programme(sessions)
    await create_schedule(sessions, SETTINGS, ScheduleRequest(pid, {"all": True}, _daily()), NOW)  # type: ignore[arg-type]
    long = await _programme(sessions, *[ItemInput("media", media_id=1)] * 5)
    at = datetime(2026, 3, 2, 6, 5, tzinfo=HCM)
    alarm = ScheduleRequest(
        long, {"clusters": ["C02"]}, make_recurrence("once", at=at), priority="emergency"
    )
    await create_schedule(sessions, SETTINGS, alarm, NOW)
    start = datetime(2026, 3, 2, tzinfo=HCM)
    found = await schedule_timeline(
        sessions, SETTINGS, {"all": True}, start, start + timedelta(days=1)
    )
    assert [s.how for s in found["C02"].slots] == [Action.START, Action.PREEMPT]
    assert [e.action for e in found["C02"].events][-1] == Action.INTERRUPTED  # 50 min > its window
    assert [s.how for s in found["C01"].slots] == [Action.START]


# --------------------------------------------------------------------------- CLI


def _cli(config: Path, *argv: str) -> int:
    return main([*argv[:2], "-c", str(config), *argv[2:]])


async def _seed_clusters(url: str, *ids: str) -> None:
    async with seeded(url, [*(Cluster(id=c, name=c) for c in ids), media_row("b", 60_000, 1)]):
        pass


@pytest.fixture
def config(tmp_path: Path, database_url: str) -> Path:
    asyncio.run(_seed_clusters(database_url, "C01", "C02"))
    path = tmp_path / "loaxa.yaml"
    path.write_text(f"database:\n  url: {database_url}\n", encoding="utf-8")
    return path


def test_cli_programme_schedule_timeline(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        _cli(
            config,
            "programme",
            "add",
            "--title",
            "Tiếp âm",
            "--topic",
            "II.1",
            "relay:15m:http://vov.example/vov1",
            "silence:5s",
        )
        == 0
    )
    assert _cli(config, "programme", "list") == 0
    assert (
        _cli(
            config,
            "schedule",
            "add",
            "--programme",
            "1",
            "--weekdays",
            "mon-fri",
            "--time",
            "05:30",
            "--priority",
            "relay",
            "--from",
            "2030-03-04",
            "--except",
            "2030-03-05",
            "--misfire",
            "start-late:10",
        )
        == 0
    )
    assert (
        _cli(
            config,
            "schedule",
            "add",
            "--programme",
            "1",
            "--monthly",
            "1",
            "--time",
            "19:00",
            "--clusters",
            "C02",
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "programme 1: Tiếp âm (2 items)" in out
    assert "0:15:05     2  Tiếp âm [II.1]" in out
    assert "schedule 1: programme 1, weekly, first 2030-03-04T05:30+07:00" in out
    assert _cli(config, "schedule", "list") == 0
    listing = capsys.readouterr().out
    assert "mon,tue,wed,thu,fri 05:30 2030-03-04..…" in listing and "monthly 1 19:00" in listing
    assert (
        _cli(config, "schedule", "timeline", "--cluster", "C01", "--day", "2030-03-06", "--week")
        == 0
    )
    week = capsys.readouterr().out
    assert "== C01" in week and "Mon 2030-03-04" in week and "Tue 2030-03-05" not in week
    assert "05:30-05:45  relay      #1    Tiếp âm" in week
    alarm = ["--programme", "1", "--at", "2030-03-06T05:35", "--priority", "emergency"]
    assert _cli(config, "schedule", "add", *alarm, "--clusters", "C01") == 0
    capsys.readouterr()
    assert _cli(config, "schedule", "timeline", "--zone", "nowhere") == 2
    assert _cli(config, "schedule", "timeline", "--cluster", "C01", "--day", "2030-03-06") == 0
    wed = capsys.readouterr().out
    assert "05:35-05:50  emergency  #3    Tiếp âm (cuts in over #1)" in wed
    # the relay rejoins live: its 15 minutes are over, only the silence after it is left
    assert "05:50-05:50  relay      #1    Tiếp âm (resumes) from 0:00:00 of item 2" in wed
    assert _cli(config, "schedule", "cancel", "1") == 0
    assert "schedule 1 cancelled" in capsys.readouterr().out


def test_cli_one_off_with_media_still_works(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `schedule add --at ... --media ...` (the foundation's command) makes a programme too.
    assert _cli(config, "schedule", "add", "--at", "2030-01-01T06:00", "--media", "1") == 0
    out = capsys.readouterr().out
    assert "schedule 1: programme 1, once, first 2030-01-01T06:00+07:00" in out
    assert _cli(config, "schedule", "add") == 2
    assert "give --programme ID, or --media IDs" in capsys.readouterr().err
    assert _cli(config, "schedule", "add", "--at", "2030-01-01T06:00", "--media", "7") == 2
    assert "unknown media item(s): 7" in capsys.readouterr().err


BAD_ARGV = [
    (["schedule", "add", "--programme", "1", "--daily"], "needs --time HH:MM"),
    (["schedule", "add", "--programme", "1", "--daily", "--weekdays", "mon"], "exactly one of"),
    (["schedule", "add", "--programme", "1", "--daily", "--time", "25:00"], "bad time"),
    (
        [
            "schedule",
            "add",
            "--programme",
            "1",
            "--daily",
            "--time",
            "06:00",
            "--misfire",
            "later",
        ],
        "bad --misfire",
    ),
    (
        ["schedule", "add", "--programme", "1", "--weekdays", "mon-sun-x", "--time", "06:00"],
        "bad weekday",
    ),
    (["programme", "add", "--title", "X", "relay:15:http://x"], "bad duration"),
    (["programme", "add", "--title", "X", "song:1"], "bad item"),
    (["schedule", "timeline", "--zone", "nowhere"], "unknown zone"),
]


def test_cli_bad_input_exits_2_with_a_message(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv, message in BAD_ARGV:
        assert _cli(config, *argv) == 2, argv
        assert message in capsys.readouterr().err


def test_timeline_utc_window_is_exact() -> None:
    # Guard for the CLI's day window: midnight local, not UTC.
    start = datetime.combine(date(2030, 3, 4), time(), HCM)
    assert start.astimezone(UTC).hour == 17


def test_cli_import_week_plan_names_the_failing_line(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = str(Path(__file__).parent / "fixtures" / "week.csv")
    assert _cli(config, "schedule", "import", plan, "--from", "2030-03-04") == 2
    assert "week plan line 2 (Tiếp âm thời sự VOV1): no stream URL" in capsys.readouterr().err
    relay = "Tiếp âm thời sự VOV1=http://vov.example/vov1"
    assert _cli(config, "schedule", "import", plan, "--relay", relay, "--from", "2030-03-04") == 2
    assert "line 3 (Bản tin xã buổi sáng): no media item with this title" in capsys.readouterr().err
    assert _cli(config, "schedule", "list", "--all") == 0
    listing = capsys.readouterr().out.strip().splitlines()
    assert len(listing) == 1  # the header only: rows are checked before anything is written
    assert _cli(config, "schedule", "import", plan, "--relay", "no-equals") == 2
    assert "bad --relay 'no-equals'" in capsys.readouterr().err
