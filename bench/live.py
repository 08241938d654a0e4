"""Live benchmark: N listeners on one live mount, the station beside Icecast2 fed the same stream,
and live over MQTT through Mosquitto.

    python bench/live.py [--listeners 100,1000] [--mqtt-listeners 100,1000] [--seconds 10]
        [--batch-ms 200] [--batch-max-ms 600] [--batch-writes-per-s 2000]
        [--loop asyncio,uvloop] [--icecast-feed same|ffmpeg]

One process runs the station's live hub (``LiveHub`` + the real ``GET /live/<mount>`` route with
signed URLs); the mount encodes a lavfi tone (Opus 24k, 100 ms Ogg pages), hands the very same
pages to a Debian ``icecast2`` started on a free port (``IcecastFeed``: a source PUT; with
``--icecast-feed ffmpeg`` the station's ``IcecastPush`` sink instead, whose ffmpeg re-mux makes
1 s pages) and publishes them through Mosquitto (QoS 0). Listeners run in a separate process
(this script with ``--worker``), so CPU is attributable: station = this process's CPU time over
the measured window (the ffmpeg encoder, constant whatever N, is not counted); Icecast/Mosquitto =
their /proc CPU ticks. Lag: HTTP = a page's arrival minus its media time (granule), relative to
the earliest such value of the same server (so it is the delivery spread the server adds); MQTT =
arrival minus the station's timestamp in the packet (station emit -> horn); add the encoder's
~0.2 s for mouth-to-horn. ``--batch-*`` set the HTTP write batches (``live.http_batch_*``);
``--loop`` runs the whole thing once per event loop, each in a fresh process.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

from devices import BrokerAddress, MqttLink  # noqa: E402
from station import _keys as keys  # noqa: E402
from station._delivery_state import Delivery, DownloadMeter, UrlSigner  # noqa: E402
from station.live import (  # noqa: E402
    LIVE_HUB,
    PACKET,
    IcecastPush,
    LiveHub,
    Mount,
    MountConfig,
    MqttSink,
)
from station.live._ogg import OggPages  # noqa: E402
from station.live._routes import setup_live_routes, signed_name  # noqa: E402
from station.media import ffmpeg_executable  # noqa: E402

TONE = "lavfi:sine=frequency=440:sample_rate=48000"
ICECAST_PW = "bench-source-pw"
LAG_SAMPLED = 50  # listeners whose pages are parsed for lag (the rest only count bytes)
TICK = os.sysconf("SC_CLK_TCK")
FEEDS = {"same": "the same Ogg pages", "ffmpeg": "by IcecastPush (ffmpeg re-mux: 1 s pages)"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_kb(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


# ---------------------------------------------------------------------------- worker side
async def http_listener(
    http: aiohttp.ClientSession, url: str, out: dict[str, Any], lag: bool
) -> None:
    pages = OggPages() if lag else None
    async with http.get(url) as response:
        assert response.status == 200, response.status
        async for chunk in response.content.iter_any():
            now = time.monotonic()
            if out["measuring"]:
                out["bytes"] += len(chunk)
                out["reads"] += 1
            if pages is not None:
                for _page, granule in pages.feed(chunk):
                    if granule > 0 and out["measuring"]:
                        out["lag"].append(now - granule / 48000)


async def mqtt_listener(
    url: str, topic: str, i: int, out: dict[str, Any], ready: asyncio.Event
) -> None:
    link = MqttLink(BrokerAddress.from_url(url), f"horn-{os.getpid()}-{i}", queue_size=1000)
    task = asyncio.create_task(link.run())
    try:
        await link.wait_connected(timeout=60)
        await link.subscribe(topic, qos=0)
        out["connected"] += 1
        if out["connected"] == out["n"]:
            ready.set()
        while True:
            msg = await link.messages.get()
            if out["measuring"]:
                out["bytes"] += len(msg.payload)
                out["messages"] += 1
                sent_ms = PACKET.unpack_from(msg.payload)[3]
                out["lag"].append(time.time() - sent_ms / 1000)
    finally:
        await link.disconnect()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def worker(kind: str, url: str, n: int, seconds: float, topic: str) -> None:
    out: dict[str, Any] = {"bytes": 0, "messages": 0, "reads": 0, "lag": [], "measuring": False}
    out |= {"connected": 0, "n": n}
    ready = asyncio.Event()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        if kind == "http":
            tasks = [
                asyncio.create_task(http_listener(http, url, out, i < LAG_SAMPLED))
                for i in range(n)
            ]
        else:
            tasks = []
            for i in range(n):
                tasks.append(asyncio.create_task(mqtt_listener(url, topic, i, out, ready)))
                if i % 100 == 99:
                    await asyncio.sleep(0.2)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ready.wait(), 60)
        await asyncio.sleep(3)  # everyone connected and streaming
        failed = sum(1 for t in tasks if t.done())
        print("start", flush=True)
        out["measuring"] = True
        await asyncio.sleep(seconds)
        out["measuring"] = False
        print("end", flush=True)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    lags = out["lag"]
    if kind == "http" and lags:
        base = min(lags)
        lags = [x - base for x in lags]
    print(
        json.dumps(
            {
                "bytes": out["bytes"],
                "messages": out["messages"],
                "reads": out["reads"],
                "failed": failed,
                "lag_p50": pct(lags, 0.5),
                "lag_p95": pct(lags, 0.95),
                "lag_max": pct(lags, 1.0),
            }
        ),
        flush=True,
    )


# ---------------------------------------------------------------------------- station side
async def measure(
    kind: str,
    url: str,
    n: int,
    seconds: float,
    peer_pid: int | None,
    topic: str = "",
    publishes: Callable[[], int] | None = None,
) -> dict[str, Any]:
    rss_before = rss_kb()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--worker",
        kind,
        "--url",
        url,
        "--n",
        str(n),
        "--seconds",
        str(seconds),
        "--topic",
        topic,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    marks: dict[str, tuple[float, float, float, int]] = {}
    result: dict[str, Any] = {}
    async for raw in proc.stdout:
        line = raw.decode().strip()
        if line in ("start", "end"):
            peer = proc_cpu_s(peer_pid) if peer_pid else 0.0
            sent = publishes() if publishes is not None else 0
            marks[line] = (time.monotonic(), time.process_time(), peer, sent)
            if line == "start":
                result["station_rss_per_listener_kb"] = (rss_kb() - rss_before) / n
        elif line.startswith("{"):
            result.update(json.loads(line))
    await proc.wait()
    wall = marks["end"][0] - marks["start"][0]
    result["station_cpu_pct"] = 100 * (marks["end"][1] - marks["start"][1]) / wall
    result["peer_cpu_pct"] = 100 * (marks["end"][2] - marks["start"][2]) / wall
    result["kbps_per_listener"] = result["bytes"] * 8 / 1000 / wall / n
    result["reads_per_s"] = result["reads"] / wall / n  # what the listener's socket yielded
    # the station's own count of writes per listener (one per published batch)
    result["writes_per_s"] = (marks["end"][3] - marks["start"][3]) / wall if publishes else None
    return result


async def baseline(seconds: float, peer_pid: int | None) -> tuple[float, float]:
    """CPU % of this process and of the peer with nobody listening."""
    t0, c0 = time.monotonic(), time.process_time()
    p0 = proc_cpu_s(peer_pid) if peer_pid else 0.0
    await asyncio.sleep(seconds)
    wall = time.monotonic() - t0
    p1 = proc_cpu_s(peer_pid) if peer_pid else 0.0
    return 100 * (time.process_time() - c0) / wall, 100 * (p1 - p0) / wall


def start_icecast(tmp: Path, port: int, clients: int) -> subprocess.Popen[bytes] | None:
    binary = shutil.which("icecast2") or shutil.which("icecast")
    if binary is None:
        return None
    logdir = tmp / "icecast-log"
    logdir.mkdir()
    owner = ""
    if os.geteuid() == 0:
        shutil.chown(logdir, "icecast2")
        owner = "<security><changeowner><user>icecast2</user><group>icecast</group>"
        owner += "</changeowner></security>"
    conf = tmp / "icecast.xml"
    conf.write_text(f"""<icecast><limits><clients>{clients + 50}</clients><sources>4</sources>
<burst-size>0</burst-size></limits>
<authentication><source-password>{ICECAST_PW}</source-password><admin-user>admin</admin-user>
<admin-password>{ICECAST_PW}</admin-password></authentication>
<hostname>127.0.0.1</hostname><listen-socket><port>{port}</port><bind-address>127.0.0.1</bind-address></listen-socket>
<paths><basedir>/usr/share/icecast2</basedir><logdir>{logdir}</logdir><webroot>/usr/share/icecast2/web</webroot>
<adminroot>/usr/share/icecast2/admin</adminroot></paths>
<logging><accesslog>access.log</accesslog><errorlog>error.log</errorlog><loglevel>2</loglevel></logging>{owner}</icecast>""")
    os.chmod(tmp, 0o755)
    os.chmod(conf, 0o644)
    return subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL)


def start_mosquitto(tmp: Path, port: int) -> subprocess.Popen[bytes] | None:
    binary = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if binary is None:
        return None
    conf = tmp / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 10000\n"
        "persistence false\nmax_connections -1\n"
    )
    os.chmod(conf, 0o644)
    return subprocess.Popen(
        [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


class IcecastFeed:
    """The mount's own Ogg pages, byte for byte, as an Icecast source (``PUT``): Icecast gets
    exactly the stream the station's listeners get (the station's ``IcecastPush`` re-muxes
    through ffmpeg, whose Ogg muxer makes 1 s pages: ``--icecast-feed ffmpeg`` measures that)."""

    def __init__(self, port: int, mount: Mount) -> None:
        self.port, self.mount = port, mount
        self._writer: asyncio.StreamWriter | None = None
        self._failed = False

    async def __call__(self, chunk: bytes, granule: int) -> None:
        if self._writer is None:
            if self._failed:
                return
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            auth = base64.b64encode(f"source:{ICECAST_PW}".encode()).decode()
            writer.write(
                f"PUT /{self.mount.name} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Basic {auth}\r\nContent-Type: {self.mount.content_type}\r\n"
                "Ice-Public: 0\r\n\r\n".encode()
            )
            status = await reader.readline()
            if b" 200 " not in status:
                self._failed = True
                writer.close()
                print(f"icecast refused the source: {status!r}", flush=True)
                return
            writer.write(self.mount.fanout.header)
            self._writer = writer
        self._writer.write(chunk)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()


async def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


def show(label: str, n: int, r: dict[str, Any], peer: str) -> None:
    writes = r.get("writes_per_s")
    per_write = ""
    if writes:  # CPU per socket write: station CPU (s/s) / (listeners x writes/s)
        per_write = f"  {r['station_cpu_pct'] / 100 / (n * writes) * 1e6:4.1f} us/write"
    print(
        f"{label:<22} N={n:<5} CPU {r['station_cpu_pct']:6.2f}% "
        f"({r['station_cpu_pct'] / n * 1000:6.2f} m%/listener)  "
        f"{peer} CPU {r['peer_cpu_pct']:6.2f}%"
        f"  {r['kbps_per_listener']:5.1f} kbit/s each  lag p50 {r['lag_p50'] * 1000:6.0f} ms"
        f" p95 {r['lag_p95'] * 1000:6.0f} ms  failed {r['failed']}"
        f"  reads/s {r['reads_per_s']:4.1f}"
        + (f"  writes/s {writes:4.1f}{per_write}" if writes else "")
        + f"  RSS +{r['station_rss_per_listener_kb']:.1f} KiB/listener",
        flush=True,
    )


async def main(args: argparse.Namespace, loop_name: str) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="loaxa-bench-live-"))
    ffmpeg = ffmpeg_executable()
    ice_port, mqtt_port = free_port(), free_port()
    icecast = start_icecast(tmp, ice_port, max(args.listeners))
    mosquitto = start_mosquitto(tmp, mqtt_port)
    signer = UrlSigner(os.urandom(32), 3600)
    app = web.Application()
    app[keys.DELIVERY] = Delivery(signer, DownloadMeter())
    setup_live_routes(app)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    config = MountConfig(
        batch_ms=args.batch_ms,
        batch_max_ms=max(args.batch_ms, args.batch_max_ms),
        batch_writes_per_s=args.batch_writes_per_s,
    )
    hub = LiveHub(
        ffmpeg,
        config,
        lambda m, c: f"{base}/live/{m}?{signer.query(c, signed_name(m))}",
        "loaxa/v1/bench",
    )
    app[LIVE_HUB] = hub
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=2048).start()
    link: MqttLink | None = None
    link_task = None
    if icecast is not None:
        await wait_port(ice_port)
        if args.icecast_feed == "ffmpeg":
            hub.sink_factories.append(
                lambda m: IcecastPush(
                    ffmpeg, f"icecast://source:{ICECAST_PW}@127.0.0.1:{ice_port}/{m.name}", m
                )
            )
        else:
            hub.sink_factories.append(lambda m: IcecastFeed(ice_port, m))
    if mosquitto is not None:
        await wait_port(mqtt_port)
        link = MqttLink(BrokerAddress.from_url(f"mqtt://127.0.0.1:{mqtt_port}"), "bench-station")
        link_task = asyncio.create_task(link.run())
        await link.wait_connected(timeout=10)
        station_link = link
        hub.sink_factories.append(lambda m: MqttSink(station_link, hub.topic_for(m.name), m))
    try:
        await hub.start("bench", TONE)
        await asyncio.sleep(3)
        batching = hub.mounts["bench"].fanout.batching
        print(
            f"# live benchmark: {os.cpu_count()} cores, {loop_name} event loop, Opus 24k mono, "
            f"{args.seconds:g} s windows, Ogg pages of 100 ms; station HTTP batches "
            f"{batching.min_ms}-{batching.max_ms} ms (<= {batching.writes_per_s} writes/s); "
            f"icecast2 fed {FEEDS[args.icecast_feed]}",
            flush=True,
        )
        idle = await baseline(args.seconds, icecast.pid if icecast else None)
        print(
            f"no listeners: station {idle[0]:.2f}% CPU (encoder pipe, sinks), "
            f"icecast2 {idle[1]:.2f}%; "
            "the per-listener figures below subtract these",
            flush=True,
        )
        for n in args.listeners:
            r = await measure(
                "http",
                hub.url_for("bench", "c-1"),
                n,
                args.seconds,
                None,
                publishes=lambda: hub.mounts["bench"].fanout.publishes,
            )
            r["station_cpu_pct"] -= idle[0]
            show(f"station HTTP {batching.batch_ms(n):.0f} ms", n, r, "-")
            if icecast is not None:
                ri = await measure(
                    "http", f"http://127.0.0.1:{ice_port}/bench", n, args.seconds, icecast.pid
                )
                ri["station_cpu_pct"], ri["peer_cpu_pct"] = (
                    ri["peer_cpu_pct"] - idle[1],
                    ri["station_cpu_pct"],
                )
                show("icecast2 (peer)", n, ri, "bench proc")
                if ri["station_cpu_pct"] < 100 / TICK / args.seconds:  # under one /proc tick
                    print("  -> icecast2's CPU is below /proc's resolution here: use --seconds 30")
                    continue
                ratio = r["station_cpu_pct"] / ri["station_cpu_pct"]
                print(
                    f"  -> station/icecast CPU per listener at N={n}: {ratio:.2f}x "
                    "(goal <= 2x at 1000)",
                    flush=True,
                )
            else:
                print("  icecast2 not installed: no peer figures (apt-get install icecast2)")
        if mosquitto is not None:
            for n in args.mqtt_listeners:
                r = await measure(
                    "mqtt",
                    f"mqtt://127.0.0.1:{mqtt_port}",
                    n,
                    args.seconds,
                    mosquitto.pid,
                    hub.topic_for("bench"),
                )
                r["station_cpu_pct"] -= idle[0]
                show("MQTT via mosquitto", n, r, "mosquitto")
                total = r["station_cpu_pct"] + r["peer_cpu_pct"]
                print(
                    f"  -> station+broker {total:.2f}% = {total / n * 1000:.2f} m%/listener; "
                    f"{r['messages'] / n / args.seconds:.1f} msg/s each",
                    flush=True,
                )
        else:
            print("mosquitto not installed: no MQTT figures")
        mount = hub.mounts["bench"]
        print(
            f"fan-out: skipped {mount.fanout.counters.skipped}, "
            f"dropped {mount.fanout.counters.dropped}; "
            f"per-listener buffer bound {mount.config.listener_buffer_bytes // 1024} KiB",
            flush=True,
        )
    finally:
        await hub.stop_all()
        await runner.cleanup()
        if link is not None and link_task is not None:
            await link.disconnect()
            link_task.cancel()
            await asyncio.gather(link_task, return_exceptions=True)
        for child in (icecast, mosquitto):
            if child is not None:
                child.terminate()
                child.wait(5)
        shutil.rmtree(tmp, ignore_errors=True)


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ints = lambda s: [int(x) for x in s.split(",") if x and int(x) > 0]  # noqa: E731
    p.add_argument("--listeners", type=ints, default=[100, 1000])
    p.add_argument("--mqtt-listeners", type=ints, default=[100, 1000])
    p.add_argument("--seconds", type=float, default=10.0)
    defaults = MountConfig()
    p.add_argument("--batch-ms", type=int, default=defaults.batch_ms, help="smallest batch")
    p.add_argument("--batch-max-ms", type=int, default=defaults.batch_max_ms)
    p.add_argument("--batch-writes-per-s", type=int, default=defaults.batch_writes_per_s)
    p.add_argument(
        "--loop",
        default="asyncio",
        help="station event loops to measure in turn, e.g. asyncio,uvloop (if installed)",
    )
    p.add_argument(
        "--icecast-feed",
        choices=["same", "ffmpeg"],
        default="same",
        help="same: the station's own Ogg pages verbatim; ffmpeg: the IcecastPush sink",
    )
    p.add_argument("--worker", choices=["http", "mqtt"])
    p.add_argument("--url", default="")
    p.add_argument("--n", type=int, default=0)
    p.add_argument("--topic", default="")
    return p.parse_args()


if __name__ == "__main__":
    a = parse()
    if a.worker:
        asyncio.run(worker(a.worker, a.url, a.n, a.seconds, a.topic))
    elif "," in a.loop:  # one process per loop: RSS and allocator state start afresh
        for name in a.loop.split(","):
            argv = [arg if arg != a.loop else name for arg in sys.argv[1:]]
            if "--loop" not in argv:
                argv += ["--loop", name]
            subprocess.run([sys.executable, __file__, *argv], check=False)
    elif a.loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            print("uvloop not installed (pip install uvloop): skipped", flush=True)
        else:
            uvloop.run(main(a, a.loop))
    else:
        asyncio.run(main(a, a.loop))
