"""Priorities and preemption: pure transitions of one cluster's state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from scheduler import (
    Action,
    ClusterState,
    ItemKind,
    Position,
    PriorityLadder,
    ProgrammeItemSpec,
    Session,
    admit,
    advance,
    arbitrate,
    finish,
    rejoin,
)

T0 = datetime(2026, 3, 2, 5, 30, tzinfo=UTC)
LADDER = PriorityLadder()
MIN = timedelta(minutes=1)


def media(minutes: float, media_id: int = 1) -> ProgrammeItemSpec:
    return ProgrammeItemSpec(ItemKind.MEDIA, minutes * MIN, media_id)


def relay(minutes: float) -> ProgrammeItemSpec:
    return ProgrammeItemSpec(ItemKind.RELAY, minutes * MIN, url="http://vov.example/vov1")


def session(
    sid: str,
    level: str,
    start: datetime,
    *items: ProgrammeItemSpec,
    grace: timedelta = timedelta(0),
    rank: int = 0,
) -> Session:
    duration = sum((i.duration for i in items), timedelta(0))
    return Session(
        sid,
        LADDER.level(level),
        start,
        items,
        start + duration + grace,
        rank=rank,
        newest_wins=LADDER.replaces_same_level(level),
    )


def test_ladder_order_and_unknown_level() -> None:
    assert LADDER.names() == ["emergency", "bulletin", "live", "scheduled", "relay", "idle"]
    with pytest.raises(ValueError, match="unknown priority 'urgent'"):
        LADDER.level("urgent")
    custom = PriorityLadder({"alarm": 9, "music": 1}, newest_wins=frozenset({"alarm"}))
    assert custom.names() == ["alarm", "music"]
    with pytest.raises(ValueError, match="newest_wins"):
        PriorityLadder({"a": 1}, newest_wins=frozenset({"b"}))


def test_idle_cluster_starts_the_session() -> None:
    state, decisions = admit(ClusterState(), session("a", "scheduled", T0, media(10)), T0)
    assert [(d.action, d.position) for d in decisions] == [(Action.START, Position(0))]
    assert state.playing is not None and state.playing.ends_at == T0 + 10 * MIN


def test_emergency_preempts_media_which_resumes_at_the_right_offset() -> None:
    bulletin = session("b", "scheduled", T0, media(4, 1), media(6, 2))
    state, _ = admit(ClusterState(), bulletin, T0)
    alarm = session("e", "emergency", T0 + 5 * MIN, media(2, 9))
    state, decisions = admit(state, alarm, T0 + 5 * MIN)
    [preempt] = decisions
    assert preempt.action == Action.PREEMPT and preempt.other == "b"
    assert preempt.position == Position(1, 1 * MIN)  # second item, one minute in
    state, decisions = finish(state, "e", T0 + 7 * MIN)
    assert [(d.action, d.session_id, d.position) for d in decisions] == [
        (Action.RESUME, "b", Position(1, 1 * MIN))
    ]
    assert state.playing is not None
    assert state.playing.ends_at == T0 + 12 * MIN  # 5 minutes of media were still to play


def test_relay_rejoins_live_after_preemption() -> None:
    vov = session("r", "relay", T0, relay(15), media(5))
    state, _ = admit(ClusterState(), vov, T0)
    state, _ = admit(state, session("e", "emergency", T0 + 2 * MIN, media(3)), T0 + 2 * MIN)
    state, decisions = finish(state, "e", T0 + 5 * MIN)
    assert decisions[0].action == Action.RESUME
    assert decisions[0].position == Position(0, 5 * MIN)  # live: the 3 minutes missed are gone
    assert state.playing is not None and state.playing.ends_at == T0 + 20 * MIN


def test_preempted_session_outside_its_window_is_recorded_interrupted() -> None:
    state, _ = admit(ClusterState(), session("b", "scheduled", T0, media(10)), T0)
    state, _ = admit(state, session("e", "emergency", T0 + MIN, media(30)), T0 + MIN)
    state, decisions = finish(state, "e", T0 + 31 * MIN)
    assert [(d.action, d.session_id) for d in decisions] == [(Action.INTERRUPTED, "b")]
    assert state == ClusterState()


def test_lower_priority_queues_or_is_ignored() -> None:
    state, _ = admit(ClusterState(), session("live", "live", T0, media(10)), T0)
    late_ok = session("s", "scheduled", T0 + MIN, media(5), grace=15 * MIN)
    state, decisions = admit(state, late_ok, T0 + MIN)
    assert decisions[0].action == Action.QUEUE and decisions[0].expected == T0 + 10 * MIN
    no_grace = session("s2", "scheduled", T0 + 2 * MIN, media(5))
    state, decisions = admit(state, no_grace, T0 + 2 * MIN)
    assert decisions[0].action == Action.IGNORE
    state, decisions = finish(state, "live", T0 + 10 * MIN)
    assert [(d.action, d.session_id) for d in decisions] == [(Action.START, "s")]


def test_same_priority_emergency_newest_wins_and_old_one_never_comes_back() -> None:
    state, _ = admit(ClusterState(), session("e1", "emergency", T0, media(30)), T0)
    state, decisions = admit(state, session("e2", "emergency", T0 + MIN, media(2)), T0 + MIN)
    assert [(d.action, d.session_id, d.other) for d in decisions] == [
        (Action.PREEMPT, "e2", "e1"),
        (Action.INTERRUPTED, "e1", "e2"),
    ]
    state, decisions = finish(state, "e2", T0 + 3 * MIN)
    assert decisions == [] and state.playing is None


def test_stated_order_lets_the_lower_rank_go_first() -> None:
    state, _ = admit(ClusterState(), session("b", "scheduled", T0, media(10), rank=1), T0)
    first = session("a", "scheduled", T0 + MIN, media(2), rank=0)
    _, decisions = admit(state, first, T0 + MIN)
    assert decisions[0].action == Action.PREEMPT


def test_same_session_twice_is_ignored() -> None:
    bulletin = session("b", "scheduled", T0, media(10))
    state, _ = admit(ClusterState(), bulletin, T0)
    _, decisions = admit(state, bulletin, T0 + MIN)
    assert decisions[0].action == Action.IGNORE


def test_stacked_preemptions_resume_in_priority_order() -> None:
    state, _ = admit(ClusterState(), session("s", "scheduled", T0, media(20), grace=30 * MIN), T0)
    state, _ = admit(state, session("l", "live", T0 + MIN, media(5), grace=30 * MIN), T0 + MIN)
    state, _ = admit(state, session("e", "emergency", T0 + 2 * MIN, media(1)), T0 + 2 * MIN)
    state, decisions = finish(state, "e", T0 + 3 * MIN)
    assert [(d.action, d.session_id) for d in decisions] == [(Action.RESUME, "l")]
    state, decisions = finish(state, "l", T0 + 7 * MIN)
    assert [(d.action, d.session_id, d.position) for d in decisions] == [
        (Action.RESUME, "s", Position(0, MIN))
    ]


def test_arbitrate_decides_per_cluster() -> None:
    busy, _ = admit(ClusterState(), session("live", "live", T0, media(10)), T0)
    states = {"C01": busy}
    result = arbitrate(
        states, session("e", "emergency", T0 + MIN, media(1)), frozenset({"C01", "C02"}), T0 + MIN
    )
    assert result["C01"][1][0].action == Action.PREEMPT
    assert result["C02"][1][0].action == Action.START


def test_advance_and_rejoin_positions() -> None:
    items = (relay(2), relay(3), media(4))
    assert advance(items, Position(0), 4 * MIN) == Position(1, 2 * MIN)
    assert advance(items, Position(0), 9 * MIN) is None
    # Rejoining skips the paused time across relays but stops at the media item.
    assert rejoin(items, Position(0, MIN), 10 * MIN) == Position(2)
    assert rejoin(items, Position(2, MIN), 10 * MIN) == Position(2, MIN)
