"""What a cluster plays: a ``Plan`` (from ``play``, ``schedule``, ``stream`` or ``identify``) and
the live state of one session."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from devices.protocol import MediaRef

from ._records import PlayRecord

Origin = Literal["play", "schedule", "stream", "identify"]
SessionState = Literal["fetching", "waiting", "playing", "done"]


@dataclass(frozen=True, slots=True)
class Plan:
    """What to play, whatever command it came from."""

    session_id: str
    start_at: datetime
    items: tuple[MediaRef, ...] = ()
    priority: int = 50
    rank: int = 0  # the station's tie-break at equal priority (v1.2): higher wins
    offset_ms: int = 0
    origin: Origin = "play"
    url: str | None = None  # stream source (HTTP)
    topic: str | None = None  # stream source (Opus packets over MQTT)
    until: datetime | None = None  # stream end, on the cluster's clock
    length_ms: int | None = None  # a sound without items (the identify tone)

    @property
    def live(self) -> bool:
        """A stream plays in real time: ``speed`` does not compress it."""
        return self.origin == "stream"

    @property
    def total_ms(self) -> int | None:
        """Nominal length from ``offset_ms``; None for a stream without ``until``."""
        if self.live:
            if self.until is None:
                return None
            return max(0, int((self.until - self.start_at).total_seconds() * 1000))
        if self.length_ms is not None:
            return self.length_ms
        return max(0, sum(item.duration_ms for item in self.items) - self.offset_ms)

    @property
    def planned_end(self) -> datetime | None:
        """When it is due to end on the cluster's clock; None: a stream without ``until``."""
        if self.live:
            return self.until
        total = self.total_ms
        return None if total is None else self.start_at + timedelta(milliseconds=total)


@dataclass(eq=False)
class Session:
    plan: Plan
    record: PlayRecord
    task: asyncio.Task[None] | None = None
    state: SessionState = "fetching"
    play_t0: float | None = None  # loop time playback began
    skip_ms: int = 0  # started this far into the programme because it was late
    announced: bool = False  # playback_started sent
    note: str | None = None  # what went wrong along the way (a stream that dropped)
    packets: int = 0  # MQTT stream packets received
