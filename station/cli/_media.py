"""``loaxa media ...``: the media library [thư viện âm thanh] and what delivery cost."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from station.config import Settings

from ._common import Sessions, Subparsers, add_command, add_group, with_station_db
from ._operator import add_operator, with_operator

if TYPE_CHECKING:
    from station._audit import Actor
    from station.db import MediaItem


class ProgressBar:
    """``[#####-----]  42.0%  00:12`` on one rewritten line; plain lines when not a terminal."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self.started = time.monotonic()
        self.tty = stream.isatty()
        self._last_step = -1

    def __call__(self, fraction: float) -> None:
        elapsed = time.monotonic() - self.started
        filled = int(fraction * self.width)
        line = f"[{'#' * filled:-<{self.width}}] {fraction * 100:5.1f}%  {elapsed:5.1f} s"
        if self.tty:
            print(f"\r{line}", end="", file=self.stream, flush=True)
            return
        step = int(fraction * 10)  # a log file gets a line per 10 %
        if step > self._last_step:
            self._last_step = step
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self.tty:
            print(file=self.stream, flush=True)


def _topics(values: list[str]) -> list[str]:
    return [code.strip() for value in values for code in value.split(",") if code.strip()]


def _lufs(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def cmd_add(args: argparse.Namespace) -> int:
    from station._media_library import add_media
    from station.media import MediaStore, MediaWorker, ffmpeg_executable

    async def body(sessions: Sessions, settings: Settings, who: Actor) -> int:
        from station._audit import record_action

        source = Path(args.file)
        if not await asyncio.to_thread(source.is_file):
            raise FileNotFoundError(f"no such file: {source}")
        store = MediaStore(settings.media.dir)
        worker = MediaWorker(ffmpeg_executable(settings.media.ffmpeg), settings.media.workers)
        bar = ProgressBar(sys.stderr)
        try:
            item, created = await _added(sessions, who, source, add_media(
                sessions, store, worker, settings, source, args.title or source.stem, bar,
                topics=_topics(args.topic), language=args.language, uploader=args.uploader,
            ))  # fmt: skip
        finally:
            bar.close()
        if created:  # an identical upload stores nothing: nothing to record
            details = {"title": item.title, "file": source.name, "sha256": item.sha256}
            await record_action(sessions, who, "media.upload", f"media:{item.id}", details)
        word = "added" if created else "already in the library"
        print(
            f"media {item.id} {word}: {item.title} ({item.duration_ms / 1000:.1f} s, "
            f"{_lufs(item.loudness_in_lufs)} -> {_lufs(item.loudness_out_lufs)} LUFS, "
            f"sha256 {item.sha256})"
        )
        return 0

    return with_operator(args, "media:write", body)


async def _added(
    sessions: Sessions, who: Actor, source: Path, adding: Awaitable[tuple[MediaItem, bool]]
) -> tuple[MediaItem, bool]:
    """A refused file is recorded as the API records it (``media.rejected`` with the reason)."""
    from station._audit import record_action
    from station.media import MediaRejected

    try:
        return await adding
    except MediaRejected as exc:
        details = {"reason": exc.reason, "file": source.name}
        await record_action(sessions, who, "media.rejected", source.name[:100], details)
        raise


def cmd_list(args: argparse.Namespace) -> int:
    from station._media_library import list_media

    async def body(sessions: Sessions, _settings: Settings) -> int:
        entries = await list_media(sessions, topic=args.topic or None, query=args.search or None)
        print(f"{'id':>4}  {'duration':>8}  {'lang':<5} {'codecs':<9} {'topics':<14} title")
        for e in entries:
            m = e.item
            codecs = "+".join(r.codec for r in e.renditions) or m.codec
            print(
                f"{m.id:>4}  {_clock(m.duration_ms):>8}  {m.language:<5} {codecs:<9} "
                f"{','.join(e.topics) or '-':<14} {m.title}"
            )
        print(f"{len(entries)} item(s)", file=sys.stderr)
        return 0

    return with_station_db(args, body)


def _clock(ms: int) -> str:
    seconds = ms // 1000
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def cmd_show(args: argparse.Namespace) -> int:
    from station._media_library import get_media

    async def body(sessions: Sessions, _settings: Settings) -> int:
        e = await get_media(sessions, args.id)
        m = e.item
        rows = [
            ("id", str(m.id)),
            ("title", m.title),
            ("duration", f"{_clock(m.duration_ms)} ({m.duration_ms} ms)"),
            ("language", m.language),
            ("topics", ", ".join(e.topics) or "-"),
            ("uploader", m.uploader or "-"),
            ("loudness", f"{_lufs(m.loudness_in_lufs)} -> {_lufs(m.loudness_out_lufs)} LUFS"),
            ("true peak", "-" if m.true_peak_out_db is None else f"{m.true_peak_out_db:.1f} dBTP"),
            ("source sha256", m.source_sha256),
            ("added", m.created_at.isoformat(timespec="seconds")),
        ]
        for key, value in rows:
            print(f"{key:<14} {value}")
        for r in e.renditions:
            print(f"{'rendition':<14} {r.codec:<5} {r.bitrate_kbps:>3} kbps {r.size_bytes:>10} B  "
                  f"{r.sha256}")  # fmt: skip
        return 0

    return with_station_db(args, body)


def cmd_delete(args: argparse.Namespace) -> int:
    from station._media_library import delete_media
    from station.media import MediaStore

    async def body(sessions: Sessions, settings: Settings, who: Actor) -> int:
        from station._audit import record_action

        entry = await delete_media(sessions, MediaStore(settings.media.dir), args.id)
        files = len(entry.renditions)
        details = {"title": entry.item.title, "sha256": entry.item.sha256}
        await record_action(sessions, who, "media.delete", f"media:{args.id}", details)
        print(f"media {args.id} deleted: {entry.item.title} ({files} rendition file(s))")
        return 0

    return with_operator(args, "media:write", body)


def cmd_usage(args: argparse.Namespace) -> int:
    from station._media_library import usage

    async def body(sessions: Sessions, settings: Settings) -> int:
        since = None
        if args.days:
            since = datetime.now(settings.station.tzinfo).date() - timedelta(days=args.days - 1)
        rows = await usage(sessions, since=since, clusters=args.cluster or ())
        print(f"{'day':<10}  {'cluster':<16} {'requests':>8} {'bytes':>14}")
        totals: dict[str, int] = {}
        for r in rows:
            totals[r.cluster_id] = totals.get(r.cluster_id, 0) + r.bytes
            print(f"{r.day.isoformat():<10}  {r.cluster_id:<16} {r.requests:>8} {r.bytes:>14,}")
        for cluster_id, total in sorted(totals.items()):
            print(f"{'total':<10}  {cluster_id:<16} {'':>8} {total:>14,}")
        return 0

    return with_station_db(args, body)


def cmd_topics(args: argparse.Namespace) -> int:
    from station._media_library import list_topics

    async def body(sessions: Sessions, _settings: Settings) -> int:
        for t in await list_topics(sessions, include_inactive=args.all):
            retired = "" if t.active else "  (retired)"
            print(f"{t.code:<6} {t.title_vi}{retired}")
        return 0

    return with_station_db(args, body)


def register(sub: Subparsers) -> None:
    media = add_group(sub, "media", "media library [thư viện âm thanh]")
    p = add_command(media, "add", cmd_add, "validate, normalise, encode and store an audio file")
    p.add_argument("file")
    p.add_argument("--title", default="", help="default: the file name")
    p.add_argument(
        "--topic",
        action="append",
        default=[],
        metavar="CODE",
        help="topic code from `loaxa media topics`, e.g. I.9 (repeat or comma-separate)",
    )
    p.add_argument("--language", default="vi", help="language code: vi, ctu (Cơ Tu), ...")
    p.add_argument("--uploader", default="", help="who brought the recording")
    add_operator(p)

    p = add_command(media, "list", cmd_list, "list the library")
    p.add_argument("--topic", default="", metavar="CODE", help="only items with this topic")
    p.add_argument("--search", default="", help="title contains (case-insensitive)")

    p = add_command(media, "show", cmd_show, "one item: metadata, loudness, renditions")
    p.add_argument("id", type=int)

    what = "delete an item and its files (refused while a programme uses it)"
    p = add_command(media, "delete", cmd_delete, what)
    p.add_argument("id", type=int)
    add_operator(p)

    p = add_command(media, "usage", cmd_usage, "media bytes served per cluster per day")
    p.add_argument("--days", type=int, default=0, help="only the last N days (station time)")
    p.add_argument("--cluster", action="append", default=[], help="only these clusters")

    p = add_command(media, "topics", cmd_topics, "the topic catalogue (Phụ lục 01)")
    p.add_argument("--all", action="store_true", help="include retired topics")
