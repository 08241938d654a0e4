"""Wiring: the ``upstream`` cleanup_ctx (adapter, outbox sender, collector, puller, inbox)
and the webhook view. Tasks are held here and cancelled on shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy.exc import IntegrityError, OperationalError

from station import _keys as keys
from station.config import Settings, UpstreamSection
from station.db import UpstreamBulletin, UpstreamCursor

from ._bulletin_status import collect_aired
from ._collect import collect_cluster_status, collect_plays, collect_schedules
from ._http_client import HttpUpstream
from ._inbox import BulletinInbox, EmergencyTrigger, RecordingEmergencyTrigger
from ._outbox import OutboxSender, Sessions, log_exchange
from ._placement import auto_place_due
from ._protocol import UpstreamAdapter, UpstreamRejected, UpstreamUnavailable
from ._webhook import (
    MAX_BODY,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureError,
    WebhookGuard,
    parse_bulletins,
    problem_for,
)

log = logging.getLogger(__name__)

BULLETIN_CURSOR = "bulletins"
AUTO_PLACE_CHECK_S = 60.0  # how often unattended priority bulletins are looked for


@dataclass
class Upstream:
    """The running adapter side of a station (``app[keys.UPSTREAM]``)."""

    settings: UpstreamSection
    sessions: Sessions
    adapter: UpstreamAdapter | None
    sender: OutboxSender | None
    inbox: BulletinInbox
    guard: WebhookGuard | None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    tz: tzinfo = UTC  # the station's time zone: report periods are local days
    on_time_ms: int = 500
    station_settings: Settings | None = None  # placement needs quotas, playout, time zone
    # Called after the station placed bulletins itself (the app: reconcile the dispatcher).
    on_scheduled: Callable[[], Awaitable[None]] | None = None

    async def auto_place(self, now: datetime | None = None) -> list[UpstreamBulletin]:
        """Place the priority bulletins no operator decided on in time (``_placement``)."""
        if self.station_settings is None:
            return []
        placed = await auto_place_due(self.sessions, self.station_settings, now)
        for row in placed:
            log.warning(
                "priority bulletin %s placed by the station: no operator decided within %s min",
                row.upstream_id,
                self.settings.auto_place_priority_after_min,
            )
        if placed:
            if self.on_scheduled is not None:
                await self.on_scheduled()
            if self.sender is not None:
                self.sender.wake()
        return placed

    async def _auto_place_tick(self) -> None:
        try:
            await self.auto_place()
        except (OperationalError, IntegrityError):
            raise  # _every logs these and tries again
        except Exception:  # one bad bulletin must not stop the others' placement for good
            log.exception("upstream auto-placement failed; next run later")

    async def push_reports(self, now: datetime | None = None) -> list[str]:
        """Queue the reports due by the cadence (``upstream.push``); returns the keys queued."""
        from station.reports._cadence import push_due_reports  # reports import this package

        keys_ = await push_due_reports(
            self.sessions,
            self.settings.push,
            self.tz,
            now or datetime.now(UTC),
            on_time_ms=self.on_time_ms,
        )
        if keys_ and self.sender is not None:
            self.sender.wake()
        return keys_

    async def _reports_tick(self) -> None:
        try:
            await self.push_reports()
        except (OperationalError, IntegrityError):
            raise  # _every logs these and tries again
        except Exception:  # a report that cannot be built must not stop the cadence
            log.exception("upstream reports: a due report was not queued; next check later")

    async def collect(self, now: datetime | None = None) -> int:
        """Run every collector once; returns the rows added. Besides schedules and proof of
        play: ``aired`` for the emergency bulletins whose session is over (once each)."""
        now = now or datetime.now(UTC)
        window = timedelta(hours=self.settings.collect_window_h)
        after = timedelta(seconds=self.settings.play_report_after_s)
        added = await collect_schedules(self.sessions, now, window)
        added += await collect_plays(self.sessions, now, window, after)
        added += await collect_aired(self.sessions, now, window, after)
        if self.sender is not None:
            self.sender.wake()
        return added

    async def collect_status(self, now: datetime | None = None) -> int:
        added = await collect_cluster_status(
            self.sessions, now or datetime.now(UTC), self.settings.status_interval_s
        )
        if self.sender is not None:
            self.sender.wake()
        return added

    async def pull(self) -> int:
        """One pull of the bulletin feed; the cursor moves only after bulletins are stored."""
        if self.adapter is None:
            return 0
        async with self.sessions() as db:
            row = await db.get(UpstreamCursor, BULLETIN_CURSOR)
            cursor = row.value if row is not None else ""
        try:
            page = await self.adapter.pull_bulletins(cursor)
        except (UpstreamUnavailable, UpstreamRejected) as exc:
            async with self.sessions() as db:
                status = "retry" if isinstance(exc, UpstreamUnavailable) else "failed"
                log_exchange(
                    db,
                    "down",
                    "pull",
                    status,
                    key=cursor,
                    http_status=exc.http_status,
                    error=exc.detail,
                )
                await db.commit()
            log.warning("bulletin pull failed: %s", exc.detail)
            return 0
        outcome = await self.inbox.receive(page.bulletins, "pull")
        async with self.sessions() as db:
            row = await db.get(UpstreamCursor, BULLETIN_CURSOR)
            row = row or UpstreamCursor(name=BULLETIN_CURSOR)
            row.value, row.updated_at = page.cursor, datetime.now(UTC)
            db.add(row)
            await db.commit()
        return len(outcome.stored)


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("upstream task %s stopped", task.get_name(), exc_info=task.exception())


async def _every(period_s: float, name: str, body: Callable[[], Coroutine[Any, Any, Any]]) -> None:
    while True:
        try:
            await body()
        except (OperationalError, IntegrityError) as exc:  # database busy / a racing writer
            log.warning("upstream %s: database error, next run in %.0f s: %s", name, period_s, exc)
        await asyncio.sleep(period_s)


def _ingest_for(app: web.Application) -> Callable[[Path, str], Coroutine[Any, Any, int]]:
    async def ingest(source: Path, title: str) -> int:
        from station._services import add_media

        item, _ = await add_media(
            app[keys.SESSIONS],
            app[keys.MEDIA_STORE],
            app[keys.MEDIA_WORKER],
            app[keys.SETTINGS],
            source,
            title[:200],
        )
        assert item.id is not None
        return item.id

    return ingest


def build_upstream(app: web.Application, adapter: UpstreamAdapter | None) -> Upstream:
    settings = app[keys.SETTINGS]
    cfg = settings.upstream
    sessions = app[keys.SESSIONS]
    trigger: EmergencyTrigger = app.get(keys.EMERGENCY_TRIGGER) or RecordingEmergencyTrigger(
        sessions
    )
    sender = None
    if adapter is not None:
        sender = OutboxSender(
            sessions,
            adapter,
            settings.station.id,
            retry_min_s=cfg.retry_min_s,
            retry_max_s=cfg.retry_max_s,
            idle_poll_s=min(2.0, cfg.retry_min_s),
        )
    inbox = BulletinInbox(
        sessions,
        adapter,
        _ingest_for(app),
        trigger,
        confirm_emergency=cfg.emergency_confirm == "always",
        audio_max_bytes=cfg.audio_max_mb * 1024 * 1024,
        audio_types=cfg.audio_content_types,
        wake=sender.wake if sender is not None else None,
    )
    guard = None
    if cfg.webhook_secret is not None:
        guard = WebhookGuard(cfg.webhook_secret.get_secret_value(), cfg.webhook_tolerance_s)

    async def reconcile() -> None:
        dispatcher = app.get(keys.DISPATCHER)
        if dispatcher is not None:
            await dispatcher.reconcile()

    return Upstream(
        cfg,
        sessions,
        adapter,
        sender,
        inbox,
        guard,
        tz=settings.station.tzinfo,
        on_time_ms=settings.metrics.on_time_ms,
        station_settings=settings,
        on_scheduled=reconcile,
    )


async def upstream_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: runs only what is configured (``upstream.enabled``, a webhook secret)."""
    settings = app[keys.SETTINGS]
    cfg = settings.upstream
    async with contextlib.AsyncExitStack() as stack:
        adapter: HttpUpstream | None = None
        if cfg.enabled:
            token = cfg.token.get_secret_value() if cfg.token is not None else ""
            adapter = await stack.enter_async_context(
                HttpUpstream(
                    cfg.base_url,
                    settings.station.id,
                    token,
                    timeout_s=cfg.timeout_s,
                    ca_file=cfg.ca_file,
                )
            )
        upstream = build_upstream(app, adapter)
        app[keys.UPSTREAM] = upstream
        if upstream.sender is not None:
            upstream.tasks += [
                asyncio.create_task(upstream.sender.run(), name="upstream-outbox"),
                asyncio.create_task(
                    _every(cfg.push_interval_s, "collect", upstream.collect),
                    name="upstream-collect",
                ),
                asyncio.create_task(
                    _every(cfg.status_interval_s, "status", upstream.collect_status),
                    name="upstream-status",
                ),
                asyncio.create_task(
                    _every(cfg.push.check_interval_s, "reports", upstream._reports_tick),
                    name="upstream-reports",
                ),
            ]
            if cfg.pull:
                upstream.tasks.append(
                    asyncio.create_task(
                        _every(cfg.pull_interval_s, "pull", upstream.pull), name="upstream-pull"
                    )
                )
        upstream.tasks.append(
            asyncio.create_task(
                _every(cfg.pull_interval_s, "inbox", upstream.inbox.tick), name="upstream-inbox"
            )
        )
        if cfg.auto_place_priority_after_min:
            upstream.tasks.append(
                asyncio.create_task(
                    _every(AUTO_PLACE_CHECK_S, "auto-place", upstream._auto_place_tick),
                    name="upstream-auto-place",
                )
            )
        for task in upstream.tasks:
            task.add_done_callback(_log_crash)
        try:
            yield
        finally:
            for task in upstream.tasks:
                task.cancel()
            await asyncio.gather(*upstream.tasks, return_exceptions=True)


async def _read_limited(request: web.Request) -> bytes:
    too_large = SignatureError(413, f"body over {MAX_BODY} bytes")
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > MAX_BODY:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def webhook(request: web.Request) -> web.Response:
    upstream = request.app.get(keys.UPSTREAM)
    if upstream is None or upstream.guard is None:
        return problem_for(SignatureError(401, "webhook not configured (upstream.webhook_secret)"))
    try:
        body = await _read_limited(request)
        upstream.guard.check(
            request.headers.get(TIMESTAMP_HEADER), request.headers.get(SIGNATURE_HEADER), body
        )
        raw = parse_bulletins(body)
    except SignatureError as exc:
        async with upstream.sessions() as db:
            log_exchange(
                db, "down", "webhook", "rejected", http_status=exc.status, error=exc.detail
            )
            await db.commit()
        log.warning("upstream webhook refused (%d): %s", exc.status, exc.detail)
        return problem_for(exc)
    outcome = await upstream.inbox.receive(raw, "webhook")
    return web.json_response(
        {
            "stored": outcome.stored,
            "duplicates": outcome.duplicates,
            "expired": outcome.expired,
            "invalid": outcome.invalid,
        }
    )
