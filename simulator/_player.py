"""The audio side of one cluster: sessions, priorities, prefetch, the media cache (protocol §6).

Sessions are independent tasks, so a station may send several ahead of time (``play`` commands
or a ``schedule`` list); they start on the cluster's clock whether or not the MQTT link is up
(events wait for the link). When one is due while another plays, the higher priority wins, then
the higher ``rank``, and a tie goes to the newcomer (``wins``); the loser that was playing ends
``playback_interrupted`` (``interrupted_by`` the winner), a newcomer that loses ends at once
with ``code="busy"``. A
session id plays at most once: a finished one is remembered, one that ended otherwise may be
sent again (to resume it with ``offset_ms``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from datetime import datetime
from typing import Any, Literal

import aiohttp

from devices.protocol import Event, EventType, MediaRef, PowerTarget

from ._media import DownloadError, MediaCache, consume_stream
from ._records import ClusterCounters, Outcome, PlayRecord
from ._session import Plan, Session

log = logging.getLogger(__name__)

# Subscribes to an MQTT live topic and feeds each payload to the callback until cancelled.
LiveListener = Callable[[str, Callable[[bytes], None]], Awaitable[None]]

_RECORDS = 1000
_FINISHED_IDS = 1024
LATE_MS = 200  # ready later than this after start_at: start into the programme, report late_ms


class Player:
    """``now``/``offset_ms`` are the cluster's (skewable) clock; ``emit`` publishes an event."""

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
        cache_bytes: int | None = None,
        listen_live: LiveListener | None = None,
        ended: Callable[[str], None] | None = None,
        outputs_on: Callable[[], list[PowerTarget] | None] | None = None,
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
        self.cache = MediaCache(capacity=cache_bytes)
        self._listen_live = listen_live
        self._ended = ended  # told every session id that ends, however (a bridge's outputs)
        self._outputs_on = outputs_on  # a bridge's outputs on, reported as a session starts
        self.records: deque[PlayRecord] = deque(maxlen=_RECORDS)
        self._sessions: dict[str, Session] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._playing: Session | None = None
        self._warm_at = 0.0  # loop time the outputs are warm (``power`` with ``warmup_s``)
        self._tasks: set[asyncio.Task[None]] = set()  # sessions and prefetches, until done

    @property
    def playing(self) -> str | None:
        return self._playing.plan.session_id if self._playing else None

    @property
    def upcoming(self) -> int:
        return sum(s.state in ("fetching", "waiting") for s in self._sessions.values())

    def state(self) -> tuple[Literal["idle", "waiting", "playing", "fetching"], str | None]:
        """Heartbeat state and the session it is about."""
        if self._playing is not None:
            return "playing", self._playing.plan.session_id
        for wanted in ("fetching", "waiting"):
            for session in self._sessions.values():
                if session.state == wanted:
                    return wanted, session.plan.session_id
        return "idle", None

    # -- commands ------------------------------------------------------------------------------

    def schedule(self, plan: Plan) -> bool:
        """Start a session task; False if the session is held already or has played."""
        if plan.session_id in self._sessions or plan.session_id in self._finished:
            return False
        session = Session(plan, PlayRecord(plan.session_id, start_at=plan.start_at))
        self.records.append(session.record)
        self._sessions[plan.session_id] = session
        session.task = self._spawn(self._run(session), f"play-{plan.session_id}")
        return True

    def holds(self, session_id: str) -> bool:
        """The session is held (fetching, waiting or playing): it has not ended."""
        return session_id in self._sessions

    def replace_schedule(self, plans: Iterable[Plan]) -> None:
        """A ``schedule`` list replaces the held sessions of earlier lists that have not started."""
        wanted = {plan.session_id: plan for plan in plans}
        for session in list(self._sessions.values()):
            held = session.plan.origin == "schedule" and session.state in ("fetching", "waiting")
            if held and session.plan.session_id not in wanted:
                self._cancel(session, "withdrawn")
        for plan in wanted.values():
            self.schedule(plan)

    def prefetch(self, cmd_id: str, items: Iterable[MediaRef]) -> None:
        self._spawn(self._prefetch(cmd_id, list(items)), f"prefetch-{cmd_id}")

    def warm_up(self, seconds: float) -> None:
        """An output was switched on: sessions due in the next ``seconds`` start late."""
        loop = asyncio.get_running_loop()
        self._warm_at = max(self._warm_at, loop.time() + seconds)

    def stop(self, session_id: str | None) -> None:
        """Stop that session (waiting or playing), or whatever plays when None."""
        target = self._sessions.get(session_id) if session_id else self._playing
        if target is not None:
            self._interrupt(target, "stopped", by="stop")

    def interrupt_all(self, outcome: Outcome) -> None:
        """End every session and report it (deliberate shutdown)."""
        for session in list(self._sessions.values()):
            self._interrupt(session, outcome)

    def vanish(self) -> None:
        """Power loss or reboot: sessions and downloads stop without a word."""
        for session in list(self._sessions.values()):
            self._cancel(session, "lost")
        for task in list(self._tasks):
            task.cancel()
        self.cache.cancel()

    async def aclose(self) -> None:
        self.vanish()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.cache.aclose()

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro, name=f"{name}-{self._cluster_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- one session ---------------------------------------------------------------------------

    async def _run(self, session: Session) -> None:
        """Fetch, wait for ``start_at``, play. One failure boundary per session."""
        try:
            if await self._fetch(session):
                await self._sleep_until(session.plan.start_at)
                await self._play(session)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: session %s failed", self._cluster_id, session.plan.session_id)
        finally:
            self._forget(session)

    async def _prefetch(self, cmd_id: str, items: list[MediaRef]) -> None:
        fetched = 0
        try:
            for item in items:
                fetched += await self.cache.ensure(self._http, item)
        except DownloadError as exc:
            self._counters.downloads_failed += 1
            self._event("download_failed", None, cmd_id=cmd_id, code=exc.code, detail=exc.detail)
            return
        media_ids = list(dict.fromkeys(item.media_id for item in items))
        self._event(
            "prefetch_done", None, cmd_id=cmd_id, media_ids=media_ids, bytes_downloaded=fetched
        )

    async def _fetch(self, session: Session) -> bool:
        record = session.record
        try:
            for item in session.plan.items:
                record.bytes_downloaded += await self.cache.ensure(self._http, item)
        except DownloadError as exc:
            record.bytes_downloaded += exc.fetched
            record.outcome = "download_failed"
            self._counters.downloads_failed += 1
            self._event("download_failed", session, code=exc.code, detail=exc.detail[:256])
            return False
        session.state = "waiting"
        return True

    async def _sleep_until(self, when: datetime) -> None:
        """Sleep on the loop clock, re-reading the cluster clock before the last stretch."""
        # a deadline on a clock that may be skewed while we wait, not a flag being polled
        while (delay := (when - self._now()).total_seconds()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(min(delay - 2, 30) if delay > 5 else delay)

    async def _play(self, session: Session) -> None:
        plan, record = session.plan, session.record
        loop = asyncio.get_running_loop()
        if (warming := self._warm_at - loop.time()) > 0:
            await asyncio.sleep(warming)
        total_ms = plan.total_ms
        late_ms = int((self._now() - plan.start_at).total_seconds() * 1000)
        if total_ms is not None and late_ms > LATE_MS and late_ms >= total_ms:
            self._finish(session, "late", "playback_interrupted", played_ms=0, detail="late")
            return
        current = self._playing
        if current is not None:
            if not wins(plan, current.plan, self._now()):
                self._finish(session, "busy", "playback_interrupted", played_ms=0, code="busy")
                return
            self._interrupt(current, "preempted", by=plan.session_id)
        self._playing = session
        session.state = "playing"
        session.play_t0 = loop.time()
        session.skip_ms = late_ms if late_ms > LATE_MS and not plan.live else 0
        record.started_at = self._now()
        record.outcome = "playing"
        self._counters.plays_started += 1
        # Let every session due now start before any reports: thousands of clusters share one
        # loop, and publishing first would delay the starts behind it (~70 µs each).
        await asyncio.sleep(0)
        self._announce_start(session, late_ms if late_ms > LATE_MS else None)
        if plan.live:
            problem = await self._listen(session)
            if problem is not None:
                self._interrupt(session, "failed", detail=problem.detail, code=problem.code)
                return
            played_ms = self._played_ms(session)
            extra: dict[str, object] = {"detail": session.note} if session.note else {}
            if plan.topic is not None:
                extra["packets"] = session.packets
        else:
            extra = {}
            played_ms = (total_ms or 0) - session.skip_ms
            remaining = played_ms / 1000 / self._speed - (loop.time() - session.play_t0)
            await asyncio.sleep(max(0.0, remaining))
        record.finished_at = self._now()
        self._finished[plan.session_id] = None
        if len(self._finished) > _FINISHED_IDS:
            self._finished.popitem(last=False)
        self._finish(
            session,
            "finished",
            "playback_finished",
            played_ms=played_ms,
            started_at=record.started_at,
            finished_at=record.finished_at,
            **extra,
        )

    async def _listen(self, session: Session) -> DownloadError | None:
        """Play a stream until ``until``, a stop, or the server ends it.

        Live sources drop: with an ``until``, a failed or broken stream is tried again every
        second until then (``session.note`` says what went wrong); without one, the failure ends
        the session and is returned.
        """
        plan = session.plan

        def count(size: int) -> None:
            session.record.bytes_downloaded += size
            self.cache.count_streamed(size)

        def packet(payload: bytes) -> None:
            session.packets += 1
            count(len(payload))

        async def read() -> None:
            if plan.topic is not None and self._listen_live is not None:
                await self._listen_live(plan.topic, packet)  # until cancelled
                return
            while True:
                try:
                    await consume_stream(self._http, plan.url or "", count)
                    return  # the server ended the stream
                except DownloadError as exc:
                    session.note = exc.detail[:200]
                    if plan.until is None:
                        raise
                await asyncio.sleep(1.0)

        waiters = [asyncio.ensure_future(read())]
        if plan.until is not None:
            waiters.append(asyncio.ensure_future(self._sleep_until(plan.until)))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
        reader = waiters[0]
        error = None if reader.cancelled() else reader.exception()
        if error is not None and not isinstance(error, DownloadError):
            raise error
        return error

    def _announce_start(self, session: Session, late_ms: int | None = None) -> None:
        if session.announced or session.record.started_at is None:
            return
        session.announced = True
        self._event(
            "playback_started",
            session,
            start_at=session.plan.start_at,
            started_at=session.record.started_at,
            clock_offset_ms=self._offset_ms(),
            late_ms=late_ms,
            outputs_on=self._outputs_on() if self._outputs_on is not None else None,
        )

    def _event(self, type_: EventType, session: Session | None, **fields: object) -> None:
        data: dict[str, object] = {"cluster_id": self._cluster_id, "type": type_, "ts": self._now()}
        if session is not None:
            data["session_id"] = session.plan.session_id
            data["bytes_downloaded"] = session.record.bytes_downloaded
        try:
            event = Event.model_validate(data | fields)
        except ValueError as exc:  # the protocol models refuse it: a simulator bug or drift
            log.error("%s: cannot send %s: %s", self._cluster_id, type_, exc)
            return
        self._emit(event)

    def _finish(
        self,
        session: Session,
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
        offset = self._offset_ms()
        self._event(type_, session, played_ms=played_ms, clock_offset_ms=offset, **fields)

    def _played_ms(self, session: Session) -> int:
        if session.play_t0 is None:
            return 0
        speed = 1.0 if session.plan.live else self._speed
        elapsed_ms = int((asyncio.get_running_loop().time() - session.play_t0) * speed * 1000)
        total_ms = session.plan.total_ms
        if total_ms is None:
            return elapsed_ms
        return max(0, min(total_ms - session.skip_ms, elapsed_ms))

    def _interrupt(
        self, session: Session, outcome: Outcome, *, by: str | None = None, **fields: object
    ) -> None:
        """End a session now and say so (stop, preemption, shutdown, a broken stream)."""
        if session.state == "done":
            return
        fields = {"detail": outcome, "interrupted_by": by} | fields
        self._announce_start(session)
        if session.record.started_at is not None:
            session.record.finished_at = self._now()
            fields["started_at"] = session.record.started_at
            fields["finished_at"] = session.record.finished_at
        played = self._played_ms(session)
        self._finish(session, outcome, "playback_interrupted", played_ms=played, **fields)
        self._cancel(session, outcome)

    def _cancel(self, session: Session, outcome: Outcome) -> None:
        if session.record.outcome in ("pending", "playing"):
            session.record.outcome = outcome
        self._forget(session)
        if session.task is not None and session.task is not asyncio.current_task():
            session.task.cancel()

    def _forget(self, session: Session) -> None:
        session.state = "done"
        if self._playing is session:
            self._playing = None
        if self._sessions.get(session.plan.session_id) is session:
            del self._sessions[session.plan.session_id]
            if self._ended is not None:
                self._ended(session.plan.session_id)


def wins(newcomer: Plan, playing: Plan, now: datetime) -> bool:
    """Does a session due ``now`` take over from the one playing (protocol §6, ``play``)?

    The higher priority; at equal priority the higher ``rank`` (the station's order, so the
    horns do what its timeline shows, link up or down); equal ranks, the newcomer (no stuck
    open microphone among emergencies). A higher rank holds only until its planned end: one
    still playing a few milliseconds past it (start latency) does not refuse the next
    broadcast back to back, which the station never planned as a clash.
    """
    if newcomer.priority != playing.priority:
        return newcomer.priority > playing.priority
    if newcomer.rank != playing.rank:
        end = playing.planned_end
        overran = end is not None and now >= end
        return overran or newcomer.rank > playing.rank
    return True
