"""Reports over a simulated half-year (2024H1), numbers checked by hand.

The fixture commune is tests/fixtures/commune_*.csv (the example commune). Its half-year of
proof of play, written through the models (all times Asia/Ho_Chi_Minh, UTC+7):

- P1 "Bản tin sáng": daily 06:00, one 30-minute media item, programme topic I.9, media topic
  II.4, to C01-C05. 182 days (2023-12-01 .. 2024-05-30). C05 always starts 3 s late (finished,
  not on time). C04 fails on day index 0, 30, 60, ..., 180 (7 days). On 2024-01-01 every cluster
  fails (the broadcast did not air).
- P2 "Tiếp âm đài tỉnh": a 1-hour relay, Mondays 17:00, topic II.1, to C01-C02: 26 Mondays.
- P3 "Chương trình tiếng Cơ Tu": a 15-minute live slot, language ctu, topic II.8, on the 1st of
  each month 19:00, to C10: 6 broadcasts, skew 500 ms (on time at the 500 ms tolerance).
- P4: the audio of an upstream priority bulletin (media topic I.11), 5 minutes, 2024-02-15
  11:00, to C01-C05.
- P5: an emergency broadcast (kind emergency), 2 minutes, topic I.9, 2024-03-10 14:00, C01-C05.
- Outside the window (must not count): P1 on 2023-11-30 and on 2024-05-31.
- Status history (uptime): C01, C02, C03, C05, C10 online from 2023-11-20; C04 too, but
  offline 2024-03-01 .. 2024-03-11 (availability 172/182); C12 online from 2024-02-01
  (120/182); the other ICT clusters and the bridges never connect (0).

``cuts`` adds interrupted plays (only where a test asks for it):

- P6 "Tổng hợp cuối tuần", topic II.2, language vi: a 10-minute media item (topic I.3, vi),
  a 20-minute relay, a minute of silence, a 5-minute media item (topic II.8, language ctu);
  2024-04-20 08:00 to C01 (finished, 35 minutes) and C02 (stopped by an operator 12 minutes
  in, not resumed).
- P7 "Thời sự trưa", a 20-minute media item, topic I.9, 2024-03-10 13:55 to C01-C03, cut by
  P5's emergency at 14:00 (5 minutes played); C01 and C02 resume (``~r<n>``) and play the
  other 15 minutes, C03 does not come back. Its proof of play goes through ``PlayoutStore``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from devices.protocol import Event
from station._playout_store import PlayoutStore
from station._registry_import import import_clusters, import_villages
from station.db import (
    ClusterStatus,
    MediaItem,
    MediaTopic,
    OutboxMessage,
    PlayRecord,
    PlayRecordStatus,
    PlaySession,
    PlaySessionStatus,
    Programme,
    ProgrammeItem,
    ProgrammeItemKind,
    UpstreamBulletin,
    create_engine_for,
    session_factory,
    upgrade_async,
)
from station.db.models_fleet import ClusterStatusChange
from station.reports import (
    activity_report,
    inventory_report,
    parse_period,
    period_between,
    push_report,
    render,
    write_report,
)

Sessions = async_sessionmaker[AsyncSession]
FIXTURES = Path(__file__).parent / "fixtures"
TZ = ZoneInfo("Asia/Ho_Chi_Minh")
H1 = parse_period("2024H1")
ICT5 = ["C01", "C02", "C03", "C04", "C05"]
MIN = 60_000
# The registry was imported before the half-year (its status history starts here).
REGISTERED_AT = datetime(2023, 11, 1, tzinfo=TZ)


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[Sessions]:
    await upgrade_async(database_url)
    engine = create_engine_for(database_url)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


def _at(day: date, hh: int) -> datetime:
    return datetime.combine(day, time(hh), TZ)


class _Writer:
    def __init__(self, db: AsyncSession) -> None:
        self.db = db
        self.n = 0

    async def programme(
        self, title: str, topics: list[str], kind: ProgrammeItemKind, ms: int, **kw: object
    ) -> int:
        prog = Programme(title=title, topics=topics, language=str(kw.get("language", "vi")))
        self.db.add(prog)
        await self.db.flush()
        assert prog.id is not None
        media_id = None
        if kind == ProgrammeItemKind.MEDIA:
            media = MediaItem(
                sha256=f"{prog.id:064x}", source_sha256=f"{prog.id:064x}", title=title,
                duration_ms=ms, size_bytes=ms // 10,
            )  # fmt: skip
            self.db.add(media)
            await self.db.flush()
            media_id = media.id
            for code in kw.get("media_topics", []):  # type: ignore[attr-defined]
                self.db.add(MediaTopic(media_id=media.id, topic_code=code))
            if kw.get("bulletin"):
                self.db.add(
                    UpstreamBulletin(
                        upstream_id="tinh-2024-0042", bulletin_class="priority",
                        status="scheduled", title=title, media_id=media.id,
                        received_via="pull",
                    )
                )  # fmt: skip
        self.db.add(
            ProgrammeItem(
                programme_id=prog.id, position=0, kind=kind, media_id=media_id,
                duration_ms=None if media_id else ms,
            )
        )  # fmt: skip
        return prog.id

    async def session(
        self, programme_id: int, start: datetime, plays: dict[str, tuple[str, int]], ms: int,
        kind: str = "scheduled", cut: dict[str, int] | None = None,
    ) -> str:  # fmt: skip
        """``plays``: cluster -> (status, skew_ms); finished plays play ``ms``, interrupted
        ones what ``cut`` says (cluster -> played ms)."""
        self.n += 1
        sid = f"s{self.n:05d}"
        self.db.add(
            PlaySession(
                id=sid, programme_id=programme_id, start_at=start, kind=kind,
                expires_at=start + timedelta(hours=2), status=PlaySessionStatus.DONE,
            )
        )  # fmt: skip
        await self.db.flush()
        for cluster, (status, skew) in plays.items():
            played = ms if status == FIN else (cut or {}).get(cluster)
            ok = played is not None
            self.db.add(
                PlayRecord(
                    session_id=sid, cluster_id=cluster, status=status, scheduled_start=start,
                    started_at=start + timedelta(milliseconds=skew) if ok else None,
                    finished_at=start + timedelta(milliseconds=skew + (played or 0))
                    if ok else None,
                    skew_ms=skew if ok else None, played_ms=played,
                    error_code=None if ok or status == PlayRecordStatus.SENT else "E_DOWNLOAD",
                    interrupted_by="stop" if status == CUT else None,
                )
            )  # fmt: skip
        return sid


FIN = PlayRecordStatus.FINISHED
FAIL = PlayRecordStatus.FAILED
CUT = PlayRecordStatus.INTERRUPTED
ONLINE_FROM = datetime(2023, 11, 20, tzinfo=TZ)


def _change(
    cid: str, at: datetime, before: ClusterStatus, after: ClusterStatus
) -> ClusterStatusChange:
    online = after == ClusterStatus.ONLINE
    return ClusterStatusChange(
        cluster_id=cid, at=at, from_status=before, to_status=after, online=online
    )


def _uptime() -> list[ClusterStatusChange]:
    """The status history of the module docstring (as ``FleetMonitor`` writes it)."""
    up, down, new = ClusterStatus.ONLINE, ClusterStatus.OFFLINE, ClusterStatus.REGISTERED
    rows = [_change(c, ONLINE_FROM, new, up) for c in (*ICT5, "C10")]
    rows += [
        _change("C04", datetime(2024, 3, 1, tzinfo=TZ), up, down),
        _change("C04", datetime(2024, 3, 11, tzinfo=TZ), down, up),
        _change("C12", datetime(2024, 2, 1, tzinfo=TZ), new, up),
    ]
    return rows


async def half_year(sessions: Sessions) -> None:
    """The example commune and its simulated half-year 2024H1 (see the module docstring)."""
    villages = await import_villages(sessions, (FIXTURES / "commune_villages.csv").read_text())
    clusters = await import_clusters(
        sessions, (FIXTURES / "commune_clusters.csv").read_text(), at=REGISTERED_AT
    )
    assert villages.errors == [] and clusters.errors == []
    async with sessions() as db:
        db.add_all(_uptime())
        w = _Writer(db)
        media = ProgrammeItemKind.MEDIA
        p1 = await w.programme("Bản tin sáng", ["I.9"], media, 30 * MIN, media_topics=["II.4"])
        p2 = await w.programme("Tiếp âm đài tỉnh", ["II.1"], ProgrammeItemKind.RELAY, 60 * MIN)
        p3 = await w.programme(
            "Chương trình tiếng Cơ Tu", ["II.8"], ProgrammeItemKind.LIVE, 15 * MIN, language="ctu"
        )
        p4 = await w.programme(
            "Bản tin tỉnh: dịch tả lợn châu Phi", [], media, 5 * MIN,
            media_topics=["I.11"], bulletin=True,
        )  # fmt: skip
        p5 = await w.programme("Cảnh báo lũ", ["I.9"], media, 2 * MIN)
        for i in range((H1.last - H1.first).days + 1):
            day = H1.first + timedelta(days=i)
            plays = {c: (FIN, 3000 if c == "C05" else 100) for c in ICT5}
            if i % 30 == 0:
                plays["C04"] = (FAIL, 0)
            if day == date(2024, 1, 1):
                plays = {c: (FAIL, 0) for c in ICT5}
            await w.session(p1, _at(day, 6), plays, 30 * MIN)
            if day.weekday() == 0:
                await w.session(p2, _at(day, 17), {c: (FIN, 0) for c in ("C01", "C02")}, 60 * MIN)
            if day.day == 1:
                await w.session(p3, _at(day, 19), {"C10": (FIN, 500)}, 15 * MIN)
        await w.session(p4, _at(date(2024, 2, 15), 11), {c: (FIN, 0) for c in ICT5}, 5 * MIN)
        await w.session(
            p5, _at(date(2024, 3, 10), 14), {c: (FIN, 0) for c in ICT5}, 2 * MIN, "emergency"
        )
        for outside in (date(2023, 11, 30), date(2024, 5, 31)):
            await w.session(p1, _at(outside, 6), {c: (FIN, 0) for c in ICT5}, 30 * MIN)
        await db.commit()


async def _mixed_programme(db: AsyncSession) -> int:
    """P6: own media (vi, I.3), a relay, a silence, own media in Cơ Tu (II.8); topic II.2."""
    prog = Programme(title="Tổng hợp cuối tuần", topics=["II.2"], language="vi")
    db.add(prog)
    await db.flush()
    assert prog.id is not None
    items: list[ProgrammeItem] = []
    for n, (ms, language, topic) in enumerate([(10 * MIN, "vi", "I.3"), (5 * MIN, "ctu", "II.8")]):
        sha = f"{prog.id:032x}{n:032x}"
        media = MediaItem(
            sha256=sha, source_sha256=sha, title=f"Tin {n}", duration_ms=ms, size_bytes=ms // 10,
            language=language,
        )  # fmt: skip
        db.add(media)
        await db.flush()
        assert media.id is not None
        db.add(MediaTopic(media_id=media.id, topic_code=topic))
        items.append(ProgrammeItem(programme_id=prog.id, position=0, media_id=media.id))
    relay = ProgrammeItemKind.RELAY
    items[1:1] = [
        ProgrammeItem(programme_id=prog.id, position=0, kind=relay, duration_ms=20 * MIN,
                      url="http://vov.example/vov1"),
        ProgrammeItem(programme_id=prog.id, position=0, kind=ProgrammeItemKind.SILENCE,
                      duration_ms=MIN),
    ]  # fmt: skip
    for position, item in enumerate(items):
        item.position = position
        db.add(item)
    return prog.id


async def cuts(sessions: Sessions) -> None:
    """Interrupted plays on top of ``half_year`` (P6, P7 of the module docstring)."""
    async with sessions() as db:
        w = _Writer(db)
        w.n = 900
        p6 = await _mixed_programme(db)
        start = _at(date(2024, 4, 20), 8)
        await w.session(
            p6, start, {"C01": (FIN, 0), "C02": (CUT, 0)}, 35 * MIN, cut={"C02": 12 * MIN}
        )
        p7 = await w.programme("Thời sự trưa", ["I.9"], ProgrammeItemKind.MEDIA, 20 * MIN)
        noon = _at(date(2024, 3, 10), 14) - timedelta(minutes=5)
        sent = (PlayRecordStatus.SENT, 0)
        p7_id = await w.session(p7, noon, {c: sent for c in ("C01", "C02", "C03")}, 20 * MIN)
        emergency = (
            await db.exec(select(PlaySession.id).where(PlaySession.kind == "emergency"))
        ).one()
        await db.commit()
    store = PlayoutStore(sessions)
    cut_at = noon + timedelta(minutes=5)
    for cluster in ("C01", "C02", "C03"):
        await store.on_event(
            Event(
                cluster_id=cluster, type="playback_interrupted", session_id=p7_id, ts=cut_at,
                started_at=noon, finished_at=cut_at, played_ms=5 * MIN, clock_offset_ms=0,
                interrupted_by=emergency,
            )
        )  # fmt: skip
    back = cut_at + timedelta(minutes=2, seconds=1)
    for cluster in ("C01", "C02"):
        resumed = Event(
            cluster_id=cluster, type="playback_finished", session_id=f"{p7_id}~r301", ts=back,
            started_at=back - timedelta(minutes=15), finished_at=back, played_ms=15 * MIN,
        )  # fmt: skip
        await store.on_event(resumed)
        await store.on_event(resumed)  # redelivered (QoS 1): counted once


# ---------------------------------------------------------------------------------- periods


def test_presets_follow_the_seed_dates() -> None:
    assert (H1.first, H1.last, H1.due) == (date(2023, 12, 1), date(2024, 5, 30), date(2024, 6, 15))
    year = parse_period("2024y")
    assert (year.first, year.last, year.due) == (
        date(2023, 12, 1), date(2024, 11, 30), date(2024, 12, 15),
    )  # fmt: skip
    start, end = H1.bounds(TZ)
    assert start.isoformat() == "2023-12-01T00:00:00+07:00"
    assert end.isoformat() == "2024-05-31T00:00:00+07:00"
    with pytest.raises(ValueError):
        parse_period("2024H2")
    with pytest.raises(ValueError):
        period_between(date(2024, 2, 1), date(2024, 1, 1))


# --------------------------------------------------------------------------------- activity

HOUR = 3_600_000


async def test_activity_of_the_simulated_half_year(sessions: Sessions) -> None:
    await half_year(sessions)
    report = await activity_report(sessions, H1, TZ, on_time_ms=500)
    assert report.summary == {
        "sessions": 182 + 26 + 6 + 1 + 1,
        "sessions_aired": 215,  # 2024-01-01 06:00 failed everywhere
        "programmes_aired": 5,
        "bulletins_aired": 1,
        "emergency_sessions": 1,
        "emergency_aired": 1,
        "plays_requested": 182 * 5 + 26 * 2 + 6 + 5 + 5,  # 978
        "plays_ok": 978 - 5 - 7,  # 966
        "plays_on_time": 966 - 181,  # C05's late mornings
        "plays_interrupted": 0,
        "success_ratio": 0.9877,  # 966 / 978
        # once per broadcast: 181 x 30 min + 26 x 60 + 6 x 15 + 5 + 2
        "airtime_ms": 181 * 30 * MIN + 26 * HOUR + 6 * 15 * MIN + 5 * MIN + 2 * MIN,
        "hours": 118.12,  # 425 220 000 ms
        "cluster_hours": 503.08,  # (898 x 30 + 52 x 60 + 6 x 15 + 5 x 5 + 5 x 2) min
        "on_time_ms": 500,
    }
    topics = {r["topic"]: r for r in report.table("by_topic").as_dicts()}
    assert set(topics) == {"I.9", "I.11", "II.1", "II.4", "II.8"}
    assert [topics["I.9"][k] for k in ("sessions", "sessions_aired", "airtime_ms")] == [
        183, 182, 181 * 30 * MIN + 2 * MIN,
    ]  # fmt: skip
    assert [topics["I.9"][k] for k in ("plays_requested", "plays_ok", "plays_on_time")] == [
        915, 903, 722,
    ]  # fmt: skip
    assert topics["II.4"]["airtime_ms"] == 181 * 30 * MIN  # the media's topic counts too
    assert (topics["II.1"]["airtime_ms"], topics["II.1"]["hours"]) == (26 * HOUR, 26.0)
    assert topics["I.11"]["airtime_ms"] == 5 * MIN
    assert str(topics["I.11"]["title"]).startswith("Phòng, chống dịch tả lợn châu Phi")
    assert topics["II.8"]["group"] == "II"
    sources = {r["source"]: r for r in report.table("by_source").as_dicts()}
    assert list(sources) == ["own", "relay", "upstream", "live"]
    assert [sources[s]["sessions"] for s in sources] == [183, 26, 1, 6]
    assert [sources[s]["airtime_ms"] for s in sources] == [
        181 * 30 * MIN + 2 * MIN, 26 * HOUR, 5 * MIN, 6 * 15 * MIN,
    ]  # fmt: skip
    languages = {r["language"]: r for r in report.table("by_language").as_dicts()}
    assert (languages["ctu"]["sessions"], languages["ctu"]["airtime_ms"]) == (6, 90 * MIN)
    assert (languages["vi"]["sessions"], languages["vi"]["sessions_aired"]) == (210, 209)


async def test_activity_by_cluster_village_and_day(sessions: Sessions) -> None:
    await half_year(sessions)
    report = await activity_report(sessions, H1, TZ, on_time_ms=500)
    clusters = {r["cluster"]: r for r in report.table("by_cluster").as_dicts()}
    played = {c for c, r in clusters.items() if r["plays_requested"]}
    assert played == {"C01", "C02", "C03", "C04", "C05", "C10"}
    # every cluster with a status history is listed for its availability, plays or not
    assert set(clusters) - played == {f"C{n:02}" for n in (6, 7, 8, 9, 11, 12)} | {"B01", "B02"}
    assert (clusters["C12"]["plays_requested"], clusters["C12"]["availability"]) == (0, 0.6593)
    counts = {
        c: (r["plays_requested"], r["plays_ok"], r["plays_on_time"])
        for c, r in clusters.items()
        if c in played
    }
    assert counts == {
        "C01": (210, 209, 209),
        "C02": (210, 209, 209),
        "C03": (184, 183, 183),
        "C04": (184, 176, 176),  # 7 failed mornings + 2024-01-01
        "C05": (184, 183, 2),  # always 3 s late on the morning bulletin
        "C10": (6, 6, 6),
    }
    assert clusters["C01"]["cluster_hours"] == 116.62  # 6997 minutes
    assert (clusters["C10"]["village"], clusters["C10"]["cluster_hours"]) == ("T09", 1.5)
    villages = {r["village"]: r for r in report.table("by_village").as_dicts()}
    assert set(villages) == {"T01", "T02", "T03", "T04", "T09"}
    t01 = villages["T01"]  # C02 and C03: one broadcast counts once for the village
    assert (t01["sessions"], t01["sessions_aired"], t01["plays_requested"]) == (210, 209, 394)
    assert t01["airtime_ms"] == 181 * 30 * MIN + 26 * HOUR + 7 * MIN
    assert (villages["T02"]["sessions"], villages["T02"]["sessions_aired"]) == (184, 176)
    assert villages["T09"]["title"] == "Bản Làng Mới"
    days = {r["day"]: r["plays_ok"] for r in report.table("per_day").as_dicts()}
    assert len(days) == 182
    # 2024-01-01: the morning failed everywhere; a Monday (relay x 2) and the 1st (Cơ Tu)
    assert days["2024-01-01"] == 2 + 1
    assert days["2023-12-01"] == 4 + 1  # C04 failed; the Cơ Tu programme of the 1st
    assert days["2023-12-04"] == 5 + 2  # a Monday: the relay
    assert days["2024-03-10"] == 5 + 5  # the emergency
    assert sum(days.values()) == 966
    assert "2024-05-31" not in days and "2023-11-30" not in days


async def test_interrupted_plays_count_their_airtime_not_success(sessions: Sessions) -> None:
    """P6 stopped on C02 after 12 minutes and P7 cut on C03 after 5 minutes (not resumed):
    their played time is airtime, neither is a success; P7 resumed on C01/C02 counts once,
    finished, with both parts of its time."""
    await half_year(sessions)
    await cuts(sessions)
    async with sessions() as db:
        p7 = (await db.exec(select(PlayRecord).where(PlayRecord.session_id == "s00902"))).all()
        assert not (
            await db.exec(select(PlaySession).where(col(PlaySession.id).contains("~")))
        ).all()  # a resumption is no broadcast of its own
    assert sorted((r.cluster_id, r.status, r.played_ms, r.skew_ms) for r in p7) == [
        ("C01", FIN, 20 * MIN, 0), ("C02", FIN, 20 * MIN, 0), ("C03", CUT, 5 * MIN, 0),
    ]  # fmt: skip
    report = await activity_report(sessions, H1, TZ, on_time_ms=500)
    base = 181 * 30 + 26 * 60 + 6 * 15 + 5 + 2  # minutes of the half-year without the cuts
    assert report.summary == {
        "sessions": 216 + 2,
        "sessions_aired": 215 + 2,  # each finished somewhere
        "programmes_aired": 5 + 2,
        "bulletins_aired": 1,
        "emergency_sessions": 1,
        "emergency_aired": 1,
        "plays_requested": 978 + 2 + 3,
        "plays_ok": 966 + 1 + 2,  # C01's P6; P7 on C01 and C02 after their resumption
        "plays_on_time": 785 + 1 + 2,
        "plays_interrupted": 2,  # P6 on C02, P7 on C03
        "success_ratio": 0.9858,  # 969 / 983
        "airtime_ms": (base + 35 + 20) * MIN,  # P6: C01's 35 min; P7: 5 + 15 min, once
        "hours": 119.03,
        # + P6 35 + 12 (the stopped play) + P7 20 + 20 + 5 (the one not resumed)
        "cluster_hours": round((30185 + 47 + 45) / 60, 2),
        "on_time_ms": 500,
    }
    clusters = {r["cluster"]: r for r in report.table("by_cluster").as_dicts()}
    c03 = clusters["C03"]
    assert (c03["plays_requested"], c03["plays_ok"], c03["cluster_hours"]) == (185, 183, 90.7)
    assert clusters["C02"]["cluster_hours"] == round((6997 + 12 + 20) / 60, 2)
    t01 = {r["village"]: r for r in report.table("by_village").as_dicts()}["T01"]  # C02, C03
    assert (t01["sessions"], t01["sessions_aired"]) == (212, 210)  # P6 was cut in T01
    assert t01["airtime_ms"] == (181 * 30 + 26 * 60 + 7 + 12 + 20) * MIN


async def test_a_mixed_programme_splits_airtime_by_item(sessions: Sessions) -> None:
    """P6 (own media, relay, silence, own media in Cơ Tu) counts each item's time under its
    own source, language and topics; C02's 12 minutes fill the items in order (10 + 2)."""
    await half_year(sessions)
    await cuts(sessions)
    report = await activity_report(sessions, H1, TZ, on_time_ms=500)
    total = report.summary["airtime_ms"]
    sources = {r["source"]: r for r in report.table("by_source").as_dicts()}
    assert {s: (r["sessions"], r["airtime_ms"]) for s, r in sources.items()} == {
        "own": (183 + 2, (181 * 30 + 2 + 10 + 5 + 20) * MIN),  # P6's two media items, P7
        "relay": (26 + 1, (26 * 60 + 20) * MIN),  # P6's relay
        "upstream": (1, 5 * MIN),
        "live": (6, 90 * MIN),
    }
    assert sum(int(r["airtime_ms"] or 0) for r in sources.values()) == total
    # relay cluster-hours: C01 20 min, C02 2 of its 12 (10 went to the first media item)
    assert sources["relay"]["cluster_hours"] == round((52 * 60 + 20 + 2) / 60, 2)
    assert sources["own"]["cluster_hours"] == round((898 * 30 + 10 + 15 + 10 + 45) / 60, 2)
    languages = {r["language"]: r for r in report.table("by_language").as_dicts()}
    assert {k: (r["sessions"], r["airtime_ms"]) for k, r in languages.items()} == {
        "ctu": (6 + 1, 95 * MIN),  # the Cơ Tu item of a Vietnamese programme counts as ctu
        "vi": (210 + 2, int(total) - 95 * MIN),  # the relay has the programme's language
    }
    topics = {r["topic"]: r for r in report.table("by_topic").as_dicts()}
    assert {t: topics[t]["airtime_ms"] for t in ("II.2", "I.3", "II.8", "I.9")} == {
        "II.2": 35 * MIN,  # the programme's topic: every item
        "I.3": 10 * MIN,
        "II.8": (90 + 5) * MIN,
        "I.9": (181 * 30 + 2 + 20) * MIN,
    }
    assert (topics["I.3"]["sessions"], topics["I.3"]["plays_ok"]) == (1, 1)


async def test_on_time_tolerance_and_custom_period(sessions: Sessions) -> None:
    await half_year(sessions)
    strict = await activity_report(sessions, H1, TZ, on_time_ms=100)
    assert strict.summary["plays_on_time"] == 785 - 6  # the live slots' 500 ms is now late
    march = await activity_report(sessions, period_between(date(2024, 3, 1), date(2024, 3, 31)), TZ)
    # 31 mornings x 5 (C04 fails on day index 120 = 2024-03-30), 4 Mondays, 1 live, 1 emergency
    assert march.summary["sessions"] == 31 + 4 + 1 + 1
    assert march.summary["plays_requested"] == 31 * 5 + 4 * 2 + 1 + 5
    assert march.summary["plays_ok"] == 31 * 5 - 1 + 4 * 2 + 1 + 5
    assert march.summary["emergency_sessions"] == 1


# -------------------------------------------------------------------------------- inventory


async def test_inventory_of_the_example_commune(sessions: Sessions) -> None:
    await half_year(sessions)
    report = await inventory_report(sessions, H1, TZ)
    kinds = {r["kind"]: r for r in report.table("by_kind").as_dicts()}
    assert [
        (k, r["total"], r["working"], r["not_working"], r["retired"]) for k, r in kinds.items()
    ] == [
        ("ict", 12, 11, 1, 0),  # C06 faulty
        ("fm", 3, 2, 1, 1),  # L04 faulty, L03 retired (replaced by C11)
        ("wired", 2, 2, 0, 0),
        ("bridge", 2, 2, 0, 0),
    ]
    statuses = {(r["kind"], r["status"]): r["count"] for r in report.table("by_status").as_dicts()}
    assert statuses[("ict", "faulty")] == 1 and statuses[("fm", "retired")] == 1
    assert sum(statuses.values()) == 20
    assert report.table("installations").rows == []  # nothing installed 2023-12-01 .. 2024-05-30
    assert report.summary == {
        "clusters_total": 19,
        "clusters_working": 17,
        "new_station": 0,
        "replacement": 0,
        "extension": 0,
        "villages_total": 10,
        "villages_covered": 9,
        "villages_not_covered": 1,  # T05: its only cluster C06 is faulty
        "households_covered": 3114 - 351,
    }
    cover = {r["village"]: r for r in report.table("villages").as_dicts()}
    assert cover["T05"]["covered"] == "no" and cover["T05"]["not_working"] == "C06"
    assert cover["T07"]["clusters_working"] == "B02 W01 W02"  # wired line through its bridge


async def test_installations_by_kind_of_work(sessions: Sessions) -> None:
    await half_year(sessions)
    year = await inventory_report(sessions, parse_period("2024Y"), TZ)
    assert [r[0] for r in year.table("installations").rows] == ["C08", "C09", "C10"]
    assert (year.summary["extension"], year.summary["new_station"]) == (3, 0)
    later = await inventory_report(sessions, parse_period("2025Y"), TZ)
    rows = later.table("installations").as_dicts()
    assert [(r["cluster"], r["installed_as"], r["replaces"]) for r in rows] == [
        ("B02", "replacement", ""), ("C11", "replacement", "L03"),
    ]  # fmt: skip
    assert later.summary["replacement"] == 2


# ---------------------------------------------------------------------------------- exports


async def test_exports_carry_the_same_numbers(sessions: Sessions, tmp_path: Path) -> None:
    import csv
    import io

    from openpyxl import load_workbook

    await half_year(sessions)
    report = await activity_report(sessions, H1, TZ, on_time_ms=500)
    data = json.loads(render(report, "json"))
    assert data["period"] == {
        "label": "2024H1", "from": "2023-12-01", "to": "2024-05-30", "due": "2024-06-15",
        "timezone": "Asia/Ho_Chi_Minh",
    }  # fmt: skip
    assert data["summary"]["plays_ok"] == 966
    upstream = data["tables"]["by_source"][2]
    assert (upstream["source"], upstream["airtime_ms"]) == ("upstream", 5 * MIN)
    text = render(report, "csv", "vi").decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["Tổng hợp"] and rows[1] == ["Chỉ tiêu", "Giá trị"]
    assert ["Lượt phát thành công", "966"] in rows
    assert ["Tự sản xuất", "183", "182", str(181 * 30 * MIN + 2 * MIN)] == rows[
        rows.index(["Theo nguồn"]) + 2
    ][:4]
    english = render(report, "csv", "en").decode("utf-8-sig")
    assert "Successful plays,966" in english and "Source Information System" in english
    (tmp_path / "out").mkdir()
    path = tmp_path / "out" / "h1.xlsx"
    size = await write_report(report, "xlsx", path, "vi")
    assert size == path.stat().st_size and list(path.parent.iterdir()) == [path]  # no temp left
    book = load_workbook(path)
    assert book.sheetnames == [
        "Tổng hợp", "Theo chủ đề", "Theo nguồn", "Theo cụm loa", "Theo thôn", "Theo ngôn ngữ",
        "Theo ngày",
    ]  # fmt: skip
    summary = {r[0]: r[1] for r in book["Tổng hợp"].iter_rows(min_row=2, values_only=True)}
    assert (summary["Lượt phát yêu cầu"], summary["Tỷ lệ thành công"]) == (978, 0.9877)
    clusters = list(book["Theo cụm loa"].iter_rows(values_only=True))
    c05 = next(row for row in clusters if row[0] == "C05")
    assert clusters[0][:2] == ("Cụm loa", "Tên") and clusters[0][-1] == "Tỷ lệ thời gian trực tuyến"
    assert c05 == ("C05", "Cụm loa Bắc", "T04", 184, 183, 2, 0.9946, 90.62, 1.0)
    en = load_workbook(io.BytesIO(render(report, "xlsx", "en")))
    assert en.sheetnames[0] == "Summary" and en["By topic"]["A1"].value == "Topic code"


async def test_html_is_printable_with_inline_charts(sessions: Sessions) -> None:
    await half_year(sessions)
    report = await activity_report(sessions, H1, TZ)
    vi = render(report, "html", "vi").decode()
    assert vi.startswith('<!doctype html><html lang="vi">')
    assert vi.count("<svg") == 4 and vi.count("<title>") == 1 + 182  # page + one per day
    assert "Thời lượng theo chủ đề (giờ)" in vi and "Tỷ lệ phát thành công theo cụm loa" in vi
    assert "Tỷ lệ thời gian trực tuyến theo cụm loa" in vi
    assert "src=" not in vi and "<link" not in vi and "<script" not in vi  # no external assets
    assert ">II.1</text>" in vi and ">26</text>" in vi  # the relay's 26 hours
    en = render(report, "html", "en").decode()
    assert "Airtime by topic (hours)" in en
    success = _bars(en, "Play success ratio by cluster")
    assert success["C01"] == "99.5%" and "C12" not in success  # 209 / 210; C12 played nothing
    inventory = await inventory_report(sessions, H1, TZ)
    page = render(inventory, "html", "en").decode()
    assert page.count("<svg") == 1 and "Village coverage" in page


def _bars(page: str, title: str) -> dict[str, str]:
    """A bar chart's label -> shown value, from the page's inline SVG."""
    import re

    svg = page.split(f'aria-label="{title}"', 1)[1].split("</svg>", 1)[0]
    return dict(re.findall(r">([^<]+)</text><rect[^>]*/><text[^>]*>([^<]+)</text>", svg))


async def test_availability_chart_shows_the_inventory_uptime(sessions: Sessions) -> None:
    """The activity report's availability is the inventory's (status history), per cluster,
    and so is its chart; the play success ratio stays in its own column and chart."""
    await half_year(sessions)
    activity = await activity_report(sessions, H1, TZ)
    inventory = await inventory_report(sessions, H1, TZ)
    uptime = {
        r["cluster"]: r["availability"]
        for r in inventory.table("by_cluster").as_dicts()
        if r["availability"] is not None
    }
    assert {c: uptime[c] for c in ("C01", "C04", "C06", "C12", "B01")} == {
        "C01": 1.0, "C04": round(172 / 182, 4), "C06": 0.0, "C12": round(120 / 182, 4),
        "B01": 0.0,
    }  # fmt: skip
    rows = {r["cluster"]: r for r in activity.table("by_cluster").as_dicts()}
    assert {c: r["availability"] for c, r in rows.items()} == uptime
    assert (rows["C04"]["success_ratio"], rows["C04"]["availability"]) == (0.9565, 0.9451)
    for lang, title in (
        ("en", "Cluster availability (time online)"),
        ("vi", "Tỷ lệ thời gian trực tuyến theo cụm loa"),
    ):
        chart = _bars(render(activity, "html", lang).decode(), title)
        assert chart == {c: f"{a * 100:.1f}%" for c, a in uptime.items()}
        assert chart["C04"] == "94.5%" and chart["C12"] == "65.9%"


async def test_push_queues_one_message_per_report_version(sessions: Sessions) -> None:
    await half_year(sessions)
    report = await activity_report(sessions, H1, TZ)
    key, added = await push_report(sessions, report)
    again = await activity_report(sessions, H1, TZ)  # same numbers, another generated_at
    assert await push_report(sessions, again) == (key, False)
    assert added and key.startswith("report:activity:2024H1:")
    other = await push_report(sessions, await activity_report(sessions, H1, TZ, on_time_ms=100))
    assert other[1] and other[0] != key  # corrected numbers are a new version
    async with sessions() as db:
        rows = (await db.exec(select(OutboxMessage).order_by(OutboxMessage.id))).all()
    assert [(r.kind, r.key) for r in rows] == [("report", key), ("report", other[0])]
    assert rows[0].payload["summary"]["plays_ok"] == 966


def test_cli_writes_every_format(database_url: str, tmp_path: Path) -> None:
    import asyncio
    import csv

    from station.cli import main

    async def seed() -> None:
        await upgrade_async(database_url)
        engine = create_engine_for(database_url)
        try:
            await half_year(session_factory(engine))
        finally:
            await engine.dispose()

    asyncio.run(seed())
    config = tmp_path / "loaxa.yaml"
    config.write_text(f"database:\n  url: {json.dumps(database_url)}\n")
    for fmt in ("csv", "xlsx", "json", "html"):
        out = tmp_path / f"activity.{fmt}"
        argv = ["report", "activity", "--period", "2024H1", "--format", fmt, "-o", str(out)]
        assert main([*argv, "-c", str(config), "--lang", "en"]) == 0
        assert out.stat().st_size > 1000
    assert json.loads((tmp_path / "activity.json").read_text())["summary"]["plays_ok"] == 966
    inv = tmp_path / "inv.csv"
    argv = ["report", "inventory", "--from", "2024-01-01", "--to", "2024-12-31", "-o", str(inv)]
    assert main([*argv, "-c", str(config)]) == 0
    rows = list(csv.reader(inv.read_text(encoding="utf-8-sig").splitlines()))
    assert ["Mở rộng", "3"] in rows
    assert main(["report", "push", "--period", "2024H1", "-c", str(config)]) == 0
    assert main(["report", "activity", "--period", "2024H1", "--from", "2024-01-01",
                 "-c", str(config)]) == 2  # fmt: skip


def test_compliance_map_names_real_tests() -> None:
    import re

    doc = (Path(__file__).parent.parent / "docs" / "compliance.md").read_text()
    named: list[tuple[str, str]] = []
    # "`tests/a.py::x`, `::y`": a bare ::name belongs to the file named before it in the row
    for row in doc.splitlines():
        current = ""
        for file, name in re.findall(r"`(?:tests/(test_\w+\.py))?::(\w+)`", row):
            current = file or current
            named.append((current, name))
    assert len(named) > 40
    for file, name in named:
        source = (Path(__file__).parent / file).read_text()
        assert re.search(rf"^(async )?def {name}\(", source, re.M), (file, name)


def test_xlsx_cells_drop_control_characters_users_may_type() -> None:
    from openpyxl import Workbook

    from station.reports._export import _xlsx_safe

    sheet = Workbook().create_sheet("t")
    sheet.append([_xlsx_safe("Cụm\x01 loa\x1f"), _xlsx_safe(3)])  # would raise unsanitised
    assert [c.value for c in sheet[1]] == ["Cụm loa", 3]
