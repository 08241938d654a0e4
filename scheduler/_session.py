"""What a session is made of: items, streams, silences, and the segments sent. Pure data."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime


@dataclass(frozen=True, slots=True)
class RenditionRef:
    """One delivery file of an item (e.g. Opus or MP3 of the same audio)."""

    codec: str
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class ItemRef:
    """A media item to play; ``sha256``/``size``/``codec`` name its primary rendition.

    ``renditions`` lists every delivery file in order of preference (empty: the primary only).
    """

    media_id: int
    sha256: str
    size: int
    duration_ms: int
    codec: str = "opus"
    renditions: tuple[RenditionRef, ...] = ()

    def for_codecs(self, codecs: Sequence[str] | None) -> ItemRef:
        """The item as the rendition a cluster that decodes ``codecs`` should fetch.

        The first rendition (in preference order) the cluster can decode; the primary one when
        the cluster's codecs are unknown (None) or it decodes none of them.
        """
        if codecs is None or not self.renditions:
            return self
        for rendition in self.renditions:
            if rendition.codec in codecs:
                return replace(
                    self, sha256=rendition.sha256, size=rendition.size, codec=rendition.codec
                )
        return self


@dataclass(frozen=True, slots=True)
class StreamPart:
    """A relay (its stream URL) or live slot (the station's live URL) for ``duration_ms``."""

    url: str
    duration_ms: int
    codec: str = "opus"


@dataclass(frozen=True, slots=True)
class SilencePart:
    """A gap of ``duration_ms``: nothing is sent for it."""

    duration_ms: int


Part = ItemRef | StreamPart | SilencePart


@dataclass(frozen=True, slots=True)
class BridgePower:
    """What a legacy bridge switches on for a session, and the zone codes of its sets."""

    target: str  # protocol PowerTarget: transmitter (FM) | amplifier (wired) | line
    zone_codes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SessionPlan:
    """One broadcast of a schedule: who plays what, when.

    ``parts`` is the whole programme in order (media, streams, silences); empty means
    ``items`` only. ``priority`` is the ladder level (0-100) the commands carry.
    """

    session_id: str
    start_at: datetime
    expires_at: datetime
    cluster_ids: list[str]
    items: list[ItemRef]
    volume: int | None = None
    parts: tuple[Part, ...] = ()
    priority: int = 50
    bridges: Mapping[str, BridgePower] = field(default_factory=dict)  # bridge id -> power


@dataclass(frozen=True, slots=True)
class Segment:
    """A run of media items (one ``play``) or one stream, at ``offset_ms`` into the session."""

    session_id: str  # the session's id for the first segment, ``<id>~<k>`` after
    offset_ms: int
    items: tuple[ItemRef, ...] = ()
    stream: StreamPart | None = None


def segment_id(session_id: str, k: int) -> str:
    return session_id if k == 0 else f"{session_id}~{k}"


def base_session_id(segment: str) -> tuple[str, int]:
    """The session a segment id belongs to, and the segment's index (a resumption,
    ``<id>~r<n>``, counts as a later segment: ``RESUME_BASE + n``)."""
    base, sep, k = segment.rpartition("~")
    if sep and k.isdigit():
        return base, int(k)
    if sep and k[:1] == "r" and k[1:].isdigit():
        return base, RESUME_BASE + int(k[1:])
    return segment, 0


RESUME_BASE = 1000


def resume_id(session_id: str, n: int) -> str:
    return f"{session_id}~r{n}"


# A segment after another starts this much later than the sum of durations: the one before
# ends a few milliseconds after its nominal length (start latency), and a segment of the same
# priority starting on top of it would cut its last words.
SEGMENT_GUARD_MS = 100


def _guard(before: list[Segment]) -> int:
    return SEGMENT_GUARD_MS * len(before)


def segments(session: SessionPlan) -> list[Segment]:
    """Split a programme into what is sent: consecutive media items share one ``play``;
    each relay/live slot is a ``stream``; silences are gaps (nothing sent)."""
    parts: tuple[Part, ...] = session.parts or tuple(session.items)
    found: list[Segment] = []
    run: list[ItemRef] = []
    run_start = offset = 0

    def flush() -> None:
        if run:
            sid = segment_id(session.session_id, len(found))
            found.append(Segment(sid, run_start + _guard(found), tuple(run)))
            run.clear()

    for part in parts:
        if isinstance(part, ItemRef):
            if not run:
                run_start = offset
            run.append(part)
        else:
            flush()
            if isinstance(part, StreamPart):
                sid = segment_id(session.session_id, len(found))
                found.append(Segment(sid, offset + _guard(found), stream=part))
        offset += part.duration_ms
    flush()
    return found


UrlFor = Callable[[str, ItemRef], str]
# Codecs each cluster decodes (from its announcement), for the clusters asked; a cluster left
# out gets the primary rendition.
CodecsFor = Callable[[Sequence[str]], Awaitable[Mapping[str, Sequence[str]]]]
