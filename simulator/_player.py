"""Play sessions of one cluster: fetch the items, wait for ``start_at``, play, report events.

Sessions are independent tasks, so a station may schedule several ahead of time. When one starts
while another plays, the higher (or equal) priority wins; the loser ends with
``playback_interrupted`` (``detail="preempted"``, or ``code="busy"`` for a newcomer that lost).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import aiohttp

from devices.protocol import Event, EventType, PlayCommand

from ._media import DownloadError, MediaCache
from ._records import ClusterCounters, Outcome, PlayRecord

log = logging.getLogger(__name__)

_RECORDS = 1000
SessionState = Literal["fetching", "waiting", "playing", "done"]


@dataclass(eq=False)
class _Session:
    cmd: PlayCommand
    record: PlayRecord
    task: asyncio.Task[None] | None = None
    state: SessionState = "fetching"
    play_t0: float | None = None  # loop time playback began

    @property
    def total_ms(self) -> int:
        return sum(item.duration_ms for item in self.cmd.items)


class Player:
    """The audio side of a cluster. ``now``/``offset_ms`` are the cluster's (skewable) clock."""

    def __init__(
        self,
        cluster_id: str,
        *,
        http: aiohttp.ClientSession,
        emit: Callable[[Event], None],
        now: Callable[[], datetime],
        offset_ms: Callable[[], int],
        counters: ClusterCounters,
        speed: float = 1.0,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._cluster_id = cluster_id
        self._http = http
        self._emit = emit
        self._now = now
        self._offset_ms = offset_ms
        self._counters = counters
        self._speed = speed
        self.cache = MediaCache()
        self.records: deque[PlayRecord] = deque(maxlen=_RECORDS)
        self._sessions: dict[str, _Session] = {}
        self._playing: _Session | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # session tasks, until they end

    @property
    def playing(self) -> str | None:
        return self._playing.cmd.session_id if self._playing else None

    def state(self) -> tuple[Literal["idle", "waiting", "playing", "fetching"], str | None]:
        """Heartbeat state and the session it is about."""
        if self._playing is not None:
            return "playing", self._playing.cmd.session_id
        for wanted in ("fetching", "waiting"):
            for session in self._sessions.values():
                if session.state == wanted:
                    return wanted, session.cmd.session_id
        return "idle", None

    def schedule(self, cmd: PlayCommand) -> bool:
        """Start a session task; False if this session is already known."""
        if cmd.session_id in self._sessions:
            return False
        session = _Session(cmd, PlayRecord(cmd.session_id, start_at=cmd.start_at))
        self.records.append(session.record)
        self._sessions[cmd.session_id] = session
        session.task = asyncio.get_running_loop().create_task(
            self._run(session), name=f"play-{self._cluster_id}-{cmd.session_id}"
        )
        self._tasks.add(session.task)
        session.task.add_done_callback(self._tasks.discard)
        return True

    def stop(self, session_id: str | None) -> None:
        """Stop that session (waiting or playing), or whatever plays when None."""
        target = self._sessions.get(session_id) if session_id else self._playing
        if target is not None:
            self._interrupt(target, "stopped")

    def interrupt_all(self, outcome: Outcome) -> None:
        """End every session and report it (deliberate shutdown)."""
        for session in list(self._sessions.values()):
            self._interrupt(session, outcome)

    def vanish(self) -> None:
        """Power loss: sessions and downloads stop without a word."""
        for session in list(self._sessions.values()):
            self._cancel(session, "lost")
        self.cache.cancel()

    async def aclose(self) -> None:
        for session in list(self._sessions.values()):
            self._cancel(session, "shutdown")
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.cache.aclose()

    # -- one session ---------------------------------------------------------------------------

    async def _run(self, session: _Session) -> None:
        """Fetch, wait for ``start_at``, play. One failure boundary per session."""
        try:
            if await self._fetch(session):
                await self._sleep_until(session.cmd.start_at)
                await self._play(session)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: session %s failed", self._cluster_id, session.cmd.session_id)
        finally:
            self._forget(session)

    async def _fetch(self, session: _Session) -> bool:
        record = session.record
        try:
            for item in session.cmd.items:
                record.bytes_downloaded += await self.cache.ensure(self._http, item)
        except DownloadError as exc:
            record.bytes_downloaded += exc.fetched
            record.outcome = "download_failed"
            self._counters.downloads_failed += 1
            self._event(session, "download_failed", code=exc.code, detail=exc.detail[:256])
            return False
        session.state = "waiting"
        return True

    async def _sleep_until(self, when: datetime) -> None:
        """Sleep on the loop clock, re-reading the cluster clock before the last stretch."""
        # a deadline on a clock that may be skewed while we wait, not a flag being polled
        while (delay := (when - self._now()).total_seconds()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(min(delay - 2, 30) if delay > 5 else delay)

    async def _play(self, session: _Session) -> None:
        cmd, record = session.cmd, session.record
        total_ms = session.total_ms
        if (self._now() - cmd.start_at).total_seconds() > total_ms / 1000:
            self._finish(session, "late", "playback_interrupted", played_ms=0, detail="late")
            return
        current = self._playing
        if current is not None:
            if cmd.priority < current.cmd.priority:
                self._finish(session, "busy", "playback_interrupted", played_ms=0, code="busy")
                return
            self._interrupt(current, "preempted")
        self._playing = session
        session.state = "playing"
        session.play_t0 = asyncio.get_running_loop().time()
        record.started_at = self._now()
        record.outcome = "playing"
        self._counters.plays_started += 1
        self._event(
            session,
            "playback_started",
            start_at=cmd.start_at,
            started_at=record.started_at,
            clock_offset_ms=self._offset_ms(),
        )
        await asyncio.sleep(total_ms / 1000 / self._speed)
        record.finished_at = self._now()
        self._finish(
            session,
            "finished",
            "playback_finished",
            started_at=record.started_at,
            finished_at=record.finished_at,
            played_ms=total_ms,
        )

    def _event(self, session: _Session, type_: EventType, **fields: object) -> None:
        self._emit(
            Event.model_validate(
                {
                    "cluster_id": self._cluster_id,
                    "type": type_,
                    "session_id": session.cmd.session_id,
                    "ts": self._now(),
                    "bytes_downloaded": session.record.bytes_downloaded,
                    **fields,
                }
            )
        )

    def _finish(
        self,
        session: _Session,
        outcome: Outcome,
        type_: EventType,
        *,
        played_ms: int,
        **fields: object,
    ) -> None:
        session.record.outcome = outcome
        session.record.played_ms = played_ms
        if outcome == "finished":
            self._counters.plays_finished += 1
        else:
            self._counters.plays_interrupted += 1
        self._event(
            session, type_, played_ms=played_ms, clock_offset_ms=self._offset_ms(), **fields
        )

    def _played_ms(self, session: _Session) -> int:
        if session.play_t0 is None:
            return 0
        elapsed = asyncio.get_running_loop().time() - session.play_t0
        return min(session.total_ms, int(elapsed * self._speed * 1000))

    def _interrupt(self, session: _Session, outcome: Outcome) -> None:
        """End a session now and say so (stop, preemption, shutdown)."""
        if session.state == "done":
            return
        fields: dict[str, object] = {"detail": outcome}
        if session.record.started_at is not None:
            session.record.finished_at = self._now()
            fields["started_at"] = session.record.started_at
            fields["finished_at"] = session.record.finished_at
        played = self._played_ms(session)
        self._finish(session, outcome, "playback_interrupted", played_ms=played, **fields)
        self._cancel(session, outcome)

    def _cancel(self, session: _Session, outcome: Outcome) -> None:
        if session.record.outcome in ("pending", "playing"):
            session.record.outcome = outcome
        self._forget(session)
        if session.task is not None:
            session.task.cancel()

    def _forget(self, session: _Session) -> None:
        session.state = "done"
        if self._playing is session:
            self._playing = None
        if self._sessions.get(session.cmd.session_id) is session:
            del self._sessions[session.cmd.session_id]
