"""What will play when on each cluster, and why: the preemption rules run over occurrences."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ._preempt import (
    Action,
    ClusterState,
    Decision,
    Position,
    Session,
    admit,
    arrival_order,
    finish,
)
from ._priority import PriorityLadder
from ._rules import Occurrence, ScheduleRule, expand

_ZERO = timedelta(0)
_MAX_LOOKBACK = timedelta(days=2)


@dataclass(frozen=True, slots=True)
class Slot:
    """One stretch of uninterrupted playback of one session on one cluster."""

    start: datetime
    end: datetime
    session_id: str
    schedule_id: int
    title: str
    priority: str
    how: Action  # START, PREEMPT (it cut in) or RESUME
    position: Position  # where in the programme the stretch begins
    other: str | None = None  # the session it preempted


@dataclass(frozen=True, slots=True)
class ClusterTimeline:
    cluster: str
    slots: tuple[Slot, ...]
    events: tuple[Decision, ...]  # every decision taken, in order (queue, ignore, ...)
    # session id -> schedule id, for the sessions named in ``events`` and ``Slot.other``
    schedule_of: Mapping[str, int] = field(default_factory=dict, compare=False, hash=False)


def session_for(occurrence: Occurrence, ladder: PriorityLadder) -> Session:
    rule = occurrence.rule
    return Session(
        id=occurrence.session_id,
        priority=ladder.level(rule.priority),
        start=occurrence.start,
        items=rule.programme.items,
        window_end=occurrence.window_end,
        rank=rule.rank,
        newest_wins=ladder.replaces_same_level(rule.priority),
    )


def timeline(
    schedules: Iterable[ScheduleRule],
    clusters: Iterable[str],
    window_start: datetime,
    window_end: datetime,
    ladder: PriorityLadder | None = None,
) -> dict[str, ClusterTimeline]:
    """Per cluster, the slots overlapping ``[window_start, window_end)``, clipped to it."""
    ladder = ladder or PriorityLadder()
    wanted = sorted(set(clusters))
    rules = [r for r in schedules if r.clusters.intersection(wanted)]
    # Occurrences that started before the window may still be on air inside it.
    lookback = max((r.programme.duration + r.misfire_grace for r in rules), default=_ZERO)
    per_cluster: dict[str, list[Session]] = {c: [] for c in wanted}
    origin: dict[str, Occurrence] = {}  # session id -> occurrence, shared by its clusters
    for occurrence in expand(rules, window_start - min(lookback, _MAX_LOOKBACK), window_end):
        session = session_for(occurrence, ladder)
        origin[session.id] = occurrence
        for cluster in occurrence.rule.clusters.intersection(per_cluster):
            per_cluster[cluster].append(session)
    result = {}
    for cluster in wanted:
        mine = per_cluster[cluster]
        # Higher priority first among same-time arrivals, then the operator's order (the
        # same order as ``replay``: what the timeline shows is what the clusters do).
        mine.sort(key=arrival_order)
        slots, events = _simulate(mine, origin)
        shown = [_clip(s, window_start, window_end) for s in slots]
        result[cluster] = ClusterTimeline(
            cluster,
            tuple(s for s in shown if s.start < s.end),
            tuple(e for e in events if window_start <= e.at < window_end),
            {s.id: origin[s.id].rule.id for s in mine},
        )
    return result


def _simulate(
    arrivals: list[Session], origin: dict[str, Occurrence]
) -> tuple[list[Slot], list[Decision]]:
    pending = deque(arrivals)
    state = ClusterState()
    slots: list[Slot] = []
    events: list[Decision] = []
    open_slot: Slot | None = None
    while pending or state.playing is not None:
        playing = state.playing
        # An end at the same instant as an arrival goes first: back-to-back items do not clash.
        if playing is not None and (not pending or playing.ends_at <= pending[0].start):
            now = playing.ends_at
            state, decisions = finish(state, playing.session.id, now)
        else:
            session = pending.popleft()
            now = session.start
            state, decisions = admit(state, session, now)
        events.extend(decisions)
        if open_slot is not None and _changed(open_slot, state, now):
            slots.append(_close(open_slot, now))
            open_slot = None
        if open_slot is None and state.playing is not None:
            open_slot = _open(state, decisions, origin, now)
    return slots, events


def _changed(slot: Slot, state: ClusterState, now: datetime) -> bool:
    playing = state.playing
    return playing is None or playing.session.id != slot.session_id or playing.since == now


def _open(
    state: ClusterState, decisions: list[Decision], origin: dict[str, Occurrence], now: datetime
) -> Slot:
    assert state.playing is not None
    session = state.playing.session
    rule = origin[session.id].rule
    how = next((d for d in decisions if d.session_id == session.id), None)
    return Slot(
        start=now,
        end=now,
        session_id=session.id,
        schedule_id=rule.id,
        title=rule.programme.title,
        priority=rule.priority,
        how=how.action if how else Action.START,
        position=state.playing.position,
        other=how.other if how else None,
    )


def _close(slot: Slot, now: datetime) -> Slot:
    return _with(slot, slot.start, now)


def _clip(slot: Slot, start: datetime, end: datetime) -> Slot:
    # ``position`` stays where the stretch really began, even when clipped at the window start.
    if start <= slot.start and slot.end <= end:
        return slot
    return _with(slot, max(slot.start, start), min(slot.end, end))


def _with(slot: Slot, start: datetime, end: datetime) -> Slot:
    # Not dataclasses.replace: it is several times slower and this runs once per slot.
    s = slot
    return Slot(
        start, end, s.session_id, s.schedule_id, s.title, s.priority, s.how, s.position, s.other
    )
