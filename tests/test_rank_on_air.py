"""The operator's order among overlapping schedules of one priority, on air.

The station ranks them when it plans (the timeline); clusters arbitrate clashes themselves, so
each ``play``, ``stream`` and held session carries ``rank`` (docs/protocol.md) and a cluster's
rule (higher priority, then higher rank, then the newcomer) takes the timeline's decisions:
pure (every decision of random timelines) and end to end (embedded broker + simulator, one
cluster with its link cut across the clash, playing from its held list).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.protocol import PlayCommand, ScheduleCommand
from scheduler import Action, PriorityLadder, Recurrence, ScheduleRule, timeline
from scheduler._priority import on_air_rank
from simulator import SimulatedFleet
from simulator._player import wins
from simulator._session import Plan
from station import _keys as keys
from station._programmes import ItemInput, add_programme
from station._schedules import (
    ScheduleRequest,
    create_schedule,
    make_recurrence,
    schedule_timeline,
)
from station._services import StationError
from station.app import RunningStation, start_station
from station.db import PlayRecordStatus
from station.demo import demo_settings
from tests.playout_support import records_by_session, session_of
from tests.test_preempt_e2e import _media, _spied_clusters
from tests.test_timeline import DAY, MIN, prog

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
LADDER = PriorityLadder()
_LEVELS = ["emergency", "live", "scheduled", "relay"]

# -- pure: a cluster following the rank takes every decision the timeline shows ------------


@st.composite
def _rules(draw: st.DrawFn) -> list[ScheduleRule]:
    rules = []
    for n in range(draw(st.integers(2, 8))):
        minutes = draw(st.lists(st.integers(1, 20), min_size=1, max_size=3))
        at = DAY + timedelta(hours=6, minutes=draw(st.integers(0, 60)))
        rules.append(
            ScheduleRule(
                n + 1,
                prog(n + 1, *minutes),
                Recurrence("once", at=at),
                frozenset(draw(st.sets(st.sampled_from(["C01", "C02"]), min_size=1))),
                draw(st.sampled_from(_LEVELS)),
                rank=draw(st.integers(-2, 2)),
                misfire_grace=timedelta(minutes=draw(st.integers(0, 30))),
            )
        )
    return rules


def _as_sent(rule: ScheduleRule, session_id: str, at: datetime) -> Plan:
    """The session as its cluster holds it: the priority and rank the station sends."""
    return Plan(
        session_id,
        at,
        priority=LADDER.level(rule.priority),
        rank=on_air_rank(rule.rank),
        length_ms=24 * 3600 * 1000,  # on air: well before its planned end
    )


@settings(max_examples=200, deadline=None, database=None)
@given(rules=_rules())
def test_a_cluster_following_the_rank_takes_every_decision_of_the_timeline(
    rules: list[ScheduleRule],
) -> None:
    by_id = {r.id: r for r in rules}
    for line in timeline(rules, ["C01", "C02"], DAY, DAY + timedelta(days=1), LADDER).values():
        for d in line.events:
            clash = d.action in (Action.PREEMPT, Action.QUEUE, Action.IGNORE)
            if not clash or d.other is None:
                continue
            newcomer = _as_sent(by_id[line.schedule_of[d.session_id]], d.session_id, d.at)
            playing = _as_sent(by_id[line.schedule_of[d.other]], d.other, d.at)
            # PREEMPT: the newcomer takes over; QUEUE/IGNORE: it is refused (busy) and the
            # station starts it when the other ends, or records it dropped.
            assert wins(newcomer, playing, d.at) == (d.action == Action.PREEMPT), (d, rules)


def test_the_tie_break_rule_and_back_to_back() -> None:
    t0 = datetime(2026, 3, 2, 6, tzinfo=UTC)
    first = Plan("a", t0, priority=40, rank=1, length_ms=10_000)
    later = Plan("b", t0 + timedelta(seconds=2), priority=40, rank=0, length_ms=1_000)
    assert not wins(later, first, later.start_at)  # ranked first: keeps the horns
    assert wins(Plan("c", t0, priority=40, rank=2), first, t0)
    assert wins(Plan("d", t0, priority=40, rank=1), first, t0)  # a tie: the newcomer
    assert not wins(Plan("e", t0, priority=20, rank=9), first, t0)  # priority first
    assert wins(Plan("f", t0, priority=100), first, t0)
    # Still playing a few ms past its planned end: the next one back to back is no clash.
    assert wins(later, first, t0 + timedelta(seconds=10, milliseconds=30))


def test_ranks_change_decisions_only_among_one_priority() -> None:
    """Same-time arrivals of one level: the rank decides who starts, whatever the ids."""
    start = DAY + timedelta(hours=6)
    rules = [
        ScheduleRule(
            i, prog(i, 5), Recurrence("once", at=start), frozenset({"C01"}), "scheduled", rank=r
        )
        for i, r in ((1, 3), (2, -4), (3, 0))
    ]
    line = timeline(rules, ["C01"], DAY, DAY + timedelta(days=1), LADDER)["C01"]
    assert [s.schedule_id for s in line.slots] == [2]
    assert {e.action for e in line.events if e.other is not None} == {Action.IGNORE}


# -- end to end: embedded broker + simulator ------------------------------------------------

IDS = ["R1", "R2", "R3"]


async def _schedule(
    station: RunningStation,
    media_id: int,
    at: datetime,
    clusters: list[str],
    grace: int,
    on_conflict: str = "refuse",
) -> int:
    sessions, settings = station.app[keys.SESSIONS], station.app[keys.SETTINGS]
    programme = await add_programme(
        sessions, f"scheduled {clusters} {at:%S}", [ItemInput("media", media_id=media_id)]
    )
    assert programme.id is not None
    request = ScheduleRequest(
        programme.id,
        {"clusters": clusters},
        make_recurrence("once", at=at),
        misfire_grace_s=grace,
        on_conflict=on_conflict,  # type: ignore[arg-type]
    )
    result = await create_schedule(sessions, settings, request, datetime.now(HCM))
    assert result.schedule.id is not None
    return result.schedule.id


async def test_the_cluster_keeps_the_ranked_older_schedule_as_the_timeline_shows(
    tmp_path: Path,
    mqtt_url: str,
    database_url: str,
    station_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A (3 s, all three clusters) is on first; B (1 s, R1 and R3, 60 s of grace) and C (1 s,
    R2, no grace) start 1 s into it at the same priority and were accepted "after" it. The
    timeline: A plays through, B waits and starts when A ends, C is dropped. On air the same,
    R3 with its link down from before the dispatch until after the clash (held list only)."""
    settings = demo_settings(
        tmp_path, mqtt_url=mqtt_url, database_url=database_url, station_id=station_id
    )
    station = await start_station(settings)
    try:
        app = station.app
        sessions = app[keys.SESSIONS]
        sent = await _spied_clusters(app, IDS, monkeypatch)
        long, short = await _media(app, tmp_path, 3.0), await _media(app, tmp_path, 1.0)
        t0 = datetime.now(HCM).replace(microsecond=0) + timedelta(seconds=12)
        a = await _schedule(station, long, t0, IDS, 60)
        later = t0 + timedelta(seconds=1)
        with pytest.raises(StationError, match="overlaps schedules of the same priority"):
            await _schedule(station, short, later, ["R1", "R3"], 60)
        b = await _schedule(station, short, later, ["R1", "R3"], 60, on_conflict="after")
        c = await _schedule(station, short, later, ["R2"], 0, on_conflict="after")

        # What the console promises.
        lines = await schedule_timeline(sessions, settings, {"clusters": IDS}, t0 - MIN, t0 + MIN)
        promised = {
            cid: [(s.schedule_id, s.how, s.start - t0) for s in line.slots]
            for cid, line in lines.items()
        }
        waits = [(a, Action.START, timedelta(0)), (b, Action.START, timedelta(seconds=3))]
        assert promised == {"R1": waits, "R2": [(a, Action.START, timedelta(0))], "R3": waits}
        [dropped] = [e for e in lines["R2"].events if e.action == Action.IGNORE]
        assert lines["R2"].schedule_of[dropped.session_id] == c

        async with SimulatedFleet(station.runtime.mqtt_url, station_id, IDS) as fleet:
            await app[keys.DISPATCHER].reconcile()  # sessions made ahead, lists sent
            s_a, s_b, s_c = [await session_of(sessions, s) for s in (a, b, c)]
            r3 = fleet.clusters["R3"]
            async with asyncio.timeout(10):
                # both held from its list (the simulator's records: no event to wait on)
                while not {s_a, s_b} <= {r.session_id for r in r3.records}:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            down = t0.astimezone(UTC) + timedelta(seconds=2.5) - datetime.now(UTC)
            assert down > timedelta(seconds=6)  # before A's dispatch (lead 5 s) until after
            r3.drop_link(down.total_seconds())
            wanted = {
                **{(s_a, cid): PlayRecordStatus.FINISHED for cid in IDS},
                (s_b, "R1"): PlayRecordStatus.FINISHED,
                (s_b, "R3"): PlayRecordStatus.FINISHED,
                (s_c, "R2"): PlayRecordStatus.INTERRUPTED,
            }
            got: dict[tuple[str, str], PlayRecordStatus] = {}
            try:
                async with asyncio.timeout(40):
                    while True:
                        records = await records_by_session(sessions)
                        got = {k: records[k].status for k in wanted if k in records}
                        ends = [records[k] for k, v in got.items() if v == wanted[k]]
                        done = all(r.played_ms for r in ends if r.session_id != s_c)
                        if got == wanted and done:
                            break
                        await asyncio.sleep(0.2)
            except TimeoutError:
                pytest.fail(f"proof of play {got} != {wanted}; played {fleet.records()}")
            seen = {cid: list(rs) for cid, rs in fleet.records().items()}
        records = await records_by_session(sessions)

        # The ranks sent: A ranked first (the operator's rank 0 -> 0), B and C after (1 -> -1),
        # in the play commands and in the held lists alike.
        plays = {(cid, c.session_id): c.rank for cid, c in sent if isinstance(c, PlayCommand)}
        assert plays[("R1", s_a)] == 0 and plays[("R1", s_b)] == -1 and plays[("R2", s_c)] == -1
        held = {
            (cid, spec.session_id): spec.rank
            for cid, c in sent
            if isinstance(c, ScheduleCommand)
            for spec in c.sessions
        }
        assert held[("R3", s_a)] == 0 and held[("R3", s_b)] == -1

        # On air, what the timeline shows: A never cut; B refused while A plays, then played
        # whole after it (the station's comeback); C refused and never sent again.
        for cid in ("R1", "R3"):
            played = sorted(
                (r for r in seen[cid] if r.started_at is not None), key=lambda r: r.started_at
            )
            assert [(r.session_id.split("~")[0], r.outcome) for r in played] == [
                (s_a, "finished"),
                (s_b, "finished"),
            ], (cid, seen[cid])
            assert played[0].played_ms == 3000 and played[1].played_ms == 1000
            assert played[1].session_id.startswith(f"{s_b}~r")
            assert played[1].started_at >= played[0].finished_at  # type: ignore[operator]
            [busy] = [r for r in seen[cid] if r.session_id == s_b]
            assert busy.outcome == "busy" and busy.played_ms == 0
        assert [(r.session_id, r.outcome) for r in seen["R2"]] == [
            (s_a, "finished"),
            (s_c, "busy"),
        ]
        assert not any(getattr(c, "session_id", "").startswith(f"{s_c}~r") for _, c in sent)

        # Proof of play matches: A whole everywhere, B whole where it waited, C dropped by A.
        for cid in IDS:
            assert records[(s_a, cid)].played_ms == 3000
            assert records[(s_a, cid)].interrupted_by is None
        for cid in ("R1", "R3"):
            assert records[(s_b, cid)].played_ms == 1000
        assert records[(s_c, "R2")].interrupted_by == s_a
        assert not records[(s_c, "R2")].played_ms
    finally:
        await station.stop()
