"""Timeline, conflicts and quotas on hand-made schedules (the example week is elsewhere)."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler import (
    Action,
    ItemKind,
    ProgrammeItemSpec,
    ProgrammeSpec,
    Quota,
    Recurrence,
    ScheduleRule,
    check_quotas,
    find_conflicts,
    timeline,
)

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
MIN = timedelta(minutes=1)
DAY = datetime(2026, 3, 2, tzinfo=HCM)  # a Monday


def prog(pid: int, *minutes: float, kind: ItemKind = ItemKind.MEDIA) -> ProgrammeSpec:
    url = "http://vov.example/vov1" if kind == ItemKind.RELAY else None
    media_id = None if kind in (ItemKind.RELAY, ItemKind.LIVE) else pid
    items = tuple(ProgrammeItemSpec(kind, m * MIN, media_id, url) for m in minutes)
    return ProgrammeSpec(pid, f"P{pid}", items)


def daily(
    rid: int,
    at: time,
    programme: ProgrammeSpec,
    clusters: set[str],
    priority: str = "scheduled",
    **kw: object,
) -> ScheduleRule:
    return ScheduleRule(
        rid,
        programme,
        Recurrence("daily", time_of_day=at),
        frozenset(clusters),
        priority,
        **kw,  # type: ignore[arg-type]
    )


def once(
    rid: int, at: datetime, programme: ProgrammeSpec, clusters: set[str], priority: str
) -> ScheduleRule:
    return ScheduleRule(rid, programme, Recurrence("once", at=at), frozenset(clusters), priority)


def hm(t: datetime) -> str:
    return t.astimezone(HCM).strftime("%H:%M")


def test_timeline_shows_preemption_and_resumption() -> None:
    morning = daily(1, time(6, 0), prog(1, 10, 10), {"C01", "C02"}, misfire_grace=30 * MIN)
    alarm = once(2, DAY + timedelta(hours=6, minutes=5), prog(2, 3), {"C01"}, "emergency")
    result = timeline([morning, alarm], ["C01", "C02"], DAY, DAY + timedelta(days=1))
    c1 = [(hm(s.start), hm(s.end), s.schedule_id, s.how) for s in result["C01"].slots]
    assert c1 == [
        ("06:00", "06:05", 1, Action.START),
        ("06:05", "06:08", 2, Action.PREEMPT),
        ("06:08", "06:23", 1, Action.RESUME),
    ]
    assert result["C01"].slots[2].position.offset == 5 * MIN
    c2 = [(hm(s.start), hm(s.end), s.schedule_id) for s in result["C02"].slots]
    assert c2 == [("06:00", "06:20", 1)]


def test_timeline_window_clips_and_keeps_back_to_back_items_apart() -> None:
    relay = daily(1, time(5, 30), prog(1, 15, kind=ItemKind.RELAY), {"C01"}, "relay")
    news = daily(2, time(5, 45), prog(2, 15), {"C01"})
    window = DAY + timedelta(hours=5, minutes=40), DAY + timedelta(hours=5, minutes=50)
    slots = timeline([relay, news], ["C01"], *window)["C01"].slots
    assert [(hm(s.start), hm(s.end), s.schedule_id) for s in slots] == [
        ("05:40", "05:45", 1),
        ("05:45", "05:50", 2),
    ]
    assert all(s.how == Action.START for s in slots)


def test_conflicts_name_the_clusters_and_times() -> None:
    a = daily(1, time(6, 0), prog(1, 10), {"C01", "C02"})
    b = daily(2, time(6, 5), prog(2, 10), {"C02", "C03"})
    higher = daily(3, time(6, 5), prog(3, 10), {"C02"}, "live")
    window = DAY, DAY + timedelta(days=2)
    [conflict] = find_conflicts(b, [a, higher], *window)
    assert conflict.schedule_id == 1 and conflict.clusters == {"C02"}
    assert [(hm(x), hm(y)) for x, y in conflict.overlaps] == [
        ("06:05", "06:10"),
        ("06:05", "06:10"),
    ]
    assert "schedule 1 on C02 at 2026-03-01T23:05+00:00-23:10" in conflict.describe()
    assert find_conflicts(a, [daily(4, time(6, 10), prog(4, 5), {"C01"})], *window) == []


def test_quota_counts_contiguous_items_as_one_session() -> None:
    urban = {
        "urban": Quota(max_sessions_per_day=2, max_minutes_per_session=15, max_days_per_week=5)
    }
    where = {"C01": "urban", "C02": "rural"}
    window = DAY, DAY + timedelta(days=14)
    weekdays = Recurrence("weekly", time_of_day=time(5, 30), weekdays=frozenset(range(5)))
    a = ScheduleRule(1, prog(1, 10), weekdays, frozenset({"C01"}))
    b = daily(2, time(5, 42), prog(2, 7), {"C01"})  # 2 min after a: one session, 17 min on air
    found = check_quotas(
        b, [a], localities=where, quotas=urban, window_start=window[0], window_end=window[1]
    )
    rules = sorted(v.rule for v in found)
    assert rules == ["days_per_week", "minutes_per_session"]
    minutes = next(v for v in found if v.rule == "minutes_per_session")
    assert minutes.value == 17 and minutes.times == 10 and minutes.clusters == ("C01",)
    assert "17-minute session" in minutes.describe()
    rural_only = daily(3, time(5, 42), prog(3, 5), {"C02"})
    assert (
        check_quotas(
            rural_only,
            [a],
            localities=where,
            quotas=urban,
            window_start=window[0],
            window_end=window[1],
        )
        == []
    )


def test_quota_sessions_per_day_and_relays_not_counted() -> None:
    quotas = {
        "rural": Quota(max_sessions_per_day=2, max_minutes_per_session=10, count_relays=False)
    }
    where = {"C01": "rural"}
    window = DAY, DAY + timedelta(days=1)
    slot = ProgrammeSpec(
        1,
        "relay + news",
        (
            ProgrammeItemSpec(ItemKind.RELAY, 30 * MIN, url="http://vov.example/vov1"),
            ProgrammeItemSpec(ItemKind.MEDIA, 10 * MIN, 1),
        ),
    )
    morning = daily(1, time(5, 30), slot, {"C01"})
    assert (
        check_quotas(
            morning,
            [],
            localities=where,
            quotas=quotas,
            window_start=window[0],
            window_end=window[1],
        )
        == []
    )
    noon = daily(2, time(11, 0), prog(2, 5), {"C01"})
    evening = daily(3, time(17, 0), prog(3, 5), {"C01"})
    [too_many] = check_quotas(
        evening,
        [morning, noon],
        localities=where,
        quotas=quotas,
        window_start=window[0],
        window_end=window[1],
    )
    assert (
        too_many.rule == "sessions_per_day"
        and too_many.value == 3
        and too_many.first == "2026-03-02"
    )
    exempt = daily(4, time(19, 0), prog(4, 5), {"C01"}, "emergency")
    assert (
        check_quotas(
            exempt,
            [morning, noon],
            localities=where,
            quotas=quotas,
            window_start=window[0],
            window_end=window[1],
        )
        == []
    )


def test_old_breaches_are_not_blamed_on_a_new_schedule() -> None:
    quotas = {"urban": Quota(max_sessions_per_day=1)}
    where = {"C01": "urban"}
    window = datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 3, tzinfo=UTC)
    a = daily(1, time(6, 0), prog(1, 5), {"C01"})
    b = daily(2, time(12, 0), prog(2, 5), {"C01"})
    joins_a = daily(3, time(6, 5), prog(3, 5), {"C01"})  # merges into a's session
    assert (
        check_quotas(
            joins_a,
            [a, b],
            localities=where,
            quotas=quotas,
            window_start=window[0],
            window_end=window[1],
        )
        == []
    )
    valid = ScheduleRule(
        4,
        prog(4, 5),
        Recurrence("daily", time_of_day=time(18, 0), valid_to=date(2026, 3, 1)),
        frozenset({"C01"}),
    )
    assert (
        check_quotas(
            valid,
            [a],
            localities=where,
            quotas=quotas,
            window_start=window[0],
            window_end=window[1],
        )
        == []
    )


# --------------------------------------------------------------------------- properties

_LEVELS = ["emergency", "live", "scheduled", "relay"]


@st.composite
def _schedules(draw: st.DrawFn) -> list[ScheduleRule]:
    rules = []
    for n in range(draw(st.integers(1, 8))):
        minutes = draw(st.lists(st.integers(1, 20), min_size=1, max_size=3))
        kind = draw(st.sampled_from([ItemKind.MEDIA, ItemKind.RELAY]))
        at = DAY + timedelta(hours=6, minutes=draw(st.integers(0, 90)))
        rule = ScheduleRule(
            n + 1,
            prog(n + 1, *minutes, kind=kind),
            Recurrence("once", at=at),
            frozenset(draw(st.sets(st.sampled_from(["C01", "C02"]), min_size=1))),
            draw(st.sampled_from(_LEVELS)),
            rank=draw(st.integers(0, 1)),
            misfire_grace=timedelta(minutes=draw(st.integers(0, 30))),
        )
        rules.append(rule)
    return rules


@settings(max_examples=150, deadline=None, database=None)
@given(rules=_schedules())
def test_timeline_invariants(rules: list[ScheduleRule]) -> None:
    """One thing at a time per cluster; nothing plays outside its window or longer than its
    programme; every occurrence is accounted for (played, or a decision says why not)."""
    result = timeline(rules, ["C01", "C02"], DAY, DAY + timedelta(days=1))
    by_id = {r.id: r for r in rules}
    for cluster, line in result.items():
        slots = line.slots
        for a, b in itertools.pairwise(slots):
            assert a.end <= b.start
        played: dict[int, timedelta] = {}
        for slot in slots:
            rule = by_id[slot.schedule_id]
            start = rule.recurrence.at
            assert start is not None and start <= slot.start
            if slot.how != Action.RESUME:  # a resumed session may run past its scheduled end
                assert slot.start < start + rule.programme.duration + rule.misfire_grace
            played[rule.id] = played.get(rule.id, timedelta(0)) + (slot.end - slot.start)
        for rule in rules:
            if cluster not in rule.clusters:
                continue
            assert played.get(rule.id, timedelta(0)) <= rule.programme.duration
            told = {e.action for e in line.events if e.session_id.startswith(f"s{rule.id}-")}
            assert rule.id in played or told & {Action.IGNORE, Action.SKIPPED, Action.INTERRUPTED}


def test_same_priority_overlap_follows_the_operators_rank_else_the_newcomer() -> None:
    """The order a cluster follows on air (docs/protocol.md): the operator's rank first; two
    schedules left equal (nobody chose) go to the newcomer, and the other resumes after it."""
    start = DAY + timedelta(hours=6)
    first = ScheduleRule(
        1, prog(1, 10), Recurrence("once", at=start), frozenset({"C01"}), "scheduled", rank=-1
    )
    later = ScheduleRule(
        2,
        prog(2, 2),
        Recurrence("once", at=start + MIN),
        frozenset({"C01"}),
        "scheduled",
        misfire_grace=timedelta(minutes=30),
    )
    line = timeline([first, later], ["C01"], DAY, DAY + timedelta(days=1))["C01"]
    assert [(s.schedule_id, s.how, s.start - start) for s in line.slots] == [
        (1, Action.START, timedelta(0)),
        (2, Action.START, 10 * MIN),  # waited for the one ranked first
    ]
    tied = ScheduleRule(
        1, prog(1, 10), Recurrence("once", at=start), frozenset({"C01"}), "scheduled"
    )
    line = timeline([tied, later], ["C01"], DAY, DAY + timedelta(days=1))["C01"]
    assert [(s.schedule_id, s.how, s.start - start) for s in line.slots] == [
        (1, Action.START, timedelta(0)),
        (2, Action.PREEMPT, MIN),
        (1, Action.RESUME, 3 * MIN),
    ]
