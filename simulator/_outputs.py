"""A bridge's switchable outputs (FM transmitter, wired line, amplifier): protocol §6 ``power``.

Two holders, one rule: an output is on while **the station** holds it (from its ``power`` on to
its ``power`` off) or **a held session** needs it (``SessionSpec.power``: from ``start_at -
warmup_s`` until that session ends, link up or down). So a held session switches its output on
itself when the station's ``on`` cannot come (link down), and it is switched off after the last
session that needs it, back-to-back sessions sharing one ``on``. Neither holder switches off
what the other still holds: the station's ``off`` leaves on an output a held session needs (it
goes off when that session ends), and a held session's end leaves on what the station holds
for a live session. The station's hold lapses only when its ``off`` cannot come: at a session's
end while the link is down and nothing plays. Switching an output to the state it is in is a
no-op (no warm-up, nothing in ``history``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from devices.protocol import PowerSpec, PowerTarget

Holder = Literal["station", "schedule"]


@dataclass(frozen=True, slots=True)
class PowerSwitch:
    """One output switched on or off, at ``at`` on the cluster's clock, because of ``by``."""

    at: datetime
    target: PowerTarget
    on: bool
    zone_codes: tuple[str, ...]
    by: Holder


@dataclass(eq=False)
class _Held:
    """A held session's power specs (only the outputs this cluster has)."""

    start_at: datetime
    specs: tuple[PowerSpec, ...]
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def since(self, spec: PowerSpec) -> datetime:
        return self.start_at - timedelta(seconds=spec.warmup_s)


class Outputs:
    """``state``: target -> (on, zone codes), the last switch of each output; ``history``: every
    switch on or off, in order (zone-code re-sends to an output already on are not switches)."""

    def __init__(
        self,
        targets: Sequence[PowerTarget],
        *,
        now: Callable[[], datetime],
        link_up: Callable[[], bool],
        playing: Callable[[], bool],
        warm_up: Callable[[float], None],
    ) -> None:
        self.targets = list(targets)
        self.state: dict[PowerTarget, tuple[bool, list[str]]] = {}
        self.history: list[PowerSwitch] = []
        self._now = now
        self._link_up = link_up
        self._playing = playing
        self._warm_up = warm_up
        self._station: set[PowerTarget] = set()  # switched on by the station, not yet off
        self._held: dict[str, _Held] = {}  # session id -> its power specs
        self._check_pending = False

    @property
    def on(self) -> list[PowerTarget]:
        """The outputs on now, in the order the cluster announces them."""
        return [t for t in self.targets if self.state.get(t, (False, []))[0]]

    # -- the station's ``power`` command --------------------------------------------------------

    def command(self, target: PowerTarget, on: bool, warmup_s: float, codes: list[str]) -> None:
        """Obey a ``power`` command for an output this cluster has."""
        if on:
            self._station.add(target)
            self._switch_on(target, codes, warmup_s, "station", replace_codes=True)
            return
        self._station.discard(target)
        if self._held_needs(target):
            return  # a held session plays into it now or soon: off when that one ends
        self._switch_off(target, codes, "station")

    # -- held sessions (``schedule``) ----------------------------------------------------------

    def hold(self, session_id: str, start_at: datetime, specs: Iterable[PowerSpec]) -> None:
        """A held session needs these outputs from ``start_at - warmup_s`` until it ends
        (``release``). Outputs this cluster lacks are ignored; the session plays anyway."""
        mine = tuple(s for s in specs if s.target in self.targets)
        known = self._held.get(session_id)
        if known is not None and (known.start_at, known.specs) == (start_at, mine):
            return  # the same list again: its timer runs already
        self._drop(session_id)
        if not mine:
            return
        held = _Held(start_at, mine)
        self._held[session_id] = held
        held.task = asyncio.get_running_loop().create_task(
            self._switch_when_due(session_id, held), name=f"power-{session_id}"
        )

    def release(self, session_id: str) -> None:
        """The session ended (played, stopped, preempted, refused, withdrawn, lost): its outputs
        go off unless someone else holds them. Checked once the loop has let the session that
        may replace it start, so a preemptor's own needs count."""
        self._drop(session_id)
        if not self._check_pending:
            self._check_pending = True
            asyncio.get_running_loop().call_soon(self._check)

    def close(self) -> None:
        for session_id in list(self._held):
            self._drop(session_id)

    # -- internals -----------------------------------------------------------------------------

    async def _switch_when_due(self, session_id: str, held: _Held) -> None:
        for spec in sorted(held.specs, key=held.since):
            # a deadline on the cluster's clock, which may be skewed while we wait
            while (delay := (held.since(spec) - self._now()).total_seconds()) > 0:  # noqa: ASYNC110
                await asyncio.sleep(min(delay, 30.0))
            if self._held.get(session_id) is held:
                self._switch_on(spec.target, spec.zone_codes, spec.warmup_s, "schedule")

    def _drop(self, session_id: str) -> None:
        held = self._held.pop(session_id, None)
        if held is not None and held.task is not None and held.task is not asyncio.current_task():
            held.task.cancel()

    def _held_needs(self, target: PowerTarget) -> bool:
        now = self._now()
        return any(
            spec.target == target and held.since(spec) <= now
            for held in self._held.values()
            for spec in held.specs
        )

    def _check(self) -> None:
        self._check_pending = False
        for target in self.on:
            if target in self._station:
                if self._link_up() or self._playing():
                    continue  # the station's off will come (or a live session plays into it)
                self._station.discard(target)  # link down, nothing plays: no off will come
            if not self._held_needs(target):
                self._switch_off(target, self.state[target][1], "schedule")

    def _switch_on(
        self,
        target: PowerTarget,
        codes: Sequence[str],
        warmup_s: float,
        by: Holder,
        *,
        replace_codes: bool = False,
    ) -> None:
        on, current = self.state.get(target, (False, []))
        if on:  # already on: no warm-up, no switch; the zone codes are (re)sent if they changed
            merged = (
                list(codes)
                if replace_codes
                else [*current, *(c for c in codes if c not in current)]
            )
            self.state[target] = (True, merged)
            return
        self.state[target] = (True, list(codes))
        self.history.append(PowerSwitch(self._now(), target, True, tuple(codes), by))
        if warmup_s:
            self._warm_up(warmup_s)

    def _switch_off(self, target: PowerTarget, codes: Sequence[str], by: Holder) -> None:
        on, _ = self.state.get(target, (False, []))
        self.state[target] = (False, list(codes))
        if on:
            self.history.append(PowerSwitch(self._now(), target, False, tuple(codes), by))
