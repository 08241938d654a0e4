"""Programmes as the scheduler sees them: ordered items with durations. Pure data."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum


class ItemKind(StrEnum):
    MEDIA = "media"  # a file from the library, played from the clusters' cache
    RELAY = "relay"  # a stream (e.g. VOV1) relayed for a duration [tiếp âm]
    LIVE = "live"  # the station's microphone [phát trực tiếp]
    SILENCE = "silence"
    JINGLE = "jingle"  # a short library file between items


# Relays and live slots follow the clock: after a pause they rejoin what is on air now,
# instead of replaying what was missed.
LIVE_BOUND = frozenset({ItemKind.RELAY, ItemKind.LIVE})
NEEDS_MEDIA = frozenset({ItemKind.MEDIA, ItemKind.JINGLE})


@dataclass(frozen=True, slots=True)
class ProgrammeItemSpec:
    kind: ItemKind
    duration: timedelta
    media_id: int | None = None
    url: str | None = None
    title: str = ""

    def __post_init__(self) -> None:
        if self.duration <= timedelta(0):
            raise ValueError(f"{self.kind} item: duration must be positive")
        if self.kind in NEEDS_MEDIA and self.media_id is None:
            raise ValueError(f"{self.kind} item needs a media id")
        if self.kind == ItemKind.RELAY and not self.url:
            raise ValueError("relay item needs a stream URL")

    @property
    def live_bound(self) -> bool:
        return self.kind in LIVE_BOUND


@dataclass(frozen=True, slots=True)
class ProgrammeSpec:
    id: int
    title: str
    items: tuple[ProgrammeItemSpec, ...]
    topics: tuple[str, ...] = ()
    language: str = "vi"
    duration: timedelta = field(init=False)

    def __post_init__(self) -> None:
        if not self.items:
            raise ValueError(f"programme {self.id}: needs at least one item")
        total = sum((item.duration for item in self.items), timedelta(0))
        object.__setattr__(self, "duration", total)  # cached: read in every hot loop

    def counted_duration(self, *, relays: bool) -> timedelta:
        """Airtime for quotas; relays may be left out where a locality does not count them."""
        return sum(
            (i.duration for i in self.items if relays or i.kind != ItemKind.RELAY), timedelta(0)
        )
