"""Store-and-forward and prefetch: what each cluster holds ahead of time (I/O, with the dispatcher).

Each targeted cluster gets a ``schedule`` command listing its upcoming sessions (the media runs
of the next ``horizon``; relay and live slots need the link and are sent as ``stream`` at
start). The list replaces the cluster's earlier list, so it is re-sent whenever it changes,
and whenever the cluster comes (back) online: its last list may be stale or lost. Sessions
starting within ``prefetch_ahead`` also get a ``prefetch`` so the audio is cached even on
clusters that ignore schedule lists. The ``play`` sent ``lead`` before start stays: clusters
dedupe by session id, so whichever arrives first wins and nothing plays twice.

A bridge's held sessions carry ``power``: the output it switches itself, ``bridge_warmup``
before the start, so its legacy FM/wired sets hear the session even when the link is down at
start (``scheduler._bridges.held_power``, from the same needs the dispatcher switches by).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta

from devices import ClusterGateway, gather_sends
from devices.protocol import (
    Command,
    MediaRef,
    PowerSpec,
    PrefetchCommand,
    ScheduleCommand,
    SessionSpec,
)

from ._bridges import HeldPower, held_needs, held_power
from ._priority import on_air_rank
from ._session import CodecsFor, ItemRef, SessionPlan, UrlFor, segments

log = logging.getLogger(__name__)

MAX_SESSIONS = 200  # protocol v1: a schedule list carries at most 200 sessions


UNKNOWN = ""  # a cluster's last list is unknown (never a digest): its next list always goes


class Forwarder:
    def __init__(
        self,
        gateway: ClusterGateway,
        url_for: UrlFor,
        clock: Callable[[], datetime],
        *,
        codecs_for: CodecsFor | None = None,
        prefetch_ahead: timedelta = timedelta(minutes=30),
        expiry: timedelta = timedelta(minutes=1),
        bridge_warmup: timedelta = timedelta(seconds=5),
    ) -> None:
        self.gateway = gateway
        self.url_for = url_for
        self.clock = clock
        self.codecs_for = codecs_for
        self.prefetch_ahead = prefetch_ahead
        self.expiry = expiry
        self.bridge_warmup = bridge_warmup
        self._sent_lists: dict[str, str] = {}  # cluster id -> digest of the last list it got
        self._prefetched: set[tuple[str, str]] = set()  # (session id, cluster id)
        self.lists_sent = 0
        self.prefetches_sent = 0

    def forget(self, cluster_id: str) -> None:
        """The cluster (re)connected: its next sync re-sends its list and prefetches. Its list
        goes out even when empty: it may still hold sessions withdrawn while it was away."""
        self._sent_lists[cluster_id] = UNKNOWN
        self._prefetched = {k for k in self._prefetched if k[1] != cluster_id}

    async def sync(self, sessions: Sequence[SessionPlan]) -> dict[str, str]:
        """Send changed lists and due prefetches; returns failures by cluster."""
        now = self.clock()
        upcoming = sorted(
            (s for s in sessions if s.start_at + timedelta(seconds=1) > now),
            key=lambda s: (s.start_at, s.session_id),
        )
        targeted = sorted({cid for s in upcoming for cid in s.cluster_ids})
        clusters = sorted(set(targeted) | set(self._sent_lists))
        # Codecs only pick renditions: a cluster with nothing upcoming needs none (a reconnect
        # storm of 10,000 births must not read 10,000 announcements every half second).
        codecs = await self.codecs_for(targeted) if self.codecs_for and targeted else {}
        lists: dict[str, Command] = {}
        digests: dict[str, str] = {}
        prefetches: dict[str, Command] = {}
        prefetched: list[tuple[str, str]] = []
        for cid in clusters:
            mine = [s for s in upcoming if cid in s.cluster_ids]
            specs = self._specs(cid, mine, codecs.get(cid))[:MAX_SESSIONS]
            digest = _digest(specs)
            if self._sent_lists.get(cid) != digest:
                digests[cid] = digest
                lists[cid] = ScheduleCommand(
                    # Unique per send (a device ignores a command id it has seen): a list
                    # equal to an earlier one (A, B, then A again; or empty twice) must count.
                    # Ids are per cluster, so the cluster id need not be in it (64 chars max).
                    id=f"sched.{digest[:12]}.{now.timestamp() * 1000:.0f}",
                    issued_at=now,
                    expires_at=now + self.expiry,
                    sessions=specs,
                )
            soon = [
                s
                for s in mine
                if s.start_at - now <= self.prefetch_ahead
                and (s.session_id, cid) not in self._prefetched
            ]
            items = _unique(i for s in soon for i in s.items)
            if items:
                refs = [self._ref(cid, i.for_codecs(codecs.get(cid))) for i in items][:100]
                keep = max(s.expires_at for s in soon)
                prefetches[cid] = PrefetchCommand(
                    id=f"pre.{cid}.{_digest_ids(s.session_id for s in soon)}",
                    issued_at=now,
                    expires_at=now + self.expiry,
                    items=refs,
                    keep_until=keep,
                )
                prefetched.extend((s.session_id, cid) for s in soon)
        failures: dict[str, str] = {}
        for cid, exc in (await gather_sends(self.gateway, lists)).items():
            if exc is None:
                self._sent_lists[cid] = digests[cid]
                self.lists_sent += 1
            else:  # it may have arrived or not: send its list next time, empty or not
                self._sent_lists[cid] = UNKNOWN
                failures[cid] = str(exc)
        for cid, exc in (await gather_sends(self.gateway, prefetches)).items():
            if exc is None:
                self.prefetches_sent += 1
                self._prefetched.update(k for k in prefetched if k[1] == cid)
            else:
                failures.setdefault(cid, str(exc))
        if lists or prefetches:
            log.info("sent %d schedule lists, %d prefetches", len(lists), len(prefetches))
        return failures

    def _specs(
        self, cluster_id: str, sessions: Iterable[SessionPlan], codecs: Sequence[str] | None
    ) -> list[SessionSpec]:
        sessions = list(sessions)
        warmup = self.bridge_warmup
        power = held_power(held_needs(sessions, cluster_id, warmup), warmup)
        specs = []
        for session in sessions:
            for segment in segments(session):
                if not segment.items:
                    continue  # streams need the link: sent at start only
                start = session.start_at + timedelta(milliseconds=segment.offset_ms)
                specs.append(
                    SessionSpec(
                        session_id=segment.session_id,
                        start_at=start,
                        expires_at=session.expires_at + (start - session.start_at),
                        items=[self._ref(cluster_id, i.for_codecs(codecs)) for i in segment.items],
                        priority=session.priority,
                        rank=on_air_rank(session.rank),  # offline too, the timeline's order
                        volume=session.volume,
                        power=_power_specs(power.get(segment.session_id)),
                    )
                )
        return specs

    def _ref(self, cluster_id: str, item: ItemRef) -> MediaRef:
        return MediaRef(
            media_id=str(item.media_id),
            url=self.url_for(cluster_id, item),
            sha256=item.sha256,
            size=item.size,
            duration_ms=item.duration_ms,
            codec=item.codec,  # type: ignore[arg-type]
        )


def _power_specs(held: Sequence[HeldPower] | None) -> list[PowerSpec] | None:
    if not held:
        return None  # not a bridge for this session: the field is left out
    return [
        PowerSpec(
            target=h.target,  # type: ignore[arg-type]  # a protocol PowerTarget
            warmup_s=h.warmup_s,
            zone_codes=list(h.zone_codes),
        )
        for h in held
    ]


def _unique(items: Iterable[ItemRef]) -> list[ItemRef]:
    seen: dict[str, ItemRef] = {}
    for item in items:
        seen.setdefault(item.sha256, item)
    return list(seen.values())


def _digest(specs: Sequence[SessionSpec]) -> str:
    # URLs are signed per call and may change: the list's identity is what plays when.
    key = "|".join(
        f"{s.session_id},{s.start_at.timestamp()},{s.priority},{s.rank},{s.volume},"
        + ",".join(i.sha256 for i in s.items)
        + "".join(f";{p.target}:{p.warmup_s}:{'/'.join(p.zone_codes)}" for p in s.power or ())
        for s in specs
    )
    return hashlib.sha256(key.encode()).hexdigest()


def _digest_ids(ids: Iterable[str]) -> str:
    return hashlib.sha256("|".join(sorted(ids)).encode()).hexdigest()[:16]
