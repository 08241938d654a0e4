"""Priorities and preemption: pure transitions of one cluster's state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from scheduler import (
    Action,
    Aired,
    ClusterState,
    ItemKind,
    ItemRef,
    Part,
    Position,
    PriorityLadder,
    ProgrammeItemSpec,
    Session,
    SessionPlan,
    StreamPart,
    admit,
    advance,
    arbitrate,
    base_session_id,
    clashing,
    finish,
    rejoin,
    replay,
    resume_tail,
    segments,
)

T0 = datetime(2026, 3, 2, 5, 30, tzinfo=UTC)
LADDER = PriorityLadder()
MIN = timedelta(minutes=1)
SEC = timedelta(seconds=1)


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


# -- replay: the dispatcher's preemption state, rebuilt from what went on air --------------


def aired(s: Session, *clusters: str, stopped_at: datetime | None = None) -> Aired:
    return Aired(s, frozenset(clusters), stopped_at)


def test_replay_resumes_media_at_its_offset_on_the_preempted_clusters_only() -> None:
    programme = session("s", "scheduled", T0, media(4, 1), media(6, 2), grace=5 * MIN)
    live = session("l", "live", T0 + 5 * MIN, media(2, 9))
    result = replay([aired(programme, "C1", "C2"), aired(live, "C1")], T0 + 6 * MIN)
    assert result.due == ()  # the live slot is still on air
    assert result.next_at == T0 + 7 * MIN
    result = replay([aired(programme, "C1", "C2"), aired(live, "C1")], T0 + 7 * MIN)
    [back] = result.due
    assert (back.cluster, back.decision.action, back.by) == ("C1", Action.RESUME, "l")
    assert back.decision.position == Position(1, 1 * MIN)  # second item, one minute in
    assert back.decision.at == T0 + 7 * MIN and result.next_at is None


def test_replay_relay_rejoins_live_and_late_ones_are_recorded_interrupted() -> None:
    vov = session("r", "relay", T0, relay(15))
    bulletin = session("b", "bulletin", T0 + 2 * MIN, media(3))
    [back] = replay([aired(vov, "C1"), aired(bulletin, "C1")], T0 + 6 * MIN).due
    assert back.decision.action == Action.RESUME
    assert back.decision.position == Position(0, 5 * MIN)  # what is on air now, no offset
    # A bulletin that outlasts the programme's window: interrupted, by the bulletin.
    short = session("s", "scheduled", T0, media(10))
    long = session("b", "bulletin", T0 + MIN, media(30))
    [back] = replay([aired(short, "C1"), aired(long, "C1")], T0 + 40 * MIN).due
    assert (back.decision.action, back.by) == (Action.INTERRUPTED, "b")


def test_replay_a_stopped_emergency_ends_early_and_the_newest_one_wins() -> None:
    programme = session("s", "scheduled", T0, media(10), grace=5 * MIN)
    e1 = session("e1", "emergency", T0 + MIN, media(20))
    e2 = session("e2", "emergency", T0 + 2 * MIN, media(2))
    stopped = [aired(programme, "C1"), aired(e1, "C1", stopped_at=T0 + 3 * MIN)]
    [back] = replay(stopped, T0 + 3 * MIN).due
    assert back.decision.action == Action.RESUME and back.decision.position == Position(0, MIN)
    # e2 replaces e1 (never comes back); when e2 ends the programme resumes.
    result = replay([aired(programme, "C1"), aired(e1, "C1"), aired(e2, "C1")], T0 + 4 * MIN)
    assert [(c.decision.action, c.decision.session_id) for c in result.due] == [
        (Action.RESUME, "s")
    ]


def test_replay_same_priority_follows_the_operators_rank_as_clusters_do() -> None:
    """Clusters are sent the rank (docs/protocol.md): the one ranked first keeps the horns and
    the newcomer waits (or is dropped past its window), as the timeline shows."""
    a = session("a", "scheduled", T0, media(10), grace=30 * MIN, rank=-1)
    b = session("b", "scheduled", T0 + MIN, media(2), rank=0)
    [dropped] = replay([aired(a, "C1"), aired(b, "C1")], T0 + 20 * MIN).due
    assert (dropped.decision.action, dropped.decision.session_id, dropped.by) == (
        Action.IGNORE,
        "b",
        "a",
    )
    waits = session("b", "scheduled", T0 + MIN, media(2), grace=15 * MIN, rank=0)
    result = replay([aired(a, "C1"), aired(waits, "C1")], T0 + 9 * MIN)
    assert result.due == () and result.next_at == T0 + 10 * MIN  # ``a`` still plays
    [back] = replay([aired(a, "C1"), aired(waits, "C1")], T0 + 10 * MIN).due
    assert (back.decision.action, back.decision.position, back.by) == (
        Action.START,
        Position(0),
        "a",
    )


def test_replay_equal_rank_the_newcomer_wins_and_the_other_comes_back() -> None:
    a = session("a", "scheduled", T0, media(10), grace=30 * MIN)
    b = session("b", "scheduled", T0 + MIN, media(2))
    [back] = replay([aired(a, "C1"), aired(b, "C1")], T0 + 3 * MIN).due
    assert (back.decision.action, back.decision.session_id, back.by) == (Action.RESUME, "a", "b")
    assert back.decision.position == Position(0, MIN)


def test_equal_key_newcomer_preempts_and_the_one_on_air_waits() -> None:
    state, _ = admit(ClusterState(), session("a", "scheduled", T0, media(10)), T0)
    state, decisions = admit(state, session("b", "scheduled", T0 + MIN, media(2)), T0 + MIN)
    assert [(d.action, d.other, d.position) for d in decisions] == [
        (Action.PREEMPT, "a", Position(0, MIN))
    ]
    assert [w.session.id for w in state.waiting] == ["a"]


def test_key_is_the_pair_a_cluster_compares() -> None:
    from devices.protocol import RANK_LIMIT as WIRE_LIMIT
    from scheduler._priority import RANK_LIMIT, on_air_rank

    assert RANK_LIMIT == WIRE_LIMIT
    assert session("a", "scheduled", T0, media(1), rank=-1).key == (40, 1)
    assert on_air_rank(2) == -2 and on_air_rank(0) == 0
    assert on_air_rank(-(10**9)) == RANK_LIMIT and on_air_rank(10**9) == -RANK_LIMIT


def test_replay_is_a_function_of_the_sessions_and_now() -> None:
    programme = session("s", "scheduled", T0, media(10), grace=5 * MIN)
    live = session("l", "live", T0 + MIN, media(2))
    sessions = [aired(live, "C2", "C1"), aired(programme, "C1", "C2")]
    first = replay(sessions, T0 + 4 * MIN)
    assert first == replay(list(reversed(sessions)), T0 + 4 * MIN)  # e.g. after a restart
    assert sorted(c.cluster for c in first.due) == ["C1", "C2"]


def test_clashing_finds_only_sessions_that_overlap_another() -> None:
    a = session("a", "scheduled", T0, media(10))
    b = session("b", "bulletin", T0 + 5 * MIN, media(2))
    c = session("c", "scheduled", T0 + 10 * MIN, media(5))  # starts as ``a`` ends
    d = session("d", "scheduled", T0 + 30 * MIN, media(5), grace=10 * MIN)
    e = session("e", "live", T0 + 40 * MIN, media(1))  # inside d's window: may hold d off
    assert clashing([c, b, a, d, e]) == {"a", "b", "d", "e"}


def _plan(*parts: Part) -> SessionPlan:
    return SessionPlan(
        "s1-1",
        T0,
        T0 + MIN,
        ["C1"],
        [p for p in parts if isinstance(p, ItemRef)],
        parts=parts,
    )


def test_resume_tail_media_from_its_offset_streams_from_now() -> None:
    a, b = ItemRef(1, "a" * 64, 10, 60_000), ItemRef(2, "b" * 64, 10, 60_000)
    vov = StreamPart("http://vov/1", 300_000)
    # Preempted 70 s in (second media item, 10 s in), back 100 s in.
    at = T0 + 100 * SEC
    tail = resume_tail(_plan(a, b, vov), 1, 10_000, at, at, ["C1"], MIN)
    assert tail is not None and tail.offset_ms == 10_000 and tail.start_at == at
    assert tail.plan.session_id == "s1-1~r100" and tail.plan.parts == (b,)  # relay: still ahead
    assert base_session_id(f"{tail.plan.session_id}~1") == ("s1-1", 1100)
    # The relay was held off too (its slot began at 2 min): it comes along and rejoins live.
    late = T0 + 4 * MIN
    tail = resume_tail(_plan(a, b, vov), 1, 10_000, late, late, ["C1"], MIN)
    assert tail is not None and tail.plan.parts == (b, vov)
    _, second = segments(tail.plan)
    assert second.stream == vov  # after the 50 s left of the media item (+ the segment guard)
    assert tail.plan.start_at + timedelta(milliseconds=second.offset_ms) == late + 50.1 * SEC
    # Inside a relay: what is on air now, the rest of the slot, no offset.
    at = T0 + 3 * MIN
    start = at + 2 * SEC
    tail = resume_tail(_plan(vov), 0, 90_000, at, start, ["C1"], MIN)
    assert tail is not None and tail.offset_ms == 0
    assert tail.plan.parts == (StreamPart("http://vov/1", 300_000 - 90_000 - 2_000),)
    assert resume_tail(_plan(vov), 0, 299_000, at, start, ["C1"], MIN) is None  # over
