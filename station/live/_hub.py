"""The live hub: named mounts, their sources and sinks, alerts, and URLs/topics for clusters."""

from __future__ import annotations

import asyncio
import collections
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from station._alerts import MountAlertEvent
from station.db import AlertKind

from ._alert_writer import AlertWriter, Sessions
from ._mount import Mount, MountConfig
from ._sources import PushFeed, device_input, run_device, run_relay

log = logging.getLogger(__name__)

MOUNT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
# ``push`` (on-demand mounts, e.g. the studio): an Icecast source client or the console's
# microphone, whichever connects first; ``icecast``/``browser``: only that kind.
PUSH_SOURCES = ("icecast", "browser", "push")
# Sources an operator may choose (API, CLI): lavfi graphs can read files (amovie=...), so test
# tones are taken in code only, never from outside.
OPERATOR_SOURCE = re.compile(
    r"^(icecast|browser|push|relay:https?://[^\s]{1,2000}|(alsa|pulse):[A-Za-z0-9_:,.=-]{1,100})$"
)
OPERATOR_SOURCES_HELP = (
    "alsa:DEV, pulse:DEV, relay:URL, icecast (a source client pushes), browser (the console's "
    "microphone WebSocket /live/<mount>/mic) or push (either of the two, whichever connects first)"
)
# The clusters that hear live over MQTT only (capabilities.live of their last birth).
MqttReceivers = Callable[[], Awaitable[frozenset[str]]]
# ``stop_all`` waits this long for the mounts (a stop takes 2-3 s: ffmpeg's grace period).
STOP_ALL_BOUND_S = 10.0


class LiveError(Exception):
    """A refused live operation; ``status`` is the HTTP status that says why, ``code`` what
    was refused (one of the API's problem codes, station/api/_problems.py ``CODES``) and
    ``params`` its parameters (the mount...), for the console to say in the user's language;
    ``detail`` stays an English sentence."""

    def __init__(self, status: int, detail: str, *, code: str | None = None, **params: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.params: dict[str, Any] = params


@dataclass
class LiveAlert:
    mount: str
    kind: str  # dead | silence | not_audio | auth | no_source
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
        *,
        studio_mount: str | None = None,
    ) -> None:
        self.ffmpeg = ffmpeg
        self.config = config
        self._url_for = url_for
        self._topic_prefix = topic_prefix
        self._retry = retry
        self.mounts: dict[str, Mount] = {}
        self._sources: dict[str, asyncio.Task[None]] = {}
        self._pushes: dict[str, PushFeed] = {}
        # This process's recent alerts (the record is the alerts table, see ``store_alerts``)
        self.alerts: collections.deque[LiveAlert] = collections.deque(maxlen=200)
        self.alert_counts: collections.Counter[str] = collections.Counter()
        self._open_alerts: dict[tuple[str, str], LiveAlert] = {}  # (mount, kind)
        self.alert_writer: AlertWriter | None = None
        self.sink_factories: list[Callable[[Mount], Any]] = []
        # A push to the studio mount starts it when it is not up (sound check before a slot).
        self.studio_mount = studio_mount
        # Mounts started on demand (scheduled slots, pushes to the studio) and who holds them:
        # stopped when the last holder lets go. Mounts started with ``start`` are the
        # operator's: holders use them and never stop them.
        self._on_demand: set[str] = set()
        self._holders: dict[str, set[object]] = {}
        self._demand_lock = asyncio.Lock()
        self._push_holders: dict[PushFeed, object] = {}
        self._closed = False
        # MQTT live packets: every mount all the time (``live.mqtt``), else only mounts that a
        # scheduled slot with MQTT-only receivers asks for (``want_mqtt``), while it does.
        self.mqtt_always = False
        self._mqtt_holders: dict[str, set[object]] = {}
        self.mqtt_receivers: MqttReceivers | None = None
        # Scale-out: the URL clusters fetch a mount from (an Icecast edge), else ``url_for``.
        self.edge_url_for: Callable[[str, str], str] | None = None

    def url_for(self, mount: str, cluster_id: str) -> str:
        """The station's own signed ``/live/<mount>`` URL for ``cluster_id``."""
        return self._url_for(mount, cluster_id)

    def cluster_url(self, mount: str, cluster_id: str) -> str:
        """Where ``cluster_id`` fetches ``mount`` over HTTP: the Icecast edge when one is
        configured (its URL signed per cluster the same way), else the station."""
        if self.edge_url_for is not None:
            return self.edge_url_for(mount, cluster_id)
        return self._url_for(mount, cluster_id)

    async def mqtt_only(self) -> frozenset[str]:
        """Clusters that take live audio over MQTT only (none if the station has no MQTT sink)."""
        if self.mqtt_receivers is None:
            return frozenset()
        return await self.mqtt_receivers()

    def want_mqtt(self, name: str, holder: object) -> None:
        """``holder`` (a scheduled slot's window) has MQTT receivers: publish ``name``'s pages
        on its MQTT topic until ``release``."""
        self._mqtt_holders.setdefault(name, set()).add(holder)

    def mqtt_wanted(self, name: str) -> bool:
        return self.mqtt_always or bool(self._mqtt_holders.get(name))

    def topic_for(self, mount: str) -> str:
        return f"{self._topic_prefix}/live/{mount}"

    async def store_alerts(self, sessions: Sessions) -> None:
        """Write alerts to the ``alerts`` table from now on (subject: the mount), through a
        held writer task: ``alert`` never waits for the database. Alerts a previous run left
        open are closed first (no mount survives a restart)."""
        writer = AlertWriter(sessions)
        await writer.start()
        self.alert_writer = writer

    async def flush_alerts(self) -> None:
        """Write the alerts queued so far (before reading the table)."""
        if self.alert_writer is not None:
            await self.alert_writer.flush()

    def alert(self, mount: str, kind: str, detail: str, raised: bool) -> None:
        """Raise or clear ``kind`` on ``mount``. Called on the audio loop: memory only, the
        database write is queued (``AlertWriter.put``)."""
        now = datetime.now(UTC)
        key = (mount, kind)
        if raised:
            if key in self._open_alerts:
                return  # already open
            alert = LiveAlert(mount, kind, detail, now)
            self._open_alerts[key] = alert
            self.alerts.append(alert)
            self.alert_counts[kind] += 1
            log.warning("live alert on %s: %s (%s)", mount, kind, detail)
        else:
            open_alert = self._open_alerts.pop(key, None)
            if open_alert is None:
                return
            open_alert.cleared_at = now
            log.info("live alert on %s cleared: %s", mount, kind)
        self._queue_alert(mount, kind, detail, raised, now)

    def _queue_alert(self, mount: str, kind: str, detail: str, raised: bool, at: datetime) -> None:
        if self.alert_writer is None:
            return
        try:
            alert_kind = AlertKind(kind)
        except ValueError:
            log.error("live alert of unknown kind %r on %s not stored", kind, mount)
            return
        self.alert_writer.put(MountAlertEvent(mount, alert_kind, detail, raised, at))

    def _clear_alerts(self, mount: str) -> None:
        """A stopped mount airs nothing: what its alerts said is over."""
        for name, kind in [k for k in self._open_alerts if k[0] == mount]:
            self.alert(name, kind, "", False)

    async def start(self, name: str, source: str, config: MountConfig | None = None) -> Mount:
        """Create mount ``name`` fed by ``source`` (alsa:/pulse:/lavfi:DEV, relay:URL, icecast,
        browser, push). 409 if it exists; 422 for a malformed name or source. The operator's
        mount: it runs until ``stop`` (``hold`` starts mounts on demand)."""
        if not MOUNT_NAME.match(name):
            raise LiveError(
                422,
                "mount names are 1-32 of a-z 0-9 _ - (starting with a letter/digit)",
                code="live_mount_invalid",
                mount=name[:40],
            )
        if name in self.mounts:
            raise LiveError(
                409, f"mount {name} is already live", code="live_already_live", mount=name
            )
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
                raise LiveError(
                    422, "relay sources are relay:http(s)://...", code="live_relay_url_invalid"
                )
            return lambda mount: run_relay(mount, url, self.alert, lo, hi)
        try:
            device_input(source)
        except ValueError as exc:
            raise LiveError(422, str(exc), code="live_source_unsupported") from None
        return lambda mount: run_device(mount, source, lo, hi)

    async def hold(self, name: str, source: str, holder: object) -> Mount:
        """Mount ``name`` for ``holder``: started from ``source`` if it is not up (then stopped
        when its last holder calls ``release``), else the running one, whatever its source."""
        async with self._demand_lock:
            if self._closed:
                raise LiveError(503, "the live hub is shutting down", code="live_unavailable")
            mount = self.mounts.get(name)
            if mount is None:
                mount = await self.start(name, source)
                self._on_demand.add(name)
            self._holders.setdefault(name, set()).add(holder)
            return mount

    async def release(self, name: str, holder: object) -> None:
        async with self._demand_lock:
            holders = self._holders.get(name)
            if holders is None or holder not in holders:
                return  # the mount was stopped (and maybe started again) meanwhile
            holders.discard(holder)
            self._mqtt_holders.get(name, set()).discard(holder)
            if not holders and name in self._on_demand and name in self.mounts:
                log.info("live mount %s no longer needed", name)
                await self.stop(name)

    def holds(self, name: str, holder: object) -> bool:
        return holder in self._holders.get(name, ())

    async def stop(self, name: str) -> None:
        mount = self.mounts.pop(name, None)
        self._on_demand.discard(name)
        self._holders.pop(name, None)
        self._mqtt_holders.pop(name, None)
        if mount is None:
            raise LiveError(404, f"mount {name} is not live", code="live_not_live", mount=name[:40])
        mount.stopping = True  # its source's retry loop ends even if the cancellation is lost
        task = self._sources.pop(name, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        push = self._pushes.pop(name, None)
        if push is not None:
            await push.close()
        await mount.stop()
        self._clear_alerts(name)
        log.info("live mount %s stopped", name)

    async def stop_all(self) -> None:
        """Stop every mount, together: each one's source task is cancelled and awaited, its
        ffmpeg children are killed after a grace period, its listeners are hung up on. Bounded
        (a few seconds); holders (scheduled slots) start nothing from now on. Idempotent."""
        async with self._demand_lock:
            self._closed = True
        stops = {n: asyncio.create_task(self.stop(n), name=f"live-{n}-stop") for n in self.mounts}
        try:
            if stops:  # each stop is bounded; this bounds the whole against the unforeseen
                await asyncio.wait(stops.values(), timeout=STOP_ALL_BOUND_S)
        except BaseException:
            for task in stops.values():
                task.cancel()
            raise
        for name, task in stops.items():
            if not task.done():
                log.error("live mount %s not stopped after %g s: left", name, STOP_ALL_BOUND_S)
                task.cancel()
                task.add_done_callback(_retrieve)
                continue
            exc = None if task.cancelled() else task.exception()
            if exc is not None and not isinstance(exc, LiveError):  # LiveError: stopped meanwhile
                log.error("live mount %s did not stop cleanly", name, exc_info=exc)
        if self.alert_writer is not None:
            await self.alert_writer.close()  # the mounts' last alerts (cleared on stop) too

    @property
    def closed(self) -> bool:
        return self._closed

    async def open_push(self, name: str, kind: str) -> PushFeed:
        """A pushed source for a mount started with ``icecast``/``browser``/``push``; one at a
        time. A push to the studio mount starts it (on demand) when it is not up."""
        mount = self.mounts.get(name)
        holder: object | None = None
        if name == self.studio_mount or name in self._on_demand:
            # held while the client is connected: the end of a slot does not cut it off
            holder = object()
            mount = await self.hold(name, "push", holder)
        refused: LiveError | None = None
        if mount is None:
            refused = LiveError(
                404,
                f"no mount {name} waiting for a {kind} source",
                code="live_not_live",
                mount=name[:40],
            )
        elif mount.source not in (kind, "push"):
            refused = LiveError(
                404,
                f"no mount {name} waiting for a {kind} source",
                code="live_wrong_source",
                mount=name,
                source_kind=source_kind(mount.source),
            )
        elif name in self._pushes:
            refused = LiveError(
                409,
                f"mount {name} already has a source connected",
                code="live_source_busy",
                mount=name,
            )
        if refused is not None or mount is None:
            if holder is not None:
                await self.release(name, holder)
            raise refused or LiveError(
                404, f"mount {name} is not live", code="live_not_live", mount=name[:40]
            )
        feed = PushFeed(mount, f"{kind}-{name}")
        self._pushes[name] = feed  # before the await: a second client meanwhile gets 409
        try:
            await feed.start()
        except BaseException:
            if self._pushes.get(name) is feed:
                del self._pushes[name]
            if holder is not None:
                await self.release(name, holder)
            raise
        if holder is not None:
            self._push_holders[feed] = holder
        return feed

    async def close_push(self, name: str, feed: PushFeed) -> None:
        if self._pushes.get(name) is feed:
            del self._pushes[name]
        await feed.close()
        holder = self._push_holders.pop(feed, None)
        if holder is not None:
            await self.release(name, holder)

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
                "mqtt": self.mqtt_wanted(m.name),
            }
            for m in self.mounts.values()
        ]


def source_kind(source: str) -> str:
    """What feeds a mount, said without its address: ``relay`` (never the URL, it may carry a
    token), ``alsa``, ``icecast``, ``browser``..."""
    return source.partition(":")[0][:16]


def _retrieve(task: asyncio.Task[None]) -> None:
    """A stop left behind by ``stop_all``: its outcome, once it ends, is not an error to log."""
    if not task.cancelled():
        task.exception()
