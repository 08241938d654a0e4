"""Protocol §6 for one cluster: decode, expiry, idempotency, one ack per command, dispatch."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from devices.protocol import (
    Ack,
    Command,
    ConfigCommand,
    IdentifyCommand,
    NackCode,
    PlayCommand,
    PowerCommand,
    PrefetchCommand,
    ProtocolError,
    RebootCommand,
    ScheduleCommand,
    StopCommand,
    StreamCommand,
    TimeCommand,
    VolumeCommand,
    decode_command,
    encode,
)

from ._session import Plan

if TYPE_CHECKING:
    from ._cluster import SimulatedCluster
    from ._player import Player

log = logging.getLogger(__name__)

SEEN_COMMANDS = 256  # protocol §6: at least the last 256 command ids


class CommandHandler:
    """Answers every command once, at once; a repeated id gets the first answer again, marked
    ``duplicate``, and never runs twice. Malformed payloads are counted and dropped."""

    def __init__(
        self, cluster: SimulatedCluster, player: Player, send_ack: Callable[[bytes], None]
    ) -> None:
        self._cluster = cluster
        self._player = player
        self._send_ack = send_ack
        self._seen: OrderedDict[str, bytes] = OrderedDict()  # command id -> its re-ack

    def handle(self, payload: bytes) -> None:
        counters = self._cluster.counters
        try:
            cmd = decode_command(payload)
        except ProtocolError as exc:
            counters.malformed += 1
            log.info("%s: malformed command dropped (%s)", self._cluster.cluster_id, exc.reason)
            return
        counters.commands += 1
        known = self._seen.get(cmd.id)
        if known is not None:
            counters.duplicates += 1
            self._seen.move_to_end(cmd.id)
            self._send_ack(known)
            return
        if cmd.expires_at < self._cluster.now():
            counters.expired += 1
            ack = self._ack(cmd, ok=False, code="expired")
        else:
            ack = self._execute(cmd)
        self._seen[cmd.id] = encode(ack.model_copy(update={"duplicate": True}))
        if len(self._seen) > SEEN_COMMANDS:
            self._seen.popitem(last=False)
        self._send_ack(encode(ack))

    def _ack(
        self,
        cmd: Command,
        *,
        ok: bool = True,
        code: NackCode | None = None,
        detail: str | None = None,
        device_time: datetime | None = None,
    ) -> Ack:
        return Ack(
            cluster_id=self._cluster.cluster_id,
            cmd_id=cmd.id,
            ok=ok,
            code=code,
            detail=detail,
            ts=self._cluster.now(),
            device_time=device_time,
        )

    def _execute(self, cmd: Command) -> Ack:
        """Carry out a fresh, unexpired command; the answer is acked at once."""
        match cmd:
            case PlayCommand():
                if cmd.volume is not None:
                    self._cluster.volume = cmd.volume
                plan = Plan(
                    cmd.session_id,
                    cmd.start_at,
                    items=tuple(cmd.items),
                    priority=cmd.priority,
                    rank=cmd.rank,
                    offset_ms=cmd.offset_ms,
                )
                if not self._player.schedule(plan):
                    return self._ack(cmd, detail="session already scheduled")
            case StopCommand():
                self._player.stop(cmd.session_id)
            case ScheduleCommand():
                now = self._cluster.now()
                sessions = [s for s in cmd.sessions if s.expires_at >= now]
                self._player.replace_schedule(
                    Plan(
                        s.session_id,
                        s.start_at,
                        items=tuple(s.items),
                        priority=s.priority,
                        rank=s.rank,
                        origin="schedule",
                    )
                    for s in sessions
                )
                # A bridge switches its outputs itself for the sessions it holds (also one held
                # already from a ``play``); one that has ended already needs nothing.
                for s in sessions:
                    if s.power and self._player.holds(s.session_id):
                        self._cluster.hold_power(s.session_id, s.start_at, s.power)
            case PrefetchCommand():
                if not self._player.cache.fits(cmd.items):
                    return self._ack(cmd, ok=False, code="cache_full")
                self._player.prefetch(cmd.id, cmd.items)
            case StreamCommand():
                if cmd.transport not in self._cluster.live:
                    return self._ack(cmd, ok=False, code="unsupported", detail=cmd.transport)
                source = cmd.url if cmd.transport == "http" else cmd.topic
                if not source:
                    need = "url" if cmd.transport == "http" else "topic"
                    return self._ack(cmd, ok=False, code="bad_request", detail=f"no {need}")
                if cmd.volume is not None:
                    self._cluster.volume = cmd.volume
                start = cmd.start_at or self._cluster.now()
                plan = Plan(
                    cmd.session_id,
                    start,
                    priority=cmd.priority,
                    rank=cmd.rank,
                    origin="stream",
                    url=cmd.url if cmd.transport == "http" else None,
                    topic=cmd.topic if cmd.transport == "mqtt" else None,
                    until=cmd.until,
                )
                if not self._player.schedule(plan):
                    return self._ack(cmd, detail="session already scheduled")
            case VolumeCommand():
                self._cluster.volume = cmd.level
            case ConfigCommand():
                if cmd.heartbeat_s is not None:  # from the next beat
                    self._cluster.heartbeat_s = cmd.heartbeat_s
                if cmd.default_volume is not None:
                    self._cluster.volume = cmd.default_volume
            case TimeCommand():
                return self._ack(cmd, device_time=self._cluster.now())
            case PowerCommand():
                if cmd.target not in self._cluster.outputs:
                    return self._ack(cmd, ok=False, code="no_hardware")
                self._cluster.switch_power(cmd.target, cmd.on, cmd.warmup_s, list(cmd.zone_codes))
            case RebootCommand():
                self._cluster.reboot()
            case IdentifyCommand():  # a test tone, priority 10: anything else preempts it
                tone = Plan(
                    f"identify-{cmd.id}",
                    self._cluster.now(),
                    priority=10,
                    origin="identify",
                    length_ms=cmd.seconds * 1000,
                )
                self._player.schedule(tone)
            case _:
                return self._ack(cmd, ok=False, code="unsupported")
        return self._ack(cmd)
