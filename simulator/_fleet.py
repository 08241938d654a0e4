"""A fleet of simulated clusters in one process, and the ``loaxa sim`` runner."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType

import aiohttp

from devices.protocol import PowerTarget, is_valid_id

from ._cluster import DEFAULT_CACHE_BYTES, Codec, LiveTransport, SimulatedCluster
from ._driver import MqttDriver
from ._faults import FaultInjector, FaultKind, parse_faults
from ._media import client_ssl_context, make_http_session
from ._records import FleetStats, PlayRecord
from ._url import BrokerUrl

log = logging.getLogger(__name__)

_YIELD_EVERY = 200  # start this many clusters, then let the loop run
BRIDGE_OUTPUTS: tuple[PowerTarget, ...] = ("amplifier", "transmitter", "line")


class SimulatedFleet:
    """N simulated clusters on one asyncio loop, each with its own MQTT connection.

    ``credentials`` maps a cluster id to (username, password); clusters not in it use the user
    and password of the URL, if any. ``codecs`` maps a cluster id to the codecs its birth
    announces (default both), ``live`` the stream transports (default http and mqtt).
    ``speed`` compresses playback of media (not of live streams).
    Every cluster announces ``outputs`` (``power`` targets) and a cache of ``cache_bytes``.
    ``http_ca`` is the station's CA for HTTPS downloads and streams: PEM text (a provisioning
    bundle's ``ca_pem``) or a file; None = ``ca_file`` (the bundle's one CA serves MQTT and
    HTTPS), else only the system's CAs. A station they do not trust gets ``download_failed``.
    """

    def __init__(
        self,
        mqtt_url: str,
        station_id: str,
        cluster_ids: Iterable[str],
        *,
        speed: float = 1.0,
        heartbeat_s: float = 30.0,
        credentials: Mapping[str, tuple[str, str]] | None = None,
        ca_file: str | None = None,
        http_ca: str | None = None,
        keepalive: int = 60,
        codecs: Mapping[str, Sequence[Codec]] | None = None,
        live: Mapping[str, Sequence[LiveTransport]] | None = None,
        outputs: Sequence[PowerTarget] = ("amplifier",),
        cache_bytes: int | None = DEFAULT_CACHE_BYTES,
        bridges: Mapping[str, Sequence[str]] | None = None,
        faults: Mapping[FaultKind, float] | None = None,
        seed: int | None = None,
    ) -> None:
        self.broker = BrokerUrl.parse(mqtt_url, ca_file=ca_file)
        self.station_id = station_id
        self._ids = list(dict.fromkeys(cluster_ids))
        bad = [cid for cid in [station_id, *self._ids] if not is_valid_id(cid)]
        if bad:
            raise ValueError(f"invalid ids: {bad[:5]}")
        self._speed = speed
        self._heartbeat_s = heartbeat_s
        self._credentials = dict(credentials or {})
        self._keepalive = keepalive
        self._http_ca = http_ca or ca_file
        self._codecs = dict(codecs or {})
        self._live = dict(live or {})
        self._outputs = tuple(outputs)
        self._cache_bytes = cache_bytes
        self._driver: MqttDriver | None = None
        self._http: aiohttp.ClientSession | None = None
        self.clusters: dict[str, SimulatedCluster] = {}
        # bridge id -> the legacy FM/wired clusters it drives (they report nothing themselves)
        self._bridges = {cid: list(legacy) for cid, legacy in (bridges or {}).items()}
        # fault hooks for tests and the CLI; random faults run only when rates are given
        self.faults = FaultInjector(self.clusters, faults, seed=seed)
        self._random_faults = bool(faults)
        self._fault_task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> SimulatedFleet:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self, online_within_s: float | None = None) -> None:
        """Connect every cluster; return once all are online (subscribed, birth acknowledged).

        Raises TimeoutError (after stopping the fleet) if some are not online within
        ``online_within_s`` seconds (default 30 s + 10 ms per cluster).
        """
        if self._driver is not None:
            raise RuntimeError("fleet already started")
        self._driver = MqttDriver()
        self._driver.start()
        self._http = make_http_session(await asyncio.to_thread(client_ssl_context, self._http_ca))
        for n, cid in enumerate(self._ids, 1):
            user, password = self._credentials.get(
                cid, (self.broker.username, self.broker.password)
            )
            cluster = SimulatedCluster(
                cid,
                self.station_id,
                broker=self.broker,
                driver=self._driver,
                http=self._http,
                speed=self._speed,
                heartbeat_s=self._heartbeat_s,
                username=user,
                password=password,
                keepalive=self._keepalive,
                codecs=self._codecs.get(cid, ("opus", "mp3")),
                live=self._live.get(cid, ("http", "mqtt")),
                outputs=BRIDGE_OUTPUTS if cid in self._bridges else self._outputs,
                bridged=self._bridges.get(cid, ()),
                cache_bytes=self._cache_bytes,
            )
            self.clusters[cid] = cluster
            cluster.start()
            if n % _YIELD_EVERY == 0:
                await asyncio.sleep(0)
        limit = online_within_s if online_within_s is not None else 30 + 0.01 * len(self._ids)
        try:
            async with asyncio.timeout(limit):
                await asyncio.gather(*(c.wait_online() for c in self.clusters.values()))
        except TimeoutError:
            missing = sum(not c.online for c in self.clusters.values())
            await self.stop()
            raise TimeoutError(
                f"{missing} of {len(self._ids)} clusters not online on {self.broker.masked()} "
                f"after {limit:.0f} s"
            ) from None
        if self._random_faults:
            self._fault_task = asyncio.get_running_loop().create_task(
                self.faults.run(), name="sim-faults"
            )

    async def stop(self) -> None:
        """Retained ``offline`` then a clean DISCONNECT for every cluster; release everything."""
        if self._fault_task is not None:
            self._fault_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._fault_task
            self._fault_task = None
        self.faults.close()  # pending faults heal: clusters come back before they leave
        try:
            results = await asyncio.gather(
                *(c.stop() for c in self.clusters.values()), return_exceptions=True
            )
            for cid, result in zip(self.clusters, results, strict=True):
                if isinstance(result, Exception):
                    log.error("cluster %s did not stop cleanly: %r", cid, result)
        finally:
            if self._driver is not None:
                await self._driver.aclose()
                self._driver = None
            if self._http is not None:
                await self._http.close()
                self._http = None

    def stats(self) -> FleetStats:
        clusters = self.clusters.values()
        return FleetStats(
            clusters=len(self.clusters),
            connected=sum(c.connected for c in clusters),
            online=sum(c.online for c in clusters),
            playing=sum(c.playing is not None for c in clusters),
            plays_started=sum(c.counters.plays_started for c in clusters),
            plays_finished=sum(c.counters.plays_finished for c in clusters),
            plays_interrupted=sum(c.counters.plays_interrupted for c in clusters),
            downloads_failed=sum(c.counters.downloads_failed for c in clusters),
            downloads=sum(c.cache.downloads for c in clusters),
            bytes_downloaded=sum(c.cache.bytes_downloaded for c in clusters),
            commands=sum(c.counters.commands for c in clusters),
            malformed=sum(c.counters.malformed for c in clusters),
        )

    def records(self) -> dict[str, list[PlayRecord]]:
        """Play records per cluster id (the latest 1,000 of each)."""
        return {cid: list(c.records) for cid, c in self.clusters.items()}


def cluster_ids(count: int, prefix: str = "SIM") -> list[str]:
    """``SIM0001`` .. ``SIMnnnn`` (at least four digits)."""
    return [f"{prefix}{n:04d}" for n in range(1, count + 1)]


async def run_simulator(
    mqtt_url: str,
    station_id: str,
    count: int,
    *,
    prefix: str = "SIM",
    speed: float = 1.0,
    heartbeat_s: float = 30.0,
    ca_file: str | None = None,
    http_ca: str | None = None,
    status_every: float = 5.0,
    stop_event: asyncio.Event | None = None,
    print_fn: Callable[[str], object] = print,
    faults: str = "",
    seed: int | None = None,
    bridges: int = 0,
) -> FleetStats:
    """Run ``count`` clusters until ``stop_event`` is set (or the task is cancelled).

    ``faults`` is a spec like ``"link-drop:0.5,power-loss:0.01"`` (per cluster per minute, see
    ``_faults``), reproducible with ``seed``. The first ``bridges`` clusters are legacy bridges,
    each driving one FM and one wired cluster (``<id>.fm``, ``<id>.wired``).
    Prints one status line every ``status_every`` seconds; returns the final counters.
    """
    ids = cluster_ids(count, prefix)
    bridged = {cid: [f"{cid}.fm", f"{cid}.wired"] for cid in ids[:bridges]}
    stop = stop_event if stop_event is not None else asyncio.Event()
    fleet = SimulatedFleet(
        mqtt_url,
        station_id,
        ids,
        speed=speed,
        heartbeat_s=heartbeat_s,
        ca_file=ca_file,
        http_ca=http_ca,
        bridges=bridged,
        faults=parse_faults(faults),
        seed=seed,
    )
    print_fn(f"sim: starting {count} clusters for station {station_id} on {fleet.broker.masked()}")
    started = time.monotonic()
    async with fleet:
        print_fn(f"sim: {count} clusters online in {time.monotonic() - started:.1f} s")
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(status_every):
                    await stop.wait()
            injected = ", ".join(f"{k} {n}" for k, n in sorted(fleet.faults.counts.items()))
            print_fn(f"sim: {fleet.stats().line()}" + (f" | faults {injected}" if injected else ""))
        print_fn("sim: stopping")
    stats = fleet.stats()
    print_fn(f"sim: stopped; {stats.line()}")
    return stats
