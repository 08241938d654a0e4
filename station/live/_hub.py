"""The live hub: named mounts, their sources and sinks, alerts, and URLs/topics for clusters."""

from __future__ import annotations

import asyncio
import collections
import logging
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ._mount import Mount, MountConfig
from ._sources import PushFeed, device_input, run_device, run_relay

log = logging.getLogger(__name__)

MOUNT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
PUSH_SOURCES = ("icecast", "browser")


class LiveError(Exception):
    """A refused live operation; ``status`` is the HTTP status that says why."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


@dataclass
class LiveAlert:
    mount: str
    kind: str  # dead | silence | not_audio | auth
    detail: str
    raised_at: datetime
    cleared_at: datetime | None = None


class LiveHub:
    """Mounts by name. ``url_for``/``topic_for`` give clusters what a ``stream`` command carries."""

    def __init__(
        self,
        ffmpeg: str,
        config: MountConfig,
        url_for: Callable[[str, str], str],
        topic_prefix: str,
        retry: tuple[float, float] = (1.0, 30.0),
    ) -> None:
        self.ffmpeg = ffmpeg
        self.config = config
        self._url_for = url_for
        self._topic_prefix = topic_prefix
        self._retry = retry
        self.mounts: dict[str, Mount] = {}
        self._sources: dict[str, asyncio.Task[None]] = {}
        self._pushes: dict[str, PushFeed] = {}
        self.alerts: collections.deque[LiveAlert] = collections.deque(maxlen=200)
        self.alert_counts: collections.Counter[str] = collections.Counter()
        self.sink_factories: list[Callable[[Mount], Any]] = []

    def url_for(self, mount: str, cluster_id: str) -> str:
        return self._url_for(mount, cluster_id)

    def topic_for(self, mount: str) -> str:
        return f"{self._topic_prefix}/live/{mount}"

    def alert(self, mount: str, kind: str, detail: str, raised: bool) -> None:
        now = datetime.now(UTC)
        if raised:
            if any(a.mount == mount and a.kind == kind and not a.cleared_at for a in self.alerts):
                return  # already open
            self.alerts.append(LiveAlert(mount, kind, detail, now))
            self.alert_counts[kind] += 1
            log.warning("live alert on %s: %s (%s)", mount, kind, detail)
            return
        for open_alert in self.alerts:
            if open_alert.mount == mount and open_alert.kind == kind and not open_alert.cleared_at:
                open_alert.cleared_at = now
                log.info("live alert on %s cleared: %s", mount, kind)

    async def start(self, name: str, source: str, config: MountConfig | None = None) -> Mount:
        """Create mount ``name`` fed by ``source`` (alsa:/pulse:/lavfi:DEV, relay:URL, icecast,
        browser). 409 if it exists; 422 for a malformed name or source."""
        if not MOUNT_NAME.match(name):
            raise LiveError(
                422, "mount names are 1-32 of a-z 0-9 _ - (starting with a letter/digit)"
            )
        if name in self.mounts:
            raise LiveError(409, f"mount {name} is already live")
        run = self._source_runner(source)
        mount = Mount(name, self.ffmpeg, config or self.config, self.alert)
        mount.source = source
        for make_sink in self.sink_factories:
            mount.sinks.append(make_sink(mount))
        await mount.start()
        self.mounts[name] = mount
        if run is not None:
            self._sources[name] = asyncio.create_task(run(mount), name=f"live-{name}-source")
        log.info("live mount %s started from %s", name, source)
        return mount

    def _source_runner(self, source: str) -> Callable[[Mount], Coroutine[Any, Any, None]] | None:
        lo, hi = self._retry
        if source in PUSH_SOURCES:
            return None
        if source.startswith("relay:"):
            url = source.removeprefix("relay:")
            if not url.startswith(("http://", "https://")):
                raise LiveError(422, "relay sources are relay:http(s)://...")
            return lambda mount: run_relay(mount, url, self.alert, lo, hi)
        try:
            device_input(source)
        except ValueError as exc:
            raise LiveError(422, str(exc)) from None
        return lambda mount: run_device(mount, source, lo, hi)

    async def stop(self, name: str) -> None:
        mount = self.mounts.pop(name, None)
        if mount is None:
            raise LiveError(404, f"mount {name} is not live")
        task = self._sources.pop(name, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        push = self._pushes.pop(name, None)
        if push is not None:
            await push.close()
        await mount.stop()
        log.info("live mount %s stopped", name)

    async def stop_all(self) -> None:
        for name in list(self.mounts):
            await self.stop(name)

    async def open_push(self, name: str, kind: str) -> PushFeed:
        """A pushed source for a mount started with ``icecast``/``browser``; one at a time."""
        mount = self.mounts.get(name)
        if mount is None or mount.source != kind:
            raise LiveError(404, f"no mount {name} waiting for a {kind} source")
        if name in self._pushes:
            raise LiveError(409, f"mount {name} already has a source connected")
        feed = PushFeed(mount, f"{kind}-{name}")
        await feed.start()
        self._pushes[name] = feed
        return feed

    async def close_push(self, name: str, feed: PushFeed) -> None:
        if self._pushes.get(name) is feed:
            del self._pushes[name]
        await feed.close()

    def status(self) -> list[dict[str, Any]]:
        return [
            {
                "mount": m.name,
                "source": m.source,
                "state": m.state,
                "codec": m.config.codec,
                "listeners": m.fanout.listeners,
                "source_connected": m.name in self._pushes or m.name in self._sources,
                "bytes_encoded": m.bytes_encoded,
                "skipped": m.fanout.counters.skipped,
                "dropped": m.fanout.counters.dropped,
                "topic": self.topic_for(m.name),
            }
            for m in self.mounts.values()
        ]
