"""Preemption as pure state transitions of one cluster.

A cluster plays at most one session; others wait: preempted ones (with the point to resume
from) and queued ones (not started yet). ``admit`` handles a session arriving, ``finish`` a
session ending (naturally or stopped). Both return the new state and what to do, so the
dispatcher and the timeline use the same rules.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from ._priority import on_air_rank
from ._programme import ProgrammeItemSpec

_ZERO = timedelta(0)


@dataclass(frozen=True, slots=True)
class Session:
    """A broadcast competing for clusters. The higher ``key`` wins: priority, then the operator's
    order among schedules of one level (the lower ``rank`` first); equal keys, the newcomer."""

    id: str
    priority: int
    start: datetime
    items: tuple[ProgrammeItemSpec, ...]
    window_end: datetime  # may start (queued) or resume (preempted) only before this
    rank: int = 0
    newest_wins: bool = False  # a newcomer of the same priority replaces it (emergencies)

    @property
    def key(self) -> tuple[int, int]:
        # Exactly the pair a cluster compares: ``priority`` and the ``rank`` it is sent.
        return (self.priority, on_air_rank(self.rank))


def arrival_order(session: Session) -> tuple[datetime, int, int, str]:
    """Sessions arriving at the same instant: the higher first (the other then queues
    behind it rather than cutting it at once), then by id, so every pass decides the same."""
    return (session.start, -session.key[0], -session.key[1], session.id)


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
    if session.key == current.key:
        if not current.newest_wins:
            # A tie goes to the newcomer, as on a cluster (docs/protocol.md); the one on air
            # waits and comes back after it.
            return _preempt(state, playing, session, now)
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


# -- what went on air: the dispatcher's preemption state, rebuilt from the sessions ---------


@dataclass(frozen=True, slots=True)
class Aired:
    """A session sent to ``clusters`` (from its ``session.start``); ``stopped_at`` if it was
    stopped before its end (an emergency stopped by the operator)."""

    session: Session
    clusters: frozenset[str]
    stopped_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Comeback:
    """What becomes of a session a higher one preempted (or held off) on one cluster, once that
    one ends: ``RESUME``/``START`` at ``decision.position`` from ``decision.at``, else
    ``INTERRUPTED``/``SKIPPED``/``IGNORE`` (it will not play there); ``by`` cut it."""

    cluster: str
    decision: Decision
    by: str | None


@dataclass(frozen=True, slots=True)
class Replay:
    due: tuple[Comeback, ...]  # decided at or before ``now``
    next_at: datetime | None  # the next comeback after ``now`` (look again then)


_COMEBACKS = frozenset(
    {Action.RESUME, Action.START, Action.INTERRUPTED, Action.SKIPPED, Action.IGNORE}
)


def clashing(sessions: Iterable[Session]) -> set[str]:
    """Ids of the sessions whose ``[start, window_end)`` overlaps another's: the only ones
    that can preempt or be preempted (on clusters they share)."""
    found: set[str] = set()
    active: list[Session] = []
    for session in sorted(sessions, key=lambda s: s.start):
        active = [a for a in active if a.window_end > session.start]
        if active:
            found.add(session.id)
            found.update(a.id for a in active)
        active.append(session)
    return found


def replay(aired: Iterable[Aired], now: datetime) -> Replay:
    """Run the rules over what went on air, per cluster, and say which preempted sessions come
    back (or are recorded interrupted) at or before ``now``, and when the next one is due.

    Clusters decide who plays when sessions clash (the higher priority, then the higher
    ``rank`` they are sent, then the newcomer: docs/protocol.md) but never bring a loser back:
    the station does, from this. Clusters and these rules compare the same key (``Session.key``),
    so the pass sees what the clusters did, and what the timeline showed. A pure function of the
    sessions and ``now``: after a restart the same sessions give the same decisions.
    """
    per_cluster: dict[str, list[Aired]] = {}
    for a in aired:
        if not a.session.items:
            continue
        for cluster in a.clusters:
            per_cluster.setdefault(cluster, []).append(a)
    due: list[Comeback] = []
    next_at: datetime | None = None
    for cluster in sorted(per_cluster):
        for comeback in _replay_cluster(cluster, per_cluster[cluster]):
            if comeback.decision.at <= now:
                due.append(comeback)
            elif next_at is None or comeback.decision.at < next_at:
                next_at = comeback.decision.at
                break  # later ones on this cluster depend on what happens until then
    return Replay(tuple(due), next_at)


def _replay_cluster(cluster: str, aired: list[Aired]) -> list[Comeback]:
    arrivals = deque(sorted(aired, key=lambda a: arrival_order(a.session)))
    stops = sorted(
        ((a.stopped_at, a.session.id) for a in aired if a.stopped_at is not None),
        key=lambda s: s[0],
    )
    state = ClusterState()
    by: dict[str, str] = {}  # waiting session -> the one that cut it
    found: list[Comeback] = []
    while arrivals or stops or state.playing is not None:
        playing = state.playing
        end = playing.ends_at if playing is not None else None
        stop_at = stops[0][0] if stops else None
        arrive_at = arrivals[0].session.start if arrivals else None
        times = [t for t in (end, stop_at, arrive_at) if t is not None]
        if not times:
            break
        at = min(times)
        # An end at the same instant as an arrival goes first: back-to-back does not clash.
        if playing is not None and end == at:
            state, decisions = finish(state, playing.session.id, at)
            from_finish = True
        elif stop_at == at:
            _, sid = stops.pop(0)
            state, decisions = finish(state, sid, at)
            from_finish = True
        else:
            a = arrivals.popleft()
            if a.stopped_at is not None and a.stopped_at <= a.session.start:
                continue  # stopped before it began
            state, decisions = admit(state, a.session, at)
            from_finish = False
        for d in decisions:
            if d.action == Action.PREEMPT and d.other is not None:
                by[d.other] = d.session_id
            elif d.action == Action.QUEUE and d.other is not None:
                by[d.session_id] = d.other
            if (from_finish and d.action in _COMEBACKS) or d.action == Action.IGNORE:
                found.append(Comeback(cluster, d, d.other or by.get(d.session_id)))
    return found
