"""The activity report: what actually played in a period, from proof of play.

Definitions (docs/compliance.md repeats them):
- a broadcast is a ``PlaySession`` whose ``start_at`` falls in the period; it is *aired* when at
  least one of its ``PlayRecord`` rows finished;
- plays requested = its records; successful = finished; on time = finished with
  |skew_ms| <= ``on_time_ms``;
- airtime of a broadcast = the longest ``played_ms`` among its records (the programme went out
  once, however many clusters carried it); cluster-hours = the sum over records;
- topics of a broadcast = its programme's topics plus the topics of the programme's media; a
  broadcast counts under each of its topics (so topic rows may add up to more than the total);
- source: ``upstream`` if a programme item is the audio of an upstream bulletin, else ``live`` if
  it has a live item, else ``relay`` if it has a relay item, else ``own``;
- language = the programme's language.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from station.db import (
    Cluster,
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

from ._model import Cell, Report, Table
from ._periods import Period

__all__ = ["activity_report"]

Sessions = async_sessionmaker[AsyncSession]
SOURCES = ("own", "relay", "upstream", "live")
NO_TOPIC = "-"


@dataclass
class _Tally:
    sessions: int = 0
    aired: int = 0
    requested: int = 0
    ok: int = 0
    on_time: int = 0
    airtime_ms: int = 0
    cluster_ms: int = 0
    ids: set[str] = field(default_factory=set)

    def ratio(self) -> float:
        return round(self.ok / self.requested, 4) if self.requested else 0.0


@dataclass
class _Data:
    sessions: list[PlaySession]
    records: dict[str, list[PlayRecord]]
    programmes: dict[int, Programme]
    items: dict[int, list[ProgrammeItem]]
    media_topics: dict[int, set[str]]
    bulletin_media: set[int]
    topics: dict[str, Topic]
    clusters: dict[str, Cluster]
    villages: dict[str, Village]


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
        for item in (await db.exec(select(ProgrammeItem))).all():
            items[item.programme_id].append(item)
        media_topics: dict[int, set[str]] = defaultdict(set)
        for mt in (await db.exec(select(MediaTopic))).all():
            media_topics[mt.media_id].add(mt.topic_code)
        bulletin_media = {
            m for m in (await db.exec(select(UpstreamBulletin.media_id))).all() if m is not None
        }
        topics = {t.code: t for t in (await db.exec(select(Topic))).all()}
        clusters = {c.id: c for c in (await db.exec(select(Cluster))).all()}
        villages = {v.id: v for v in (await db.exec(select(Village))).all()}
    return _Data(
        list(found),
        records,
        programmes,
        items,
        media_topics,
        bulletin_media,
        topics,
        clusters,
        villages,
    )


def _source(items: list[ProgrammeItem], bulletin_media: set[int]) -> str:
    if any(i.media_id in bulletin_media for i in items if i.media_id is not None):
        return "upstream"
    kinds = {i.kind for i in items}
    if ProgrammeItemKind.LIVE in kinds:
        return "live"
    if ProgrammeItemKind.RELAY in kinds:
        return "relay"
    return "own"


def _topics_of(data: _Data, programme_id: int) -> list[str]:
    programme = data.programmes.get(programme_id)
    codes = set(programme.topics if programme else [])
    for item in data.items.get(programme_id, []):
        if item.media_id is not None:
            codes |= data.media_topics.get(item.media_id, set())
    return sorted(codes) or [NO_TOPIC]


def _ok(r: PlayRecord) -> bool:
    return r.status == PlayRecordStatus.FINISHED


def _hours(ms: int) -> float:
    return round(ms / 3_600_000, 2)


async def activity_report(
    sessions: Sessions, period: Period, tz: tzinfo, *, on_time_ms: int = 500
) -> Report:
    start, end = period.bounds(tz)
    data = await _load(sessions, start, end)
    total = _Tally()
    by: dict[str, dict[str, _Tally]] = {
        k: defaultdict(_Tally) for k in ("topic", "source", "language", "cluster", "village")
    }
    per_day: dict[str, int] = defaultdict(int)
    programmes_aired: set[int] = set()
    bulletins_aired: set[int] = set()
    emergency = [0, 0]
    for s in data.sessions:
        recs = data.records.get(s.id, [])
        aired = any(_ok(r) for r in recs)
        airtime = max((r.played_ms or 0 for r in recs if _ok(r)), default=0)
        items = data.items.get(s.programme_id, [])
        programme = data.programmes.get(s.programme_id)
        keys = {
            "topic": _topics_of(data, s.programme_id),
            "source": [_source(items, data.bulletin_media)],
            "language": [programme.language if programme else "vi"],
        }
        for tally in [total] + [by[k][v] for k, vs in keys.items() for v in vs]:
            tally.sessions += 1
            tally.aired += aired
            tally.airtime_ms += airtime
            _add_records(tally, recs, on_time_ms)
        places: dict[str, list[PlayRecord]] = defaultdict(list)
        for r in recs:
            _add_records(by["cluster"][r.cluster_id], [r], on_time_ms)
            cluster = data.clusters.get(r.cluster_id)
            places[(cluster.village_id if cluster else None) or NO_TOPIC].append(r)
            if _ok(r):
                day = (r.started_at or r.scheduled_start).astimezone(tz).date().isoformat()
                per_day[day] += 1
        for village, vrecs in places.items():
            tally = by["village"][village]
            tally.sessions += 1
            tally.aired += any(_ok(r) for r in vrecs)
            tally.airtime_ms += max((r.played_ms or 0 for r in vrecs if _ok(r)), default=0)
            _add_records(tally, vrecs, on_time_ms)
        if aired:
            programmes_aired.add(s.programme_id)
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


def _add_records(tally: _Tally, recs: list[PlayRecord], on_time_ms: int) -> None:
    for r in recs:
        tally.requested += 1
        if _ok(r):
            tally.ok += 1
            tally.cluster_ms += r.played_ms or 0
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


def _counts(t: _Tally) -> list[str | int | float | None]:
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


def _tables(data: _Data, by: dict[str, dict[str, _Tally]], per_day: dict[str, int]) -> list[Table]:
    topic = Table("by_topic", ["topic", "title", "group", *_COUNTS])
    for code in sorted(by["topic"]):
        tp = data.topics.get(code)
        row: list[str | int | float | None] = [
            code,
            tp.title_vi if tp else "",
            tp.group if tp else "",
        ]
        topic.rows.append(row + _counts(by["topic"][code]))
    source = Table("by_source", ["source", *_COUNTS], coded=frozenset({"source"}))
    source.rows = [[s, *_counts(by["source"][s])] for s in SOURCES if s in by["source"]]
    language = Table("by_language", ["language", *_COUNTS])
    language.rows = [[k, *_counts(v)] for k, v in sorted(by["language"].items())]
    cluster_cols = [
        "plays_requested",
        "plays_ok",
        "plays_on_time",
        "success_ratio",
        "cluster_hours",
    ]
    cluster = Table("by_cluster", ["cluster", "title", "village", *cluster_cols])
    for cid, ct in sorted(by["cluster"].items()):
        c = data.clusters.get(cid)
        cluster.rows.append(
            [
                cid,
                c.name if c else "",
                (c.village_id if c else None) or "",
                ct.requested,
                ct.ok,
                ct.on_time,
                ct.ratio(),
                _hours(ct.cluster_ms),
            ]
        )
    village = Table("by_village", ["village", "title", *_COUNTS])
    for vid, vt in sorted(by["village"].items()):
        v = data.villages.get(vid)
        village.rows.append([vid, v.name if v else "", *_counts(vt)])
    days = Table("per_day", ["day", "plays_ok"], [[d, n] for d, n in sorted(per_day.items())])
    return [topic, source, cluster, village, language, days]
