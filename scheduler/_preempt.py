"""Preemption as pure state transitions of one cluster.

A cluster plays at most one session; others wait: preempted ones (with the point to resume
from) and queued ones (not started yet). ``admit`` handles a session arriving, ``finish`` a
session ending (naturally or stopped). Both return the new state and what to do, so the
dispatcher and the timeline use the same rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from ._programme import ProgrammeItemSpec

_ZERO = timedelta(0)


@dataclass(frozen=True, slots=True)
class Session:
    """A broadcast competing for clusters. Higher ``(priority, -rank)`` wins."""

    id: str
    priority: int
    start: datetime
    items: tuple[ProgrammeItemSpec, ...]
    window_end: datetime  # may start (queued) or resume (preempted) only before this
    rank: int = 0
    newest_wins: bool = False  # a newcomer of the same priority replaces it (emergencies)

    @property
    def key(self) -> tuple[int, int]:
        return (self.priority, -self.rank)


@dataclass(frozen=True, slots=True)
class Position:
    item: int
    offset: timedelta = _ZERO


START = Position(0)


def advance(
    items: tuple[ProgrammeItemSpec, ...], pos: Position, elapsed: timedelta
) -> Position | None:
    """Where playback is after ``elapsed`` more time; None once past the last item."""
    index, offset = pos.item, pos.offset + elapsed
    while index < len(items) and offset >= items[index].duration:
        offset -= items[index].duration
        index += 1
    return Position(index, offset) if index < len(items) else None


def rejoin(
    items: tuple[ProgrammeItemSpec, ...], pos: Position, paused: timedelta
) -> Position | None:
    """Where a paused session picks up: media where it stopped; relays and live slots
    rejoin what is on air now, so the pause is skipped across them (up to the next media)."""
    index, offset, left = pos.item, pos.offset, paused
    while index < len(items) and items[index].live_bound and left > _ZERO:
        remaining = items[index].duration - offset
        if left < remaining:
            return Position(index, offset + left)
        left -= remaining
        index, offset = index + 1, _ZERO
    return Position(index, offset) if index < len(items) else None


def remaining(items: tuple[ProgrammeItemSpec, ...], pos: Position) -> timedelta:
    return sum((i.duration for i in items[pos.item :]), _ZERO) - pos.offset


@dataclass(frozen=True, slots=True)
class Playing:
    session: Session
    position: Position  # at ``since``
    since: datetime
    ends_at: datetime = field(init=False, compare=False)

    def __post_init__(self) -> None:
        # Read on every step of a timeline: computed once.
        ends_at = self.since + remaining(self.session.items, self.position)
        object.__setattr__(self, "ends_at", ends_at)

    def position_at(self, when: datetime) -> Position | None:
        return advance(self.session.items, self.position, when - self.since)


@dataclass(frozen=True, slots=True)
class Waiting:
    session: Session
    position: Position
    since: datetime  # paused at; for a queued session its scheduled start
    started: bool  # preempted (True) or queued and never started (False)


@dataclass(frozen=True, slots=True)
class ClusterState:
    playing: Playing | None = None
    waiting: tuple[Waiting, ...] = ()


class Action(StrEnum):
    START = "start"  # the session starts (at ``position``)
    PREEMPT = "preempt"  # the session starts, ``other`` pauses at ``position`` (None: dropped)
    QUEUE = "queue"  # the session waits for ``other``; expected start in ``expected``
    IGNORE = "ignore"  # the session will not play here (see ``reason``)
    RESUME = "resume"  # a preempted session continues at ``position``
    INTERRUPTED = "interrupted"  # a started session will not continue (``reason``)
    SKIPPED = "skipped"  # a queued session never got to start (``reason``)


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    session_id: str
    at: datetime
    other: str | None = None
    position: Position | None = None
    expected: datetime | None = None
    reason: str = ""


def admit(
    state: ClusterState, session: Session, now: datetime
) -> tuple[ClusterState, list[Decision]]:
    """``session`` reaches this cluster at ``now``: start, preempt, queue or ignore it."""
    known = [w.session.id for w in state.waiting]
    if state.playing is not None:
        known.append(state.playing.session.id)
    if session.id in known:
        return state, [Decision(Action.IGNORE, session.id, now, reason="already on this cluster")]
    playing = state.playing
    if playing is None or playing.position_at(now) is None:
        return _start_fresh(state, session, now)
    current = playing.session
    if session.key > current.key:
        return _preempt(state, playing, session, now)
    if session.key == current.key and current.newest_wins:
        reason = f"replaced by newer {session.id}"
        new_state = ClusterState(Playing(session, START, now), state.waiting)
        return new_state, [
            Decision(Action.PREEMPT, session.id, now, other=current.id),
            Decision(Action.INTERRUPTED, current.id, now, other=session.id, reason=reason),
        ]
    expected = playing.ends_at
    if expected >= session.window_end:
        why = f"{current.id} plays until after its window"
        return state, [Decision(Action.IGNORE, session.id, now, other=current.id, reason=why)]
    queued = Waiting(session, START, session.start, started=False)
    return ClusterState(playing, (*state.waiting, queued)), [
        Decision(Action.QUEUE, session.id, now, other=current.id, expected=expected)
    ]


def _start_fresh(
    state: ClusterState, session: Session, now: datetime
) -> tuple[ClusterState, list[Decision]]:
    late = max(now - session.start, _ZERO)
    pos = rejoin(session.items, START, late)
    if pos is None or now >= session.window_end:
        return state, [Decision(Action.SKIPPED, session.id, now, reason="past its window")]
    new_state = ClusterState(Playing(session, pos, now), state.waiting)
    return new_state, [Decision(Action.START, session.id, now, position=pos)]


def _preempt(
    state: ClusterState, playing: Playing, session: Session, now: datetime
) -> tuple[ClusterState, list[Decision]]:
    pos = playing.position_at(now)
    assert pos is not None  # checked by the caller
    paused = Waiting(playing.session, pos, now, started=True)
    new_state = ClusterState(Playing(session, START, now), (*state.waiting, paused))
    return new_state, [
        Decision(Action.PREEMPT, session.id, now, other=playing.session.id, position=pos)
    ]


def finish(
    state: ClusterState, session_id: str, now: datetime
) -> tuple[ClusterState, list[Decision]]:
    """``session_id`` ended or was stopped at ``now``; continue with the best waiting session."""
    if state.playing is None or state.playing.session.id != session_id:
        waiting = tuple(w for w in state.waiting if w.session.id != session_id)
        return ClusterState(state.playing, waiting), []
    decisions: list[Decision] = []
    # Highest priority first; among equals the one already started, then the earliest.
    order = sorted(state.waiting, key=lambda w: (w.session.key, w.started, -w.since.timestamp()))
    left = list(reversed(order))
    while left:
        candidate = left.pop(0)
        pos = rejoin(candidate.session.items, candidate.position, now - candidate.since)
        if pos is not None and now < candidate.session.window_end:
            action = Action.RESUME if candidate.started else Action.START
            decisions.append(Decision(action, candidate.session.id, now, position=pos))
            return ClusterState(Playing(candidate.session, pos, now), tuple(left)), decisions
        action = Action.INTERRUPTED if candidate.started else Action.SKIPPED
        decisions.append(Decision(action, candidate.session.id, now, reason="past its window"))
    return ClusterState(), decisions


def arbitrate(
    states: Mapping[str, ClusterState], session: Session, clusters: frozenset[str], now: datetime
) -> dict[str, tuple[ClusterState, list[Decision]]]:
    """``admit`` on every targeted cluster (a cluster with no state is idle)."""
    return {c: admit(states.get(c, ClusterState()), session, now) for c in sorted(clusters)}
