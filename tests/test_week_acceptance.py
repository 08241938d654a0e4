"""Acceptance for issue #5 (playout): the example commune's week runs on the simulator.

The week is ``tests/fixtures/week.csv`` (the example commune's: two daily slots, relays, a live
slot on Wednesday, a bulletin in Cơ Tu for one village) on the example commune's equipment
(``commune_*.csv``: 12 ICT receivers, an FM bridge and a wired-line bridge with their legacy
sets). Time is compressed: every broadcast of the week (Monday to Saturday, in order) becomes
its own weekly schedule, made by the station's week-plan import, a second or a few apart today,
with short audio; the station's dispatcher, live hub (relays through the station) and proof of
play run as in production. During Tuesday's topic programme an emergency cuts in everywhere;
the programme resumes where it stopped.

Checked as a user would: the timeline said what played, on which clusters, in that order; proof
of play per cluster and session (finished; interrupted by the emergency then resumed, with the
whole programme counted); legacy bridges switched on before each broadcast and off at the end;
every schedule's success ratio is 100 %.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import col, select

from devices.protocol import Command, PowerCommand
from scheduler import Action, ItemKind, base_session_id
from simulator import SimulatedFleet
from station import _keys as keys
from station._emergency import EmergencyRequest, start_emergency
from station._plays import PlayRow, plays_on, ratios
from station._registry_import import import_clusters, import_villages
from station._schedules import schedule_timeline
from station._services import Sessions, add_media
from station._week_csv import WeekRow, import_week, parse_week_csv
from station.app import RunningStation, start_station
from station.db import MediaItem, PlayRecord, PlayRecordStatus, PlaySession, Programme, Schedule
from station.demo import demo_settings
from station.media import synthesize_programme
from tests.test_relay import Upstream

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
FIXTURES = Path(__file__).parent / "fixtures"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ICT = [f"C{n:02}" for n in range(1, 13)]
BRIDGES = {"B01": ["L01", "L02", "L04"], "B02": ["W01", "W02"]}  # what hangs off each bridge
RECEIVERS = sorted([*ICT, *BRIDGES])
CUT = ("tue", "An toàn giao thông mùa mưa")  # the broadcast the emergency cuts into
CUT_MEDIA_S = 4.0  # long enough that the emergency lands inside it on a loaded machine
# The cut broadcast's slot: room for the emergency's start (0.7 s with the bridges' warm-up),
# the alert, the runner noticing its end (polled every second) and the rest of the programme,
# with slack for a loaded machine (seen: 8 s was too little, the next broadcast met the
# resumption on a bridge).
CUT_SLOT_S = 14
# Every other broadcast's slot: media of 0.7-1 s, so a start late by a loaded machine does not
# run into the next broadcast (seen with 1 s slots: a cluster missed one; with 2 s slots, on
# CI's PostgreSQL + Mosquitto pass, a bridge missed one once).
SLOT_S = 3
MEDIA_S = 0.7
ALERT_S = 0.6
SETUP_S = 25  # margin before the first broadcast for importing the week (see below)
GAP = timedelta(seconds=1.5)  # a stream stops on the device clock: room for a loaded CI machine


@dataclass(frozen=True, slots=True)
class Broadcast:
    """One broadcast of the week and where it lands in compressed time."""

    day: str
    row: WeekRow
    start: datetime  # local
    seconds: int  # its slot (a relay/live lasts that long)


def days_of(spec: str) -> list[str]:
    found: list[str] = []
    for part in spec.split(","):
        first, _, last = part.strip().partition("-")
        found += DAYS[DAYS.index(first) : DAYS.index(last or first) + 1]
    return found


def compress(rows: list[WeekRow], start: datetime) -> list[Broadcast]:
    """The week's broadcasts in order in ``SLOT_S`` slots, back to back (media end early);
    a gap after a relay or live slot (its stream ends exactly when its slot does); the cut
    broadcast gets room for the emergency and its resumption."""
    week = sorted(
        ((DAYS.index(day), row) for row in rows for day in days_of(row.weekdays)),
        key=lambda pair: (pair[0], pair[1].start),
    )
    found: list[Broadcast] = []
    at = start
    for day, row in week:
        seconds = CUT_SLOT_S if (DAYS[day], row.title) == CUT else SLOT_S
        found.append(Broadcast(DAYS[day], row, at, seconds))
        at += timedelta(seconds=seconds)
        if row.kind != ItemKind.MEDIA:
            at += GAP
    return found


def compressed_csv(week: list[Broadcast]) -> str:
    """The compressed week as a week plan: one row per broadcast, on its (real) weekday."""
    lines = ["weekday,start,end,slot,kind,title,topic,language,targets"]
    for b in week:
        end = b.start + timedelta(seconds=b.seconds)
        targets = " ".join(
            [*b.row.targets.get("villages", [])]
            + [f"zone:{z}" for z in b.row.targets.get("zones", [])]
            + [f"cluster:{c}" for c in b.row.targets.get("clusters", [])]
        )
        lines.append(
            f"{DAYS[b.start.weekday()]},{b.start:%H:%M:%S.%f},{end:%H:%M:%S.%f},{b.row.slot},"
            f"{b.row.kind.value},{b.row.title},{b.row.topic},{b.row.language},{targets or 'all'}"
        )
    return "\n".join(lines) + "\n"


async def _station(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str
) -> RunningStation:
    settings = demo_settings(
        tmp_path, mqtt_url=mqtt_url, database_url=database_url, station_id=station_id
    )
    # Quotas and clashes checked over the week of the run only (the default is 5 weeks): the
    # 27 schedules of the compressed week are made in a second or two, not many.
    playout = settings.playout.model_copy(update={"bridge_warmup_s": 0.2, "check_weeks": 1})
    station = await start_station(settings.model_copy(update={"playout": playout}))
    sessions = station.app[keys.SESSIONS]
    villages = await import_villages(sessions, (FIXTURES / "commune_villages.csv").read_text())
    clusters = await import_clusters(sessions, (FIXTURES / "commune_clusters.csv").read_text())
    assert not villages.errors and not clusters.errors
    station.app[keys.GATEWAY].remember(RECEIVERS)
    return station


async def _library(station: RunningStation, tmp_path: Path, titles: list[str]) -> int:
    """Short audio for every media title of the week (the cut one longer) and the alert's."""
    app = station.app
    sessions, settings = app[keys.SESSIONS], app[keys.SETTINGS]

    async def add(n: int, title: str, seconds: float) -> int:
        source = tmp_path / f"m{n}.wav"
        await synthesize_programme(source, seconds)
        item, _ = await add_media(
            sessions, app[keys.MEDIA_STORE], app[keys.MEDIA_WORKER], settings, source, title
        )
        assert item.id is not None
        return item.id

    lengths = [CUT_MEDIA_S if t == CUT[1] else MEDIA_S + 0.01 * n for n, t in enumerate(titles)]
    added = await asyncio.gather(
        *(add(n, t, s) for n, (t, s) in enumerate(zip(titles, lengths, strict=True))),
        add(len(titles), "Báo bão khẩn cấp", ALERT_S),
    )
    return int(added[-1])


async def until(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


async def _records(sessions: Sessions) -> list[tuple[PlaySession, PlayRecord]]:
    async with sessions() as db:
        rows = await db.exec(
            select(PlaySession, PlayRecord).join(
                PlayRecord, col(PlayRecord.session_id) == col(PlaySession.id)
            )
        )
        return list(rows.all())


@pytest.mark.slow_first  # ~2.5 min: started first, not the pass's tail
@pytest.mark.timeout(300)  # the compressed week alone lasts about two minutes
async def test_the_example_week_runs_on_the_simulator(
    tmp_path: Path,
    mqtt_url: str,
    database_url: str,
    station_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    radios = {"Tiếp âm thời sự VOV1": Upstream(), "Tiếp âm Đài Phát thanh tỉnh": Upstream()}
    for radio in radios.values():
        await radio.start()
    station = await _station(tmp_path, mqtt_url, database_url, station_id)
    try:
        app = station.app
        sessions, settings = app[keys.SESSIONS], app[keys.SETTINGS]
        power: list[tuple[datetime, str, PowerCommand]] = []
        send = app[keys.GATEWAY].send

        async def spy(cluster_id: str, command: Command, timeout: float | None = None) -> None:
            if isinstance(command, PowerCommand):
                power.append((datetime.now(UTC), cluster_id, command))
            await send(cluster_id, command, timeout)

        monkeypatch.setattr(app[keys.GATEWAY], "send", spy)
        rows = parse_week_csv((FIXTURES / "week.csv").read_text(encoding="utf-8"))
        media_titles = list(dict.fromkeys(r.title for r in rows if r.kind == ItemKind.MEDIA))
        alert_media = await _library(station, tmp_path, media_titles)
        async with SimulatedFleet(
            station.runtime.mqtt_url, station_id, RECEIVERS, bridges=BRIDGES, heartbeat_s=5
        ) as fleet:
            now = datetime.now(HCM)
            lead = settings.scheduler.dispatch_lead_s
            # The first broadcast (a two-second relay) must not be over before the import and
            # the dispatcher are done: 2 s on an idle machine, 12 s seen on a loaded one (the
            # whole first relay was missed in CI with a 3 s margin).
            week = compress(rows, (now + timedelta(seconds=lead + SETUP_S)).replace(microsecond=0))
            plan = parse_week_csv(compressed_csv(week))
            made = await import_week(
                sessions,
                settings,
                plan,
                now,
                relay_urls={title: r.url for title, r in radios.items()},
                valid_from=now.date(),
            )
            schedule_of = {
                (b.day, b.row.title): m.schedule.id for b, m in zip(week, made, strict=True)
            }
            assert len(made) == len(week) == 27  # Monday to Saturday
            await app[keys.DISPATCHER].reconcile()
            begin = week[0].start
            setup_s = (datetime.now(HCM) - now).total_seconds()
            assert setup_s < lead + SETUP_S - 1, f"setting up the week took {setup_s:.1f} s"
            end = week[-1].start + timedelta(seconds=week[-1].seconds)
            timeline = await schedule_timeline(
                sessions, settings, {"clusters": RECEIVERS}, begin, end + timedelta(minutes=1)
            )

            # The emergency: as soon as Tuesday's topic programme is on air.
            cut_id = schedule_of[CUT]
            cut_session = next(
                s.session_id for s in timeline["C01"].slots if s.schedule_id == cut_id
            )
            c01 = fleet.clusters["C01"]

            async def cut_on_air() -> bool:
                return bool(c01.playing == cut_session)

            left = (end - datetime.now(HCM)).total_seconds()
            await until(cut_on_air, left, "Tuesday's topic programme on air")
            emergency = await start_emergency(
                sessions,
                settings,
                EmergencyRequest({"all": True}, media_id=alert_media),
                "chairman",
            )
            app[keys.DISPATCHER].poke()

            async def week_over() -> bool:
                pairs = await _records(sessions)
                return len({s.id for s, _ in pairs}) == len(week) + 1 and all(
                    r.status in (PlayRecordStatus.FINISHED, PlayRecordStatus.FAILED)
                    or (r.status == PlayRecordStatus.INTERRUPTED and s.id != cut_session)
                    for s, r in pairs
                )

            left = (end - datetime.now(HCM)).total_seconds() + 20
            with contextlib.suppress(AssertionError):  # what is missing is said below
                await until(week_over, left, "the week over")
            played = {cid: list(c.records) for cid, c in fleet.clusters.items()}

            async def all_off() -> bool:
                return not any(on for b in BRIDGES for on, _ in fleet.clusters[b].power.values())

            await until(all_off, 10, "bridges switched off after the last broadcast")

        pairs = await _records(sessions)
        async with sessions() as db:
            titles = {
                s.id: p.title
                for s, p in (
                    await db.exec(
                        select(Schedule, Programme).join(
                            Programme, col(Programme.id) == col(Schedule.programme_id)
                        )
                    )
                ).all()
            }
            cut_total_ms = (
                await db.exec(select(MediaItem.duration_ms).where(MediaItem.title == CUT[1]))
            ).one()

        # 1. The timeline said what played: per cluster, the same broadcasts in the same order
        # (the emergency aside, and the resumption folded into its broadcast).
        for cid in RECEIVERS:
            slots = timeline[cid].slots
            assert all(s.how == Action.START for s in slots)  # the week has no clashes
            heard = [  # in the order they started (the list made the media sessions first)
                r.session_id
                for r in sorted(played[cid], key=lambda r: r.started_at or end)
                if base_session_id(r.session_id)[1] == 0
            ]
            # (a str message: pytest would shorten a tuple's repr to its first lines)
            mine = [
                (s.id, r.status.value, r.error_code, r.skew_ms)
                for s, r in pairs
                if r.cluster_id == cid
            ]
            switched = [(at.time(), c.target, c.on) for at, b, c in power if b == cid]
            assert [s.session_id for s in slots] == [h for h in heard if h != emergency.id], (
                f"{cid} heard: {[(r.session_id, r.outcome, r.played_ms) for r in played[cid]]}"
                f"\nstation's records: {mine}\npower commands: {switched}"
            )
        # ... which is the week of the plan: every broadcast, to its villages (Cơ Tu: T09).
        by_schedule = {s.schedule_id: s for s in timeline["C01"].slots}
        assert len(timeline["C01"].slots) == 26 and len(timeline["C10"].slots) == 27
        assert [titles[s.schedule_id] for s in timeline["C10"].slots] == [b.row.title for b in week]
        assert all(titles[sid] != "Bản tin tiếng Cơ Tu" for sid in by_schedule)

        # 2. Proof of play, per cluster and broadcast.
        records = {(s.id, r.cluster_id): (s, r) for s, r in pairs}
        for b in week:
            sid = next(
                s.session_id
                for cid in ("C01", "C10")
                for s in timeline[cid].slots
                if s.schedule_id == schedule_of[(b.day, b.row.title)]
            )
            targeted = ["C10"] if b.row.targets != {"all": True} else RECEIVERS
            got = sorted(cid for (s, cid) in records if s == sid)
            assert got == targeted, (b.day, b.row.title, got)
            for cid in targeted:
                session, record = records[(sid, cid)]
                what = (b.day, b.row.title, cid, record)
                assert record.status == PlayRecordStatus.FINISHED, what
                assert session.start_at == b.start.astimezone(UTC), what
                assert record.played_ms is not None, what
                if (b.day, b.row.title) == CUT:
                    # Cut by the emergency, resumed where it stopped: all of it was heard.
                    # The resumption starts from the position at the emergency's start, so the
                    # cluster replays what it aired while the emergency's command was on its
                    # way: bounded by the preemption goal (a second or two), not by a
                    # loaded machine's scheduling (CI measured 364 ms).
                    assert record.interrupted_by == emergency.id, what
                    assert cut_total_ms - 300 <= record.played_ms <= cut_total_ms + 2000, what
                    outcomes = [
                        (r.session_id, r.outcome)
                        for r in sorted(played[cid], key=lambda r: r.started_at or end)
                    ]
                    at = outcomes.index((sid, "preempted"))
                    assert outcomes[at + 1] == (emergency.id, "finished"), outcomes
                    resumed, outcome = outcomes[at + 2]
                    assert resumed.startswith(f"{sid}~r") and outcome == "finished", outcomes
                else:
                    assert record.interrupted_by is None, what
                    assert record.played_ms > 0, what  # a late start joins a stream late
                if b.row.kind == ItemKind.RELAY:  # through the station's hub: real audio
                    assert record.bytes_downloaded and record.bytes_downloaded > 0, what
        for cid in RECEIVERS:  # nothing played twice, nothing cut but by the emergency
            ids = [r.session_id for r in played[cid]]
            assert len(ids) == len(set(ids)), (cid, ids)
            assert {
                r.outcome for r in played[cid] if r.session_id.split("~")[0] != cut_session
            } == {"finished"}, (cid, played[cid])
        alert = [r for (s, _), (_, r) in records.items() if s == emergency.id]
        assert sorted(r.cluster_id for r in alert) == RECEIVERS
        assert all(r.status == PlayRecordStatus.FINISHED for r in alert)

        # 3. Legacy bridges: on (with the zone codes of their working sets) before each of
        # their broadcasts and still on when it starts (the previous broadcast's end does not
        # switch off the next one's output), off once the week is over (checked above).
        for bridge, target, codes in (
            ("B01", "transmitter", ["11", "12"]),
            ("B02", "amplifier", []),
        ):
            sent = [(at, c) for at, cid, c in power if cid == bridge]
            starts = sorted(s.start_at for (_, cid), (s, _) in records.items() if cid == bridge)
            assert len(starts) == 26 + 1, bridge  # the week's broadcasts and the emergency
            for start in starts:
                ons = [c for at, c in sent if at <= start and c.on]
                assert ons, (bridge, start)
                assert ons[-1].target == target and ons[-1].zone_codes == codes
                before = [c for at, c in sent if at <= start and c.target == target]
                assert before[-1].on, (bridge, start)

        # 4. Every schedule (and the emergency) aired everywhere it was aimed at; prefetched
        # media (and the emergency) on time. A relay or live slot starts when the station's
        # hub delivers its first audio, so how late it starts on a loaded machine is the hub's
        # speed (bench/live.py), not a fact of the week (CI once saw a live slot 1 s late).
        days = sorted({b.start.date() for b in week} | {datetime.now(HCM).date()})
        rows_on: list[PlayRow] = []
        for day in days:
            rows_on += await plays_on(sessions, day, "Asia/Ho_Chi_Minh")
        streamed = {
            f"schedule {schedule_of[(b.day, b.row.title)]}"
            for b in week
            if b.row.kind != ItemKind.MEDIA
        }
        skews: dict[str, list[int | None]] = {}
        for r in rows_on:
            skews.setdefault(f"schedule {r.session.schedule_id}", []).append(r.record.skew_ms)
        found = ratios(rows_on)
        assert len(found) == len(week) + 1
        late = [r for r in found if r.key not in streamed and r.ratio < 1.0]
        assert not late, [(r, skews.get(r.key)) for r in late]
        played = Counter(
            f"schedule {r.session.schedule_id}" if r.session.schedule_id else r.session.kind
            for r in rows_on
            if r.record.status == PlayRecordStatus.FINISHED
        )
        assert all(played[r.key] == r.targeted for r in found), (found, played)
    finally:
        await station.stop()
        for radio in radios.values():
            await radio.stop()


def test_the_week_compresses_in_order_with_room_for_the_cut() -> None:
    rows = parse_week_csv((FIXTURES / "week.csv").read_text(encoding="utf-8"))
    start = datetime.combine(date(2026, 3, 2), time(5, 30), HCM)
    week = compress(rows, start)
    assert [b.day for b in week].count("mon") == 5 and [b.day for b in week].count("wed") == 6
    assert [(b.day, b.row.title) for b in week[:3]] == [
        ("mon", "Tiếp âm thời sự VOV1"),
        ("mon", "Bản tin xã buổi sáng"),
        ("mon", "Chuyển đổi số cho người dân"),
    ]
    # A relay is followed by a gap (its stream ends at its slot's end); media back to back.
    assert week[1].start - week[0].start == timedelta(seconds=SLOT_S) + GAP
    assert week[2].start - week[1].start == timedelta(seconds=SLOT_S)
    cut = next(b for b in week if (b.day, b.row.title) == CUT)
    assert cut.seconds == CUT_SLOT_S
    assert [b.day for b in week][-1] == "sat"
    plan = parse_week_csv(compressed_csv(week))
    assert len(plan) == 27
    assert plan[-1].title == "Phòng chống thiên tai mùa bão"
    assert {r.weekdays for r in plan} == {"mon"}  # all on the run's day: 2026-03-02, Monday
    cotu = next(r for r in plan if r.title == "Bản tin tiếng Cơ Tu")
    assert cotu.targets == {"villages": ["T09"]} and cotu.language == "ctu"
