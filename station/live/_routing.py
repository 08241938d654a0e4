"""Scheduled relay/live slots through the live hub: the station fetches once, clusters fetch
from the station (each one its own signed URL)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from scheduler import StreamRoute

from ._hub import LiveError, LiveHub

log = logging.getLogger(__name__)

LIVE_PREFIX = "live:"  # a live slot's stream URL names the hub mount: live:<mount>
WAITING = ("starting", "waiting")  # mount states before any audio came from the source


def relay_mount(url: str) -> str:
    """The hub mount relaying ``url`` (deterministic: same upstream, same mount)."""
    return "relay-" + hashlib.sha256(url.encode()).hexdigest()[:12]


@dataclass
class _Window:
    """The slots routed to one mount; the mount is held from the first start (minus the
    warm-up) to the last end (plus the linger)."""

    source: str
    slots: list[tuple[datetime, datetime]] = field(default_factory=list)
    mqtt: bool = False  # a cluster was handed the MQTT topic: publish the mount's packets

    def route(self, hub: LiveHub, mount: str, mqtt_only: frozenset[str]) -> StreamRoute:
        topic = hub.topic_for(mount)

        def topic_for(cluster_id: str) -> str | None:
            if cluster_id not in mqtt_only:
                return None
            self.mqtt = True
            return topic

        return StreamRoute(lambda cid: hub.cluster_url(mount, cid), hub.config.codec, topic_for)

    @property
    def start(self) -> datetime:
        return min(s for s, _ in self.slots)

    @property
    def until(self) -> datetime:
        return max(u for _, u in self.slots)


class HubRouter:
    """The dispatcher's ``StreamRouter``.

    A relay URL gets a ``relay-<hash>`` mount (source ``relay:URL``); ``live:<mount>`` (a live
    slot; the station's is ``live:<live.studio_mount>``) is that mount, and if nobody started
    it, an on-demand one waiting for a push (an Icecast source client or the console's
    microphone). Either is held from ``warmup_s`` before its first slot to ``linger_s`` after
    its last (``LiveHub.hold``): a mount the router started is stopped then, one an operator
    started is used and left running. While a slot airs on a mount that never got audio from
    its source (nobody pushing, upstream unreachable, device silent from the start), clusters
    hear the mount's fallback or silence and a ``no_source`` alert is open. Other URLs (and no
    hub) go to clusters as is.

    Each cluster gets ``hub.cluster_url`` (the station's signed ``/live/<mount>``, or the Icecast
    edge when one is configured), except clusters that announced MQTT-only live transport: they
    get the mount's MQTT topic, and the mount publishes its packets there while it is held.
    """

    def __init__(
        self,
        hub: Callable[[], LiveHub | None],
        *,
        warmup_s: float = 3.0,
        linger_s: float = 2.0,
        source_grace_s: float = 2.0,
        tick_s: float = 0.5,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._hub = hub
        self.warmup_s = warmup_s
        self.linger_s = linger_s
        self.source_grace_s = source_grace_s  # a push connecting at the slot's start: no alert
        self.tick_s = tick_s
        self.clock = clock
        self._windows: dict[str, _Window] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def __call__(self, url: str, start_at: datetime, until: datetime) -> StreamRoute | None:
        hub = self._hub()
        if hub is None:
            return None
        if url.startswith(LIVE_PREFIX):
            mount, source = url.removeprefix(LIVE_PREFIX), "push"
        elif url.startswith(("http://", "https://")):
            mount, source = relay_mount(url), f"relay:{url}"
        else:
            return None
        mqtt_only = await self._mqtt_only(hub, mount)
        window = self._windows.setdefault(mount, _Window(source))
        window.slots.append((start_at, until))
        if mount not in self._tasks:
            self._tasks[mount] = asyncio.create_task(self._run(hub, mount), name=f"route-{mount}")
        return window.route(hub, mount, mqtt_only)

    async def _mqtt_only(self, hub: LiveHub, mount: str) -> frozenset[str]:
        """The clusters to hand the MQTT topic: MQTT carries Opus pages only (an MP3 mount's
        MQTT-only receivers get the URL, and nack it ``unsupported``: logged here)."""
        receivers = await hub.mqtt_only()
        if receivers and hub.config.codec != "opus":
            log.warning(
                "mount %s is %s: its %d MQTT-only receivers cannot hear it (Opus only over MQTT)",
                mount, hub.config.codec, len(receivers),
            )  # fmt: skip
            return frozenset()
        return receivers

    async def _run(self, hub: LiveHub, mount: str) -> None:
        holder = object()
        window = self._windows[mount]
        try:
            wait = (window.start - self.clock()).total_seconds() - self.warmup_s
            if wait > 0:
                await asyncio.sleep(wait)
            log.info("mount %s (%s) for scheduled slots", mount, window.source)
            while (left := self._left(window)) > 0:  # slots routed meanwhile push the end further
                if not hub.holds(mount, holder):  # first, or stopped by someone meanwhile
                    await hub.hold(mount, window.source, holder)
                if window.mqtt:  # MQTT-only receivers among the slots' clusters
                    hub.want_mqtt(mount, holder)
                self._watch_source(hub, mount, window)
                await asyncio.sleep(min(left, self.tick_s))
        except LiveError as exc:
            log.warning("mount %s for scheduled slots: %s", mount, exc)
        finally:
            self._tasks.pop(mount, None)
            self._windows.pop(mount, None)
            hub.alert(mount, "no_source", "", False)
            await hub.release(mount, holder)

    @property
    def holding(self) -> list[str]:
        """Mounts held for scheduled slots now (from warm-up to linger)."""
        return list(self._tasks)

    def _left(self, window: _Window) -> float:
        return (window.until - self.clock()).total_seconds() + self.linger_s

    def _watch_source(self, hub: LiveHub, mount: str, window: _Window) -> None:
        now = self.clock()
        grace = timedelta(seconds=self.source_grace_s)
        airing = any(start + grace <= now < until for start, until in window.slots)
        live = hub.mounts.get(mount)
        silent = airing and (live is None or live.state in WAITING)
        kind = window.source.partition(":")[0]  # not the relay URL: it may carry a token
        detail = f"a scheduled slot airs {mount}, and no audio came from its {kind} source"
        hub.alert(mount, "no_source", detail, silent)

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
