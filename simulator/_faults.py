"""Faults for a simulated fleet: on command (``inject``) or at random with a seed (``run``).

A rate is the chance, per cluster and per minute, that the fault starts; each fault heals by
itself after a random duration (a power loss ends with ``power_on``, a link drop with the
reconnect). The same seed over the same cluster ids gives the same faults in the same order, so
``loaxa sim --faults link-drop:0.5 --seed 7`` is reproducible.

Kinds: ``link-drop`` (abrupt, the will fires, back after 2-30 s), ``power-loss`` (no will
beyond the broker noticing, sessions vanish, back after 5-60 s), ``amplifier`` (fault_raised,
cleared after 10-120 s), ``slow-link`` (downloads capped at 8 kB/s for 30-300 s),
``clock-skew`` (clock off by up to ±5 s for 30-300 s), ``corrupt-download`` (the next download
fails its checksum), ``cache-full`` (no free cache for 30-300 s).
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:
    from ._cluster import SimulatedCluster

FaultKind = Literal[
    "link-drop", "power-loss", "amplifier", "slow-link", "clock-skew", "corrupt-download",
    "cache-full",
]  # fmt: skip
FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)
SLOW_LINK_BPS = 8_000


def parse_faults(spec: str) -> dict[FaultKind, float]:
    """``"link-drop:0.5,power-loss:0.01"`` -> rates per cluster per minute; ValueError if bad."""
    rates: dict[FaultKind, float] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, sep, value = part.partition(":")
        if name not in FAULT_KINDS or not sep:
            raise ValueError(f"bad fault {part!r}: use kind:rate with kind in {FAULT_KINDS}")
        rate = float(value)
        if not 0 <= rate <= 60:
            raise ValueError(f"fault rate {rate} is not in 0..60 per cluster per minute")
        rates[name] = rate  # checked against FAULT_KINDS above
    return rates


class FaultInjector:
    """Applies faults to clusters and heals them; ``counts`` says how many of each started."""

    def __init__(
        self,
        clusters: Mapping[str, SimulatedCluster],
        rates: Mapping[FaultKind, float] | None = None,
        *,
        seed: int | None = None,
        tick_s: float = 1.0,
    ) -> None:
        self._clusters = clusters
        self._rates = dict(rates or {})
        self._rng = random.Random(seed)
        self._tick_s = tick_s
        self._timers: dict[asyncio.TimerHandle, Callable[[], object]] = {}  # pending heals
        self.counts: Counter[str] = Counter()

    async def run(self) -> None:
        """Draw random faults every ``tick_s`` until cancelled; heals pending faults on exit."""
        try:
            while True:
                await asyncio.sleep(self._tick_s)
                self.tick()
        finally:
            self.close()

    def tick(self) -> None:
        ids: Sequence[str] = sorted(self._clusters)  # stable order: reproducible with a seed
        for kind, rate in self._rates.items():
            chance = rate * self._tick_s / 60
            for cid in ids:
                if self._rng.random() < chance:
                    self.inject(cid, kind)

    def inject(self, cluster_id: str, kind: FaultKind, seconds: float | None = None) -> None:
        """Start one fault now on one cluster; it heals after ``seconds`` (random if None)."""
        cluster = self._clusters[cluster_id]
        rng = self._rng
        self.counts[kind] += 1
        if kind == "link-drop":
            cluster.drop_link(seconds if seconds is not None else rng.uniform(2, 30))
        elif kind == "power-loss":
            cluster.power_loss()
            self._later(seconds if seconds is not None else rng.uniform(5, 60), cluster.power_on)
        elif kind == "amplifier":
            cluster.raise_fault("amplifier", "simulated amplifier fault")
            heal = seconds if seconds is not None else rng.uniform(10, 120)
            self._later(heal, lambda: cluster.clear_fault("amplifier"))
        elif kind == "slow-link":
            cluster.cache.bandwidth_bps = SLOW_LINK_BPS
            heal = seconds if seconds is not None else rng.uniform(30, 300)
            self._later(heal, lambda: setattr(cluster.cache, "bandwidth_bps", None))
        elif kind == "clock-skew":
            cluster.set_clock_offset(rng.randint(-5000, 5000))
            heal = seconds if seconds is not None else rng.uniform(30, 300)
            self._later(heal, lambda: cluster.set_clock_offset(0))
        elif kind == "corrupt-download":
            cluster.cache.corrupt_next += 1
        else:
            cluster.cache.full = True
            heal = seconds if seconds is not None else rng.uniform(30, 300)
            self._later(heal, lambda: setattr(cluster.cache, "full", False))

    def _later(self, seconds: float, fn: Callable[[], object]) -> None:
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._timers.pop(handle, None)
            fn()

        handle = loop.call_later(seconds, fire)
        self._timers[handle] = fn

    def close(self) -> None:
        """Heal what is pending now (the fleet is stopping) and forget the timers."""
        timers, self._timers = self._timers, {}
        for handle, heal in timers.items():
            handle.cancel()
            heal()  # now: no cluster stays broken
