"""The activity report: what actually played in a period, from proof of play.

Definitions (docs/compliance.md repeats them):
- a broadcast is a ``PlaySession`` whose ``start_at`` falls in the period; it is *aired* when at
  least one of its ``PlayRecord`` rows finished. A resumption after a preemption (``<id>~r<n>``)
  is no session of its own: proof of play adds its played time to the broadcast's record
  (``station._playout_store.count_segment_end``), so it counts once, here as everywhere;
- plays requested = its records; successful = finished; on time = finished with
  |skew_ms| <= ``on_time_ms``; interrupted = cut and not resumed (by an emergency, an operator's
  stop): not successful, but what it played is airtime;
- airtime of a broadcast = the longest ``played_ms`` among its records, whatever their status
  (the programme went out once, however many clusters carried it); cluster-hours = the sum;
- the airtime is attributed per programme item (``_Segment``): media and jingles for their
  duration, relay/live slots for theirs, silences not at all (nothing plays, nothing is
  counted), the played time filled into the items in programme order. An item's topics are the
  programme's plus its media item's; its source is ``upstream`` for the audio of an upstream
  bulletin, ``own`` for other media, ``relay``/``live`` for those slots; its language is the
  media item's, the programme's for a slot. A broadcast counts (sessions, plays) under every
  topic/source/language of its items; airtime splits, so source and language rows add up to
  the total airtime (topic rows may add up to more: an item counts under each of its topics).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from station.db import (
    Cluster,
    MediaItem,
    MediaTopic,
    PlayRecord,
    PlayRecordStatus,
    PlaySession,
    Programme,
    ProgrammeItem,
    ProgrammeItemKind,
    Topic,
    UpstreamBulletin,
    Village,
)

from ._inventory import AsOf, clusters_as_of
from ._model import Cell, Report, Table
from ._periods import Period

__all__ = ["activity_report"]

Sessions = async_sessionmaker[AsyncSession]
SOURCES = ("own", "relay", "upstream", "live")
NO_TOPIC = "-"
DIMENSIONS = ("topic", "source", "language")
_SLOTS = (ProgrammeItemKind.RELAY, ProgrammeItemKind.LIVE)


@dataclass
class _Tally:
    sessions: int = 0
    aired: int = 0
    requested: int = 0
    ok: int = 0
    on_time: int = 0
    interrupted: int = 0
    airtime_ms: int = 0
    cluster_ms: int = 0

    def ratio(self) -> float:
        return round(self.ok / self.requested, 4) if self.requested else 0.0


@dataclass(frozen=True, slots=True)
class _Segment:
    """One item of a programme that plays, and what its airtime counts under."""

    ms: int  # nominal length
    topics: tuple[str, ...]
    source: str
    language: str

    def keys(self, dimension: str) -> tuple[str, ...]:
        if dimension == "topic":
            return self.topics
        return (self.source,) if dimension == "source" else (self.language,)


@dataclass
class _Data:
    sessions: list[PlaySession]
    records: dict[str, list[PlayRecord]]
    programmes: dict[int, Programme]
    items: dict[int, list[ProgrammeItem]]  # in programme order
    media: dict[int, tuple[int, str]]  # media id -> (duration_ms, language)
    media_topics: dict[int, set[str]]
    bulletin_media: set[int]
    topics: dict[str, Topic]
    clusters: dict[str, Cluster]
    villages: dict[str, Village]
    as_of: dict[str, AsOf]  # status history: availability per cluster (as the inventory)
    segments: dict[int, list[_Segment]] = field(default_factory=dict)  # per programme, cached


async def _load(sessions: Sessions, start: datetime, end: datetime) -> _Data:
    async with sessions() as db:
        found = (
            await db.exec(
                select(PlaySession)
                .where(col(PlaySession.start_at) >= start, col(PlaySession.start_at) < end)
                .order_by(col(PlaySession.start_at), col(PlaySession.id))
            )
        ).all()
        ids = [s.id for s in found]
        records: dict[str, list[PlayRecord]] = defaultdict(list)
        for chunk in range(0, len(ids), 500):
            rows = await db.exec(
                select(PlayRecord).where(col(PlayRecord.session_id).in_(ids[chunk : chunk + 500]))
            )
            for r in rows.all():
                records[r.session_id].append(r)
        programmes = {p.id: p for p in (await db.exec(select(Programme))).all() if p.id}
        items: dict[int, list[ProgrammeItem]] = defaultdict(list)
        ordered = select(ProgrammeItem).order_by(
            col(ProgrammeItem.programme_id), col(ProgrammeItem.position)
        )
        for item in (await db.exec(ordered)).all():
            items[item.programme_id].append(item)
        media = {
            m_id: (ms, lang)
            for m_id, ms, lang in (
                await db.exec(select(MediaItem.id, MediaItem.duration_ms, MediaItem.language))
            ).all()
            if m_id is not None
        }
        media_topics: dict[int, set[str]] = defaultdict(set)
        for mt in (await db.exec(select(MediaTopic))).all():
            media_topics[mt.media_id].add(mt.topic_code)
        bulletin_media = {
            m for m in (await db.exec(select(UpstreamBulletin.media_id))).all() if m is not None
        }
        topics = {t.code: t for t in (await db.exec(select(Topic))).all()}
        clusters = {c.id: c for c in (await db.exec(select(Cluster))).all()}
        villages = {v.id: v for v in (await db.exec(select(Village))).all()}
        _known, as_of = await clusters_as_of(db, start, end, datetime.now(UTC))
    return _Data(
        list(found),
        records,
        programmes,
        items,
        media,
        media_topics,
        bulletin_media,
        topics,
        clusters,
        villages,
        as_of,
    )


def _codes(topics: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(topics))) or (NO_TOPIC,)


def _segments(data: _Data, programme_id: int) -> list[_Segment]:
    """The programme's items that play, in order (silences send nothing and play nothing).
    A programme with none (emptied since) counts whole under its own tags."""
    cached = data.segments.get(programme_id)
    if cached is not None:
        return cached
    programme = data.programmes.get(programme_id)
    tags = list(programme.topics) if programme else []
    language = programme.language if programme else "vi"
    found: list[_Segment] = []
    for item in data.items.get(programme_id, []):
        if item.media_id is not None and item.media_id in data.media:
            ms, media_language = data.media[item.media_id]
            topics = _codes([*tags, *data.media_topics.get(item.media_id, ())])
            source = "upstream" if item.media_id in data.bulletin_media else "own"
            found.append(_Segment(ms, topics, source, media_language))
        elif item.kind in _SLOTS:
            found.append(_Segment(item.duration_ms or 0, _codes(tags), item.kind.value, language))
    data.segments[programme_id] = found or [_Segment(0, _codes(tags), "own", language)]
    return data.segments[programme_id]


def _split(played_ms: int, segments: list[_Segment]) -> list[int]:
    """``played_ms`` filled into the segments in programme order (a record keeps only the sum
    of what its segments played; a cut takes from the end). More than the programme's length
    (start latency, a rejoined relay) goes to the last segment, so the shares add up."""
    shares, left = [], played_ms
    for segment in segments:
        take = min(left, segment.ms)
        shares.append(take)
        left -= take
    shares[-1] += left
    return shares


def _ok(r: PlayRecord) -> bool:
    return r.status == PlayRecordStatus.FINISHED


def _played(recs: list[PlayRecord]) -> int:
    """A broadcast's airtime among ``recs``: the longest played time, finished or cut."""
    return max((r.played_ms or 0 for r in recs), default=0)


def _hours(ms: int) -> float:
    return round(ms / 3_600_000, 2)


async def activity_report(
    sessions: Sessions, period: Period, tz: tzinfo, *, on_time_ms: int = 500
) -> Report:
    start, end = period.bounds(tz)
    data = await _load(sessions, start, end)
    total = _Tally()
    by: dict[str, dict[str, _Tally]] = {
        k: defaultdict(_Tally) for k in (*DIMENSIONS, "cluster", "village")
    }
    per_day: dict[str, int] = defaultdict(int)
    programmes_aired: set[int] = set()
    bulletins_aired: set[int] = set()
    emergency = [0, 0]
    for s in data.sessions:
        recs = data.records.get(s.id, [])
        aired = any(_ok(r) for r in recs)
        _add_broadcast(total, recs, aired, _played(recs), on_time_ms)
        total.cluster_ms += sum(r.played_ms or 0 for r in recs)
        _attribute(data, by, s.programme_id, recs, aired, on_time_ms)
        places: dict[str, list[PlayRecord]] = defaultdict(list)
        for r in recs:
            ct = by["cluster"][r.cluster_id]
            _add_plays(ct, [r], on_time_ms)
            ct.cluster_ms += r.played_ms or 0
            cluster = data.clusters.get(r.cluster_id)
            places[(cluster.village_id if cluster else None) or NO_TOPIC].append(r)
            if _ok(r):
                day = (r.started_at or r.scheduled_start).astimezone(tz).date().isoformat()
                per_day[day] += 1
        for village, vrecs in places.items():
            vt = by["village"][village]
            _add_broadcast(vt, vrecs, any(_ok(r) for r in vrecs), _played(vrecs), on_time_ms)
            vt.cluster_ms += sum(r.played_ms or 0 for r in vrecs)
        if aired:
            programmes_aired.add(s.programme_id)
            items = data.items.get(s.programme_id, [])
            bulletins_aired |= {i.media_id for i in items if i.media_id in data.bulletin_media}
        if s.kind == "emergency":
            emergency[0] += 1
            emergency[1] += aired
    summary: dict[str, Cell] = {
        "sessions": total.sessions,
        "sessions_aired": total.aired,
        "programmes_aired": len(programmes_aired),
        "bulletins_aired": len(bulletins_aired),
        "emergency_sessions": emergency[0],
        "emergency_aired": emergency[1],
        "plays_requested": total.requested,
        "plays_ok": total.ok,
        "plays_on_time": total.on_time,
        "plays_interrupted": total.interrupted,
        "success_ratio": total.ratio(),
        "airtime_ms": total.airtime_ms,
        "hours": _hours(total.airtime_ms),
        "cluster_hours": _hours(total.cluster_ms),
        "on_time_ms": on_time_ms,
    }
    return Report(
        "activity",
        period,
        str(tz),
        summary,
        _tables(data, by, per_day),
        datetime.now(UTC).isoformat(timespec="seconds"),
    )


def _attribute(
    data: _Data,
    by: dict[str, dict[str, _Tally]],
    programme_id: int,
    recs: list[PlayRecord],
    aired: bool,
    on_time_ms: int,
) -> None:
    """Count a broadcast under each topic/source/language of its items, with the share of
    its airtime (and of each record's played time) those items had."""
    segments = _segments(data, programme_id)
    airtime = _split(_played(recs), segments)
    cluster = [0] * len(segments)
    for r in recs:
        for i, share in enumerate(_split(r.played_ms or 0, segments)):
            cluster[i] += share
    for dimension in DIMENSIONS:
        shares: dict[str, list[int]] = {}
        for i, segment in enumerate(segments):
            for key in segment.keys(dimension):
                got = shares.setdefault(key, [0, 0])
                got[0] += airtime[i]
                got[1] += cluster[i]
        for key, (ms, cluster_ms) in shares.items():
            tally = by[dimension][key]
            _add_broadcast(tally, recs, aired, ms, on_time_ms)
            tally.cluster_ms += cluster_ms


def _add_broadcast(
    tally: _Tally, recs: list[PlayRecord], aired: bool, airtime_ms: int, on_time_ms: int
) -> None:
    tally.sessions += 1
    tally.aired += aired
    tally.airtime_ms += airtime_ms
    _add_plays(tally, recs, on_time_ms)


def _add_plays(tally: _Tally, recs: list[PlayRecord], on_time_ms: int) -> None:
    for r in recs:
        tally.requested += 1
        tally.interrupted += r.status == PlayRecordStatus.INTERRUPTED
        if _ok(r):
            tally.ok += 1
            if r.skew_ms is not None and abs(r.skew_ms) <= on_time_ms:
                tally.on_time += 1


_COUNTS = [
    "sessions",
    "sessions_aired",
    "airtime_ms",
    "hours",
    "plays_requested",
    "plays_ok",
    "plays_on_time",
    "success_ratio",
    "cluster_hours",
]


def _counts(t: _Tally) -> list[Cell]:
    return [
        t.sessions,
        t.aired,
        t.airtime_ms,
        _hours(t.airtime_ms),
        t.requested,
        t.ok,
        t.on_time,
        t.ratio(),
        _hours(t.cluster_ms),
    ]


def _cluster_table(data: _Data, by_cluster: dict[str, _Tally]) -> Table:
    """Plays per cluster, and its availability (time online, from the status history, the
    inventory's number); clusters with a history but no plays in the period are listed too."""
    cols = ["plays_requested", "plays_ok", "plays_on_time", "success_ratio", "cluster_hours"]
    table = Table("by_cluster", ["cluster", "title", "village", *cols, "availability"])
    known = {cid for cid, a in data.as_of.items() if a.availability is not None}
    for cid in sorted(known | set(by_cluster)):
        ct = by_cluster.get(cid, _Tally())
        c = data.clusters.get(cid)
        as_of = data.as_of.get(cid)
        table.rows.append(
            [
                cid,
                c.name if c else "",
                (c.village_id if c else None) or "",
                ct.requested,
                ct.ok,
                ct.on_time,
                ct.ratio(),
                _hours(ct.cluster_ms),
                as_of.availability if as_of else None,
            ]
        )
    return table


def _tables(data: _Data, by: dict[str, dict[str, _Tally]], per_day: dict[str, int]) -> list[Table]:
    topic = Table("by_topic", ["topic", "title", "group", *_COUNTS])
    for code in sorted(by["topic"]):
        tp = data.topics.get(code)
        row: list[Cell] = [code, tp.title_vi if tp else "", tp.group if tp else ""]
        topic.rows.append(row + _counts(by["topic"][code]))
    source = Table("by_source", ["source", *_COUNTS], coded=frozenset({"source"}))
    source.rows = [[s, *_counts(by["source"][s])] for s in SOURCES if s in by["source"]]
    language = Table("by_language", ["language", *_COUNTS])
    language.rows = [[k, *_counts(v)] for k, v in sorted(by["language"].items())]
    village = Table("by_village", ["village", "title", *_COUNTS])
    for vid, vt in sorted(by["village"].items()):
        v = data.villages.get(vid)
        village.rows.append([vid, v.name if v else "", *_counts(vt)])
    days = Table("per_day", ["day", "plays_ok"], [[d, n] for d, n in sorted(per_day.items())])
    return [topic, source, _cluster_table(data, by["cluster"]), village, language, days]
