"""Scheduled relay/live slots through the live hub: the station fetches once, clusters fetch
from the station (each one its own signed URL)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from scheduler import StreamRoute

from ._hub import LiveError, LiveHub

log = logging.getLogger(__name__)

LIVE_PREFIX = "live:"  # a live slot's stream URL names the hub mount: live:<mount>


def relay_mount(url: str) -> str:
    """The hub mount relaying ``url`` (deterministic: same upstream, same mount)."""
    return "relay-" + hashlib.sha256(url.encode()).hexdigest()[:12]


class HubRouter:
    """The dispatcher's ``StreamRouter``: a relay URL gets a ``relay-<hash>`` mount (source
    ``relay:URL``) started ``warmup_s`` before its first segment and stopped ``linger_s`` after
    its last; ``live:<mount>`` is that mount. Other URLs (and no hub) go to clusters as is."""

    def __init__(
        self,
        hub: Callable[[], LiveHub | None],
        *,
        warmup_s: float = 3.0,
        linger_s: float = 2.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._hub = hub
        self.warmup_s = warmup_s
        self.linger_s = linger_s
        self.clock = clock
        self._windows: dict[str, tuple[datetime, datetime, str]] = {}  # mount: start, until, url
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def __call__(self, url: str, start_at: datetime, until: datetime) -> StreamRoute | None:
        hub = self._hub()
        if hub is None:
            return None
        if url.startswith(LIVE_PREFIX):
            mount = url.removeprefix(LIVE_PREFIX)
        elif url.startswith(("http://", "https://")):
            mount = relay_mount(url)
            if (old := self._windows.get(mount)) is not None:
                start_at, until = min(start_at, old[0]), max(until, old[1])
            self._windows[mount] = (start_at, until, url)
            if mount not in self._tasks:
                task = asyncio.create_task(self._run(hub, mount), name=f"relay-{mount}")
                self._tasks[mount] = task
        else:
            return None
        return StreamRoute(lambda cluster_id: hub.url_for(mount, cluster_id), hub.config.codec)

    async def _run(self, hub: LiveHub, mount: str) -> None:
        started = False
        try:
            start_at, _, url = self._windows[mount]
            wait = (start_at - self.clock()).total_seconds() - self.warmup_s
            if wait > 0:
                await asyncio.sleep(wait)
            if mount not in hub.mounts:
                await hub.start(mount, f"relay:{url}")
                started = True
                log.info("relay %s on mount %s for scheduled sessions", url, mount)
            delay = self._delay(mount)
            while delay > 0:  # sessions routed meanwhile push the end further
                await asyncio.sleep(delay)
                delay = self._delay(mount)
            if started and mount in hub.mounts:
                await hub.stop(mount)
        except LiveError as exc:
            log.warning("relay mount %s: %s", mount, exc)
        finally:
            self._tasks.pop(mount, None)
            self._windows.pop(mount, None)

    def _delay(self, mount: str) -> float:
        until = self._windows[mount][1]
        return (until - self.clock()).total_seconds() + self.linger_s

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
