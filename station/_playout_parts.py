"""What a session plays and who hears it: a programme's parts and a schedule's receivers."""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from scheduler import (
    BridgePower,
    ItemRef,
    Part,
    RenditionRef,
    Segment,
    SessionPlan,
    SilencePart,
    StreamPart,
    bridge_targets,
    segments,
)
from station._services import StationError
from station._targets import Directory
from station.db import (
    Cluster,
    ClusterKind,
    ClusterStatus,
    MediaItem,
    MediaRendition,
    PlaySession,
    ProgrammeItem,
    ProgrammeItemKind,
)

log = logging.getLogger(__name__)


async def resolve_targets(db: AsyncSession, targets: Mapping[str, Any]) -> list[str]:
    """The clusters that receive a schedule's commands: its ICT clusters and bridges, and for
    each targeted legacy FM/wired cluster the bridge it hangs on (none: unreachable)."""
    return (await resolve_receivers(db, targets))[0]


async def resolve_receivers(
    db: AsyncSession, targets: Mapping[str, Any]
) -> tuple[list[str], dict[str, BridgePower]]:
    """``resolve_targets`` plus, per bridge reached, what it switches on and the zone codes of
    the targeted legacy sets behind it (a bridge targeted itself: all its sets)."""
    directory = await Directory.load(db)
    try:
        wanted = directory.resolve(targets)
    except StationError as exc:
        log.warning("targets %s reach nobody: %s", dict(targets), exc)
        return [], {}
    rows = (
        await db.exec(
            select(Cluster.id, Cluster.kind, Cluster.bridge_id, Cluster.zone_code).where(
                col(Cluster.id).in_(wanted)
                | col(Cluster.bridge_id).in_(wanted),  # sets behind a targeted bridge
                Cluster.status != ClusterStatus.RETIRED,
            )
        )
    ).all()
    receivers: set[str] = set()
    legacy: dict[str, list[tuple[str, str | None]]] = {}
    for cluster_id, kind, bridge_id, zone_code in rows:
        if cluster_id not in wanted and bridge_id not in wanted:
            continue
        if kind in (ClusterKind.ICT, ClusterKind.BRIDGE):
            if cluster_id in wanted:
                receivers.add(cluster_id)
            if kind == ClusterKind.BRIDGE:
                legacy.setdefault(cluster_id, [])
        elif bridge_id is not None:
            if cluster_id in wanted or bridge_id in wanted:
                receivers.add(bridge_id)
                legacy.setdefault(bridge_id, []).append((str(kind), zone_code))
        else:
            log.warning("legacy cluster %s has no bridge: it cannot be reached", cluster_id)
    bridges = {
        bridge: BridgePower(
            bridge_targets([kind for kind, _ in sets]),
            tuple(sorted({code for _, code in sets if code})),
        )
        for bridge, sets in legacy.items()
        if bridge in receivers
    }
    return sorted(receivers), bridges


async def programme_parts(
    db: AsyncSession, programme_id: int, live_url: str | None
) -> tuple[list[ItemRef], list[Part]]:
    """The programme's media items (for prefetch) and all its parts in order."""
    media = {m.media_id: m for m in await programme_items(db, programme_id)}
    rows = await db.exec(
        select(ProgrammeItem)
        .where(ProgrammeItem.programme_id == programme_id)
        .order_by(col(ProgrammeItem.position))
    )
    parts: list[Part] = []
    for row in rows:
        ms = row.duration_ms or 0
        if row.media_id is not None and row.media_id in media:
            parts.append(media[row.media_id])
        elif row.kind == ProgrammeItemKind.RELAY and row.url and ms > 0:
            parts.append(StreamPart(row.url, ms))
        elif row.kind == ProgrammeItemKind.LIVE and (row.url or live_url) and ms > 0:
            # a live item naming a mount (``live:<mount>``) airs that one, else the station's
            parts.append(StreamPart(row.url or live_url or "", ms))
        elif ms > 0:  # silence, or a live slot with no live URL configured
            parts.append(SilencePart(ms))
    return [p for p in parts if isinstance(p, ItemRef)], parts


async def programme_items(db: AsyncSession, programme_id: int) -> list[ItemRef]:
    rows = await db.exec(
        select(MediaItem)
        .join(ProgrammeItem, col(ProgrammeItem.media_id) == col(MediaItem.id))
        .where(ProgrammeItem.programme_id == programme_id)
        .order_by(col(ProgrammeItem.position))
    )
    media = [m for m in rows if m.id is not None]
    # Every rendition (Opus, MP3), in the order they were made: the dispatcher picks per
    # cluster from its announced codecs.
    renditions: dict[int, list[RenditionRef]] = {}
    found = await db.exec(
        select(MediaRendition)
        .where(col(MediaRendition.media_id).in_([m.id for m in media]))
        .order_by(col(MediaRendition.id))
    )
    for r in found:
        ref = RenditionRef(r.codec, r.sha256, r.size_bytes)
        renditions.setdefault(r.media_id, []).append(ref)
    return [
        ItemRef(
            m.id,
            m.sha256,
            m.size_bytes,
            m.duration_ms,
            m.codec,
            tuple(renditions.get(m.id, ())),
        )
        for m in media
        if m.id is not None
    ]


async def segment_ends(
    db: AsyncSession, session_ids: Collection[str], live_url: str | None
) -> dict[str, tuple[datetime, ...]]:
    """Per session, the planned end of each of its segments (index ``k``: segment ``<id>~<k>``,
    0 the session's own id), as the dispatcher sent them: a stream's ``until``, a media run's
    start plus its items' length (``scheduler.segments``: offsets, guards). Resumptions
    (``~r<n>``) are worked out when they resume and are not kept: they have no entry."""
    rows = (
        await db.exec(select(PlaySession).where(col(PlaySession.id).in_(list(session_ids))))
    ).all()
    parts_of: dict[int, tuple[Part, ...]] = {}
    found: dict[str, tuple[datetime, ...]] = {}
    for row in rows:
        if row.programme_id not in parts_of:
            _items, parts = await programme_parts(db, row.programme_id, live_url)
            parts_of[row.programme_id] = tuple(parts)
        plan = SessionPlan(
            row.id, row.start_at, row.expires_at, [], [], parts=parts_of[row.programme_id]
        )
        found[row.id] = tuple(_segment_end(row.start_at, s) for s in segments(plan))
    return found


def _segment_end(session_start: datetime, segment: Segment) -> datetime:
    length = (
        segment.stream.duration_ms
        if segment.stream is not None
        else sum(item.duration_ms for item in segment.items)
    )
    return session_start + timedelta(milliseconds=segment.offset_ms + length)


def bridges_json(bridges: Mapping[str, BridgePower]) -> dict[str, Any]:
    return {b: {"target": p.target, "zone_codes": list(p.zone_codes)} for b, p in bridges.items()}


def bridges_of(stored: Mapping[str, Any]) -> dict[str, BridgePower]:
    return {b: BridgePower(p["target"], tuple(p.get("zone_codes", ()))) for b, p in stored.items()}
