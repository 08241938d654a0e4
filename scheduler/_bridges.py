"""Legacy bridges: when an output (FM transmitter, wired amplifier) may be switched off (pure).

A bridge's output is switched on when a session that needs it is dispatched (start - lead) and
is needed until that session's end. Broadcasts back to back overlap that way (the next one is
switched on before the previous one ends), and an emergency or a resumed programme overlaps
what it cut: an output is switched off only when no session needs it any more. Each session
that needs a bridge is a ``BridgeNeed`` per output, from ``since`` (when its ``power`` on goes
out) to ``until`` (its end); ``switch_off`` says which outputs switched on are idle now. The
dispatcher keeps the needs and does the sending, and rebuilds them from the database after a
restart (``needs_of`` over the sessions still pending or on air).

Bridges whose link is down at start switch their outputs themselves from their held
``schedule`` list (``SessionSpec.power``). The same needs describe that: each held session (a
media segment) needs its output from ``start - warmup`` to its end (``held_needs``); the power
spec a held session carries (``held_power``) is what its ``on`` would carry, and
``held_switches`` is what a bridge following the firmware rule does with them (it is the
station's rule: off at an end only when no other held session needs the output by then).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ._session import BridgePower, Segment, SessionPlan, segments

Output = tuple[str, str]  # (bridge id, power target)


@dataclass(frozen=True, slots=True)
class BridgeNeed:
    """One session needs one output of a bridge from ``since`` until ``until``."""

    session_id: str
    bridge: str
    target: str
    since: datetime
    until: datetime
    zone_codes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.since.tzinfo is None or self.until.tzinfo is None:
            raise ValueError("bridge needs take aware datetimes")

    @property
    def output(self) -> Output:
        return (self.bridge, self.target)


@dataclass(frozen=True, slots=True)
class SwitchOff:
    """What to do now: ``off`` outputs are idle (with the zone codes they had); ``held`` says
    until when each output still on is needed."""

    off: list[tuple[Output, tuple[str, ...]]] = field(default_factory=list)
    held: dict[Output, datetime] = field(default_factory=dict)


def session_length(session: SessionPlan) -> timedelta:
    """From the session's start to the end of its last segment."""
    found = segments(session)
    if not found:
        return timedelta(0)
    return timedelta(milliseconds=found[-1].offset_ms) + segment_length(found[-1])


def segment_length(segment: Segment) -> timedelta:
    """How long one segment plays: its stream slot, or its items back to back."""
    if segment.stream is not None:
        return timedelta(milliseconds=segment.stream.duration_ms)
    return timedelta(milliseconds=sum(i.duration_ms for i in segment.items))


def needs_of(
    session_id: str, bridges: Mapping[str, BridgePower], since: datetime, until: datetime
) -> list[BridgeNeed]:
    """A session's needs: one per bridge (each switches one output for it)."""
    return [
        BridgeNeed(session_id, bridge, power.target, since, until, tuple(power.zone_codes))
        for bridge, power in sorted(bridges.items())
    ]


def held_until(needs: Iterable[BridgeNeed], output: Output, now: datetime) -> datetime | None:
    """Until when ``output`` is needed without a break from ``now`` on (sessions that overlap
    or follow one another before the previous one ends chain); None: not needed now."""
    mine = [n for n in needs if n.output == output and n.until > now]
    held = now
    while True:
        later = [n.until for n in mine if n.since <= held and n.until > held]
        if not later:
            break
        held = max(later)
    return held if held > now else None


def switch_off(needs: Iterable[BridgeNeed], powered: Iterable[Output], now: datetime) -> SwitchOff:
    """Of the outputs switched on (``powered``), those no session needs at ``now``: switch them
    off. The others are ``held`` until the end of the sessions that need them."""
    needs = list(needs)
    result = SwitchOff()
    for output in sorted(set(powered)):
        until = held_until(needs, output, now)
        if until is not None:
            result.held[output] = until
            continue
        ended = [n for n in needs if n.output == output and n.since <= now]
        last = max(ended, key=lambda n: n.until, default=None)
        result.off.append((output, last.zone_codes if last is not None else ()))
    return result


def zone_codes_on(needs: Iterable[BridgeNeed], own: BridgeNeed, now: datetime) -> tuple[str, ...]:
    """The zone codes a ``power`` on for ``own`` carries: its own, then those of the other
    sessions on the same output that still need it (they listen on until they end)."""
    codes = list(own.zone_codes)
    for need in needs:
        if need.output == own.output and need.since <= now < need.until:
            codes += [c for c in need.zone_codes if c not in codes]
    return tuple(codes)


@dataclass(frozen=True, slots=True)
class HeldPower:
    """What a bridge switches itself for one held session (protocol ``PowerSpec``)."""

    target: str
    warmup_s: float
    zone_codes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Switch:
    """A bridge switches ``output`` on or off at ``at`` (``held_switches``)."""

    at: datetime
    output: Output
    on: bool
    zone_codes: tuple[str, ...] = ()


def held_needs(sessions: Iterable[SessionPlan], bridge: str, warmup: timedelta) -> list[BridgeNeed]:
    """The needs of ``bridge``'s held list: every media segment (streams need the link and are
    not held) of the sessions that bridge, from ``warmup`` before its start to its end."""
    found: list[BridgeNeed] = []
    for session in sessions:
        power = session.bridges.get(bridge)
        if power is None:
            continue
        for segment in segments(session):
            if not segment.items:
                continue
            start = session.start_at + timedelta(milliseconds=segment.offset_ms)
            end = start + segment_length(segment)
            found += needs_of(segment.session_id, {bridge: power}, start - warmup, end)
    return found


def held_power(needs: Iterable[BridgeNeed], warmup: timedelta) -> dict[str, list[HeldPower]]:
    """Per held session id, the power specs it carries: its output, switched on ``warmup``
    before its start, with the zone codes an ``on`` then would carry (``zone_codes_on``: its
    own, then those of the sessions that still hold the output)."""
    needs = list(needs)
    found: dict[str, list[HeldPower]] = {}
    for need in needs:
        codes = zone_codes_on(needs, need, need.since)
        found.setdefault(need.session_id, []).append(
            HeldPower(need.target, warmup.total_seconds(), codes)
        )
    return found


def held_switches(needs: Iterable[BridgeNeed]) -> list[Switch]:
    """What a bridge does with its held list alone (link down): each output on when a session
    needs it (``since``) and it is off; off at an end when ``held_until`` says nothing needs it
    any more. Back-to-back sessions (the next one's ``since`` before the previous end) share
    one ``on``."""
    needs = list(needs)
    moments = sorted({n.since for n in needs} | {n.until for n in needs})
    powered: dict[Output, tuple[str, ...]] = {}
    found: list[Switch] = []
    for at in moments:
        for output in sorted({n.output for n in needs}):
            needed = held_until(needs, output, at) is not None
            if needed and output not in powered:
                own = min(
                    (n for n in needs if n.output == output and n.since <= at < n.until),
                    key=lambda n: (n.since, n.session_id),
                )
                powered[output] = zone_codes_on(needs, own, at)
                found.append(Switch(at, output, True, powered[output]))
            elif not needed and output in powered:
                found.append(Switch(at, output, False, powered.pop(output)))
    return found
