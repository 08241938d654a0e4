"""Bulletins from upstream [bản tin từ Hệ thống thông tin nguồn], by pull or webhook.

Each bulletin is validated, then: expired -> ignored and logged; an ``upstream_id`` already
stored -> ignored (duplicate); otherwise stored with its status decided by its class:
normal -> ``inbox`` (the operator decides), priority -> ``proposed`` (the operator sees its
clashes and places or declines it: ``_placement``), emergency -> handed to the station's
``EmergencyTrigger``, or ``confirm_needed`` first when ``upstream.emergency_confirm`` is ``always``.
Audio is downloaded (size-limited, content type checked) and ingested through the media
pipeline; a text-only bulletin waits for a recording. An emergency that goes on air, or whose
trigger fails, is reported upstream (``bulletin_status`` ``on_air`` / ``trigger_failed``:
``_bulletin_status``).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from pydantic import ValidationError
from sqlmodel import col, select

from station._services import StationError
from station.db import BulletinClass, BulletinStatus, UpstreamBulletin
from station.media import MediaError, MediaRejected

from ._bulletin_status import (
    SYSTEM_NAME,
    TRIGGER_FAILED,
    record_on_air,
    status_key,
    status_payload,
    unix_ms,
)
from ._outbox import Sessions, enqueue, log_exchange
from ._protocol import BulletinIn, UpstreamAdapter, UpstreamRejected, UpstreamUnavailable

log = logging.getLogger(__name__)

AUDIO_MAX_ATTEMPTS = 5
WAITING_NOTE = "emergency bulletin waiting for the emergency path (not built yet)"
TEXT_ONLY_NOTE = "text only: waiting for a recording"


class EmergencyTrigger(Protocol):
    """Airs an emergency bulletin now. Provided by the station (the Playout emergency path).

    Returns the id of the emergency session it started (reported upstream as ``on_air``), or
    None: nothing aired that the province can be told about (the fallback below)."""

    async def __call__(self, bulletin: UpstreamBulletin) -> str | None: ...


class RecordingEmergencyTrigger:
    """Fallback when the station sets no ``keys.EMERGENCY_TRIGGER``: it airs NOTHING. It logs
    an error and records on the bulletin (``note``) and in the exchange log that the bulletin
    is waiting for the emergency path."""

    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions
        self.waiting: list[str] = []

    async def __call__(self, bulletin: UpstreamBulletin) -> None:
        self.waiting.append(bulletin.upstream_id)
        log.error("%s: %s (%s)", WAITING_NOTE, bulletin.upstream_id, bulletin.title)
        async with self.sessions() as db:
            row = await db.get(UpstreamBulletin, bulletin.id)
            if row is not None:
                row.note = WAITING_NOTE
                db.add(row)
            log_exchange(db, "down", "emergency", "waiting", key=bulletin.upstream_id)
            await db.commit()


IngestAudio = Callable[[Path, str], Awaitable[int]]  # (file, title) -> media id


@dataclass
class InboxOutcome:
    stored: list[str]
    duplicates: list[str]
    expired: list[str]
    invalid: list[str]


class BulletinInbox:
    def __init__(
        self,
        sessions: Sessions,
        adapter: UpstreamAdapter | None,
        ingest: IngestAudio,
        trigger: EmergencyTrigger,
        *,
        confirm_emergency: bool = False,
        audio_max_bytes: int = 50 * 1024 * 1024,
        audio_types: Sequence[str] = ("audio/mpeg", "audio/ogg", "application/ogg"),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        wake: Callable[[], None] | None = None,
    ) -> None:
        self.sessions = sessions
        self.adapter = adapter
        self.ingest = ingest
        self.trigger = trigger
        self.confirm_emergency = confirm_emergency
        self.audio_max_bytes = audio_max_bytes
        self.audio_types = tuple(audio_types)
        self.clock = clock
        self.wake = wake  # the outbox sender's: a status message was queued

    async def receive(self, raw: Sequence[Any], via: str) -> InboxOutcome:
        """Store new bulletins (one transaction), then fetch audio and trigger emergencies."""
        outcome = InboxOutcome([], [], [], [])
        now = self.clock()
        new: list[UpstreamBulletin] = []
        async with self.sessions() as db:
            seen: set[str] = set()
            for item in raw:
                try:
                    bulletin = BulletinIn.model_validate(item)
                except ValidationError as exc:
                    ident = str(item.get("id", "?"))[:200] if isinstance(item, dict) else "?"
                    problem = "; ".join(
                        f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
                    )
                    log.warning("invalid upstream bulletin %s: %s", ident, problem)
                    log_exchange(db, "down", via, "rejected", key=ident, error=problem)
                    outcome.invalid.append(ident)
                    continue
                status = self._check(bulletin, now)
                if status is None:
                    query = select(UpstreamBulletin.id).where(
                        UpstreamBulletin.upstream_id == bulletin.id
                    )
                    if bulletin.id in seen or (await db.exec(query)).first() is not None:
                        status = "duplicate"
                if status is not None:
                    log.info("upstream bulletin %s ignored: %s", bulletin.id, status)
                    log_exchange(db, "down", via, status, key=bulletin.id)
                    (outcome.expired if status == "expired" else outcome.duplicates).append(
                        bulletin.id
                    )
                    continue
                seen.add(bulletin.id)
                row = self._row(bulletin, via, now)
                db.add(row)
                new.append(row)
                log_exchange(db, "down", via, "ok", key=bulletin.id)
                outcome.stored.append(bulletin.id)
            await db.commit()
        for row in new:
            await self._follow_up(row)
        return outcome

    def _check(self, bulletin: BulletinIn, now: datetime) -> str | None:
        if bulletin.valid_to is not None and bulletin.valid_to <= now:
            return "expired"
        return None

    def _row(self, bulletin: BulletinIn, via: str, now: datetime) -> UpstreamBulletin:
        klass = BulletinClass(bulletin.bulletin_class)
        status = {
            BulletinClass.NORMAL: BulletinStatus.INBOX,
            BulletinClass.PRIORITY: BulletinStatus.PROPOSED,
            BulletinClass.EMERGENCY: (
                BulletinStatus.CONFIRM_NEEDED
                if self.confirm_emergency
                else BulletinStatus.CONFIRMED
            ),
        }[klass]
        return UpstreamBulletin(
            upstream_id=bulletin.id,
            bulletin_class=klass,
            status=status,
            title=bulletin.title,
            text=bulletin.text,
            audio_url=bulletin.audio_url,
            villages=list(bulletin.villages),
            valid_from=bulletin.valid_from,
            valid_to=bulletin.valid_to,
            issued_at=bulletin.issued_at,
            issuer=bulletin.issuer,
            received_via=via,
            received_at=now,
        )

    async def _follow_up(self, row: UpstreamBulletin) -> None:
        if row.audio_url is not None:
            await self.fetch_audio(row)
        if row.status == BulletinStatus.CONFIRMED:
            await self._trigger(row)

    async def fetch_audio(self, row: UpstreamBulletin) -> None:
        """Download and ingest a bulletin's audio; transient failures are retried later."""
        if self.adapter is None or row.audio_url is None or row.id is None:
            return
        error, final, media_id = "", False, None
        with tempfile.TemporaryDirectory(prefix="loaxa-bulletin-") as tmp:
            dest = Path(tmp) / "audio"
            try:
                content_type = await self.adapter.download(
                    row.audio_url, dest, self.audio_max_bytes
                )
                if content_type not in self.audio_types:
                    raise UpstreamRejected(f"not audio: content type {content_type!r}")
                media_id = await self.ingest(dest, row.title or f"Bản tin {row.upstream_id}")
            except UpstreamUnavailable as exc:
                error = exc.detail
            except (UpstreamRejected, MediaRejected, MediaError, StationError) as exc:
                error, final = str(exc)[:500] or type(exc).__name__, True
        await self._record_audio(row, error, final, media_id)
        if error:
            log.warning("audio of bulletin %s not ingested: %s", row.upstream_id, error)

    async def _record_audio(
        self, row: UpstreamBulletin, error: str, final: bool, media_id: int | None
    ) -> None:
        """Count one audio attempt: an UPDATE that adds to ``audio_attempts`` in SQL (a
        read-add-write could lose a concurrent attempt's count); a final failure lifts it to
        ``AUDIO_MAX_ATTEMPTS`` so the tick stops retrying. ``row`` gets the stored outcome."""
        counted = col(UpstreamBulletin.audio_attempts) + 1
        values: dict[str, Any] = {"audio_error": error, "audio_attempts": counted}
        if media_id is not None:
            values["media_id"] = media_id
        elif final:
            values["audio_attempts"] = sa.case(
                (counted < AUDIO_MAX_ATTEMPTS, AUDIO_MAX_ATTEMPTS), else_=counted
            )
        async with self.sessions() as db:
            where = col(UpstreamBulletin.id) == row.id
            changed = await db.exec(sa.update(UpstreamBulletin).where(where).values(values))
            if changed.rowcount == 0:
                return  # deleted meanwhile
            query = select(UpstreamBulletin.audio_attempts, UpstreamBulletin.media_id).where(
                where
            )  # the row is ours (write-locked) until commit
            attempt, stored_media = (await db.exec(query)).one()
            status = "ok" if media_id is not None else ("rejected" if final else "retry")
            log_exchange(
                db,
                "down",
                "audio",
                status,
                key=row.upstream_id,
                attempt=attempt,
                error=error,
            )
            await db.commit()
        row.media_id, row.audio_error = stored_media, error

    async def _trigger(self, row: UpstreamBulletin) -> None:
        """Hand a confirmed emergency to the trigger: one failure boundary per bulletin."""
        if row.media_id is None and row.audio_url is None:
            await self._note(row, TEXT_ONLY_NOTE, "waiting")  # stays confirmed until recorded
            return
        async with self.sessions() as db:
            # One conditional UPDATE: the inbox tick and an operator's confirmation through
            # the API may both get here for the same bulletin; only one moves it and airs it.
            where = (col(UpstreamBulletin.id) == row.id) & (
                col(UpstreamBulletin.status) == BulletinStatus.CONFIRMED
            )
            moved = await db.exec(
                sa.update(UpstreamBulletin).where(where).values(status=BulletinStatus.TRIGGERED)
            )
            if moved.rowcount == 0:
                return
            await db.commit()
            stored = await db.get(UpstreamBulletin, row.id, populate_existing=True)
            if stored is None:
                return
        try:
            emergency_id = await self._call_trigger(stored)
        except Exception as exc:  # contained here: the inbox, pull and webhook carry on
            log.exception("emergency trigger failed for bulletin %s", row.upstream_id)
            detail = f"emergency trigger failed: {exc}"[:500]
            at = self.clock()
            report = (
                status_key(stored.upstream_id, TRIGGER_FAILED, unix_ms(at)),
                status_payload(
                    stored.upstream_id,
                    TRIGGER_FAILED,
                    at,
                    SYSTEM_NAME,
                    {"error": detail, "status": str(BulletinStatus.CONFIRM_NEEDED)},
                ),
            )
            await self._note(stored, detail, "failed", BulletinStatus.CONFIRM_NEEDED, report)
            return
        if emergency_id is None:
            return  # nothing went on air (no emergency path): nothing to report upstream
        try:
            reported = await record_on_air(self.sessions, stored, emergency_id, self.clock())
        except Exception:  # it is on air all the same: the inbox, pull and webhook carry on
            log.exception(
                "emergency %s of bulletin %s is on air but could not be reported upstream",
                emergency_id,
                row.upstream_id,
            )
            return
        if reported:
            log.info("emergency bulletin %s on air: %s", stored.upstream_id, emergency_id)
            self._wake()

    async def _call_trigger(self, bulletin: UpstreamBulletin) -> str | None:
        """The trigger's emergency session id, if it returned one."""
        result = await self.trigger(bulletin)
        return result if isinstance(result, str) and result else None

    def _wake(self) -> None:
        if self.wake is not None:
            self.wake()

    async def _note(
        self,
        row: UpstreamBulletin,
        note: str,
        outcome: str,
        status: BulletinStatus | None = None,
        report: tuple[str, dict[str, Any]] | None = None,
    ) -> None:
        """Write ``note`` (and ``status``) on the bulletin with an exchange entry; ``report``
        (key, payload) is a ``bulletin_status`` message queued in the same transaction."""
        async with self.sessions() as db:
            stored = await db.get(UpstreamBulletin, row.id)
            if stored is None or (stored.note == note and status is None):
                return  # said once is enough (the tick comes back every pull interval)
            stored.note = note
            if status is not None:
                stored.status = status
            db.add(stored)
            log_exchange(db, "down", "emergency", outcome, key=row.upstream_id, error=note)
            if report is not None:
                await enqueue(db, "bulletin_status", *report)
            await db.commit()
        if report is not None:
            self._wake()

    async def trigger_now(self, bulletin_id: int) -> UpstreamBulletin | None:
        """Hand a ``confirmed`` emergency to the trigger now (an operator just confirmed it or
        attached its recording) instead of at the next tick; returns the row afterwards."""
        async with self.sessions() as db:
            row = await db.get(UpstreamBulletin, bulletin_id)
        if row is None or row.status != BulletinStatus.CONFIRMED:
            return row
        await self._trigger(row)
        async with self.sessions() as db:
            return await db.get(UpstreamBulletin, bulletin_id)

    async def tick(self) -> None:
        """Retry audio that failed transiently; trigger emergencies confirmed by an operator."""
        async with self.sessions() as db:
            audio = (
                await db.exec(
                    select(UpstreamBulletin).where(
                        col(UpstreamBulletin.audio_url).is_not(None),
                        col(UpstreamBulletin.media_id).is_(None),
                        UpstreamBulletin.audio_attempts < AUDIO_MAX_ATTEMPTS,
                    )
                )
            ).all()
            confirmed = (
                await db.exec(
                    select(UpstreamBulletin).where(
                        UpstreamBulletin.status == BulletinStatus.CONFIRMED,
                        col(UpstreamBulletin.media_id).is_not(None)
                        | col(UpstreamBulletin.audio_url).is_not(None),
                    )
                )
            ).all()
        for row in audio:
            await self.fetch_audio(row)
        for row in confirmed:
            await self._trigger(row)
