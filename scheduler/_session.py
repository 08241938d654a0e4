"""What a session is made of: items, streams, silences, and the segments sent. Pure data."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta


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
    ``items`` only. ``priority`` is the ladder level (0-100) the commands carry; ``rank`` the
    operator's order among schedules of that level (lower first; sent as ``on_air_rank``).
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
    rank: int = 0


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
        index = int(k)
    elif sep and k[:1] == "r" and k[1:].isdigit():
        index = RESUME_BASE + int(k[1:])
    else:
        return segment, 0
    root, inner = base_session_id(base)  # a later segment of a resumption: <id>~r<n>~<k>
    return root, inner or index


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


@dataclass(frozen=True, slots=True)
class Tail:
    """The rest of a preempted session, sent again as ``plan`` (its own id, ``<id>~r<n>``):
    its first media run starts ``offset_ms`` in, at ``start_at``."""

    plan: SessionPlan
    start_at: datetime
    offset_ms: int


def resume_tail(
    session: SessionPlan,
    item: int,
    offset_ms: int,
    at: datetime,
    start_at: datetime,
    cluster_ids: list[str],
    expiry: timedelta,
) -> Tail | None:
    """What to send so that ``session`` continues from part ``item``, ``offset_ms`` into it, as
    decided at ``at``, starting at ``start_at``: a media item where it stopped; a relay or live
    slot rejoins what is on air (the time between ``at`` and ``start_at`` is skipped too). The
    later parts whose segments were due before ``at`` (held off by the higher session) come
    along; segments still ahead were sent already and play at their own time. None: nothing left.
    """
    parts: list[Part] = list(session.parts or session.items)
    if not 0 <= item < len(parts):
        return None
    nominal, acc = [], 0
    for part in parts:
        nominal.append(acc)
        acc += part.duration_ms
    late = max(0, round((start_at - at).total_seconds() * 1000))
    tail: list[Part] = []
    first_offset = 0
    for i in range(item, len(parts)):
        part = parts[i]
        opens = i > item and not (isinstance(part, ItemRef) and isinstance(parts[i - 1], ItemRef))
        if opens and session.start_at + timedelta(milliseconds=nominal[i]) >= at:
            break  # sent at dispatch: the cluster still holds it
        if i > item:
            tail.append(part)
        elif isinstance(part, ItemRef):
            first_offset = offset_ms
            tail.append(part)
        elif isinstance(part, StreamPart):
            left = part.duration_ms - offset_ms - late
            if left > 0:
                tail.append(replace(part, duration_ms=left))
        elif part.duration_ms - offset_ms - late > 0:
            tail.append(SilencePart(part.duration_ms - offset_ms - late))
    if not any(not isinstance(p, SilencePart) for p in tail):
        return None
    n = max(1, int((at - session.start_at).total_seconds()))
    shifted = start_at - timedelta(milliseconds=first_offset)
    plan = replace(
        session,
        session_id=resume_id(session.session_id, n),
        start_at=shifted,
        expires_at=start_at + expiry,
        cluster_ids=list(cluster_ids),
        items=[p for p in tail if isinstance(p, ItemRef)],
        parts=tuple(tail),
        bridges={},
    )
    return Tail(plan, start_at, first_offset)


UrlFor = Callable[[str, ItemRef], str]
# Codecs each cluster decodes (from its announcement), for the clusters asked; a cluster left
# out gets the primary rendition.
CodecsFor = Callable[[Sequence[str]], Awaitable[Mapping[str, Sequence[str]]]]
