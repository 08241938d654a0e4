"""Fleet benchmark: the station and N simulated clusters through Mosquitto, with a raw baseline.

    python bench/fleet.py [--clusters 2000,10000] [--heartbeat-s 10] [--mqtt mqtt://host:port]
                          [--database-url postgresql://...]

Three processes so CPU and memory are attributable: a Mosquitto of its own (free port,
``max_queued_messages`` raised; or ``--mqtt`` to use a running broker), the **station**
(``start_station`` with SQLite, N clusters registered) and the **simulator** (``SimulatedFleet``).
For each N it prints: connect-storm time (simulator: all clusters online; station: all births
seen), heartbeat processing rate (offered N / interval, processed by the station's gateway and
monitor, drops), fan-out of one ``time`` command to every cluster with ack latency p50/p99
(sent to ack received by the station), station CPU seconds and peak RSS (VmHWM), simulator RSS.
The raw baseline in the same run: a bare paho echo client answering each command topic, and a
bare paho publisher/subscriber flood, so the station's overhead reads as a ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# bench/scheduler.py would shadow the scheduler package: keep this folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import psutil  # noqa: E402

STATION = "xa-bench"


def _emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float(psutil.Process(pid).memory_info().rss) / 2**20


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


# -- role: station ------------------------------------------------------------------------------


async def station_role(
    mqtt_url: str, count: int, heartbeat_s: float, workdir: str, database_url: str
) -> None:
    from devices.protocol import TimeCommand
    from station import _keys as keys
    from station._services import register_clusters
    from station.app import start_station
    from station.demo import demo_settings

    settings = demo_settings(
        Path(workdir), mqtt_url=mqtt_url, station_id=STATION, database_url=database_url
    )
    settings = settings.model_copy(
        update={
            "devices": settings.devices.model_copy(update={"heartbeat_interval_s": heartbeat_s})
        }
    )
    station = await start_station(settings)
    try:
        app = station.app
        ids = [f"SIM{n:04d}" for n in range(1, count + 1)]
        await register_clusters(app[keys.SESSIONS], [(cid, cid) for cid in ids])
        gateway, link = app[keys.GATEWAY], app[keys.LINK]
        gateway.remember(ids)
        acks: dict[str, float] = {}
        inner = gateway.handler

        class Timed:  # the station's handler, with ack arrival times noted
            def __getattr__(self, name: str) -> Any:
                return getattr(inner, name)

            async def on_ack(self, message: Any) -> None:
                acks.setdefault(message.cmd_id, time.perf_counter())
                await inner.on_ack(message)

            # the gateway's batching hooks, spelled out (a Protocol check may not see
            # __getattr__): it flushes the station's buffered writes through them
            @property
            def flush_interval_s(self) -> float | None:
                return inner.flush_interval_s

            async def flush(self) -> int:
                return await inner.flush()

        gateway.handler = Timed()
        _emit(role="station", ready=True)
        await asyncio.to_thread(sys.stdin.readline)  # "go": the simulator started
        t0 = time.perf_counter()
        births_deadline = t0 + 240
        while gateway.received["status"] < count and time.perf_counter() < births_deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        births_s = time.perf_counter() - t0
        births = gateway.received["status"]
        await asyncio.sleep(heartbeat_s)  # let the backlog of the storm drain
        cpu0 = psutil.Process().cpu_times()
        beats0, t0 = gateway.received["heartbeat"], time.perf_counter()
        await asyncio.sleep(max(10.0, 2 * heartbeat_s))
        window = time.perf_counter() - t0
        beats = gateway.received["heartbeat"] - beats0
        cpu1 = psutil.Process().cpu_times()
        now = datetime.now(UTC)
        commands = {
            cid: TimeCommand(
                id=f"bench.{cid}", issued_at=now, expires_at=now + timedelta(minutes=1)
            )
            for cid in ids
        }
        start = time.perf_counter()
        sends = [gateway.send(cid, cmd, timeout=60) for cid, cmd in commands.items()]
        failures = sum(r is not None for r in await asyncio.gather(*sends, return_exceptions=True))
        sent_s = time.perf_counter() - start
        deadline = start + 60
        while len(acks) < count and time.perf_counter() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        latencies = [acks[c.id] - start for c in commands.values() if c.id in acks]
        cpu2 = psutil.Process().cpu_times()
        _emit(
            role="station",
            births_s=births_s,
            births=births,
            heartbeats_per_s=beats / window,
            heartbeat_cpu_s=(cpu1.user + cpu1.system) - (cpu0.user + cpu0.system),
            window_s=window,
            fanout_publish_s=sent_s,
            fanout_failed=failures,
            acks=len(latencies),
            ack_p50_ms=1000 * _pct(latencies, 0.5),
            ack_p99_ms=1000 * _pct(latencies, 0.99),
            ack_max_ms=1000 * max(latencies, default=float("nan")),
            fanout_cpu_s=(cpu2.user + cpu2.system) - (cpu1.user + cpu1.system),
            cpu_total_s=cpu2.user + cpu2.system,
            dropped=dict(gateway.dropped + link.dropped),
            peak_rss_mb=_peak_rss_mb(os.getpid()),
        )
        await asyncio.to_thread(sys.stdin.readline)
    finally:
        await station.stop()


# -- role: simulator ----------------------------------------------------------------------------


async def sim_role(mqtt_url: str, count: int, heartbeat_s: float) -> None:
    from simulator import SimulatedFleet, cluster_ids

    fleet = SimulatedFleet(mqtt_url, STATION, cluster_ids(count), heartbeat_s=heartbeat_s)
    started = time.perf_counter()
    await fleet.start(online_within_s=120)
    _emit(role="sim", online_s=time.perf_counter() - started, rss_mb=_peak_rss_mb(os.getpid()))
    try:
        await asyncio.to_thread(sys.stdin.readline)
    finally:
        await fleet.stop()


# -- raw baseline: bare paho, same broker -------------------------------------------------------


def baseline(host: str, port: int, count: int) -> dict[str, float]:
    """Echo round trip of ``count`` QoS 1 messages and a QoS 0 flood, bare paho, threaded."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    def client(name: str) -> mqtt.Client:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name, protocol=mqtt.MQTTv311)
        c.max_inflight_messages_set(1000)
        c.max_queued_messages_set(0)
        c.connect(host, port)
        c.loop_start()
        return c

    echo, sender = client("base-echo"), client("base-sender")
    got: dict[str, float] = {}
    flood = [0]

    def on_echo(c: mqtt.Client, u: Any, m: mqtt.MQTTMessage) -> None:
        c.publish(m.topic.replace("/cmd", "/ack"), m.payload, qos=1)

    def on_sender(c: mqtt.Client, u: Any, m: mqtt.MQTTMessage) -> None:
        if m.topic.endswith("/ack"):
            got.setdefault(m.topic, time.perf_counter())
        else:
            flood[0] += 1

    echo.on_message, sender.on_message = on_echo, on_sender
    echo.subscribe("base/+/cmd", qos=1)
    sender.subscribe([("base/+/ack", 1), ("base/flood", 0)])
    time.sleep(0.5)
    payload = b'{"v":1,"type":"time","id":"x","issued_at":"2026-01-01T00:00:00Z"}'
    start = time.perf_counter()
    for n in range(count):
        sender.publish(f"base/{n}/cmd", payload, qos=1)
    while len(got) < count and time.perf_counter() - start < 60:
        time.sleep(0.01)
    latencies = [t - start for t in got.values()]
    beat = b"x" * 330  # a heartbeat's size
    start = time.perf_counter()
    for _ in range(count * 5):
        echo.publish("base/flood", beat, qos=0)
    while flood[0] < count * 5 and time.perf_counter() - start < 30:
        time.sleep(0.01)
    flood_rate = flood[0] / (time.perf_counter() - start)
    for c in (echo, sender):
        c.disconnect()
        c.loop_stop()
    return {"echo_p50_ms": 1000 * _pct(latencies, 0.5), "echo_p99_ms": 1000 * _pct(latencies, 0.99),
            "echoed": len(latencies), "flood_per_s": flood_rate}  # fmt: skip


# -- orchestration ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_mosquitto(tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = _free_port()
    conf = tmp / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 100000\n"
        "max_inflight_messages 0\npersistence false\nlog_dest none\n"
    )
    proc = subprocess.Popen([exe, "-c", str(conf)])
    for _ in range(100):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, port
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("mosquitto did not start")


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )


def _read(proc: subprocess.Popen[str]) -> dict[str, Any]:
    assert proc.stdout is not None
    while line := proc.stdout.readline():
        if line.startswith("{"):
            return dict(json.loads(line))
    raise RuntimeError(f"process {proc.args!r} ended with {proc.wait()}")


def _say(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()


def _pg(base: str, sql: str) -> None:
    import sqlalchemy as sa

    from station.config import sync_driver_url

    engine = sa.create_engine(sync_driver_url(base), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(sql)
    finally:
        engine.dispose()


def run_one(
    mqtt_url: str, count: int, heartbeat_s: float, tmp: Path, database_url: str
) -> dict[str, Any]:
    workdir = tmp / f"station-{count}"
    workdir.mkdir()
    schema = f"bench_fleet_{count}_{os.getpid()}"
    url = database_url
    if database_url.startswith("postgresql"):
        _pg(database_url, f'CREATE SCHEMA "{schema}"')
        sep = "&" if "?" in database_url else "?"
        url = f"{database_url}{sep}options=-csearch_path%3D{schema}"
    try:
        return _run_one(mqtt_url, count, heartbeat_s, workdir, url)
    finally:
        if database_url.startswith("postgresql"):
            _pg(database_url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _run_one(
    mqtt_url: str, count: int, heartbeat_s: float, workdir: Path, database_url: str
) -> dict[str, Any]:
    station = _spawn("_station", mqtt_url, str(count), str(heartbeat_s), str(workdir), database_url)
    sim: subprocess.Popen[str] | None = None
    try:
        _read(station)
        sim = _spawn("_sim", mqtt_url, str(count), str(heartbeat_s))
        _say(station)
        sim_result = _read(sim)
        station_result = _read(station)
        sim_rss = _peak_rss_mb(sim.pid)
        return {**station_result, **sim_result, "sim_rss_mb": sim_rss}
    finally:
        for proc in (p for p in (station, sim) if p is not None):
            if proc.poll() is None:
                _say(proc)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", "--counts", dest="counts", default="2000,10000")
    parser.add_argument("--heartbeat-s", type=float, default=10.0)
    parser.add_argument("--mqtt", default="", help="use this broker instead of our own Mosquitto")
    parser.add_argument("--database-url", default="", help="default: SQLite in a temporary folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="loaxa-fleet-") as tmp_name:
        tmp = Path(tmp_name)
        broker = None
        if args.mqtt:
            mqtt_url = args.mqtt
        else:
            broker, port = _start_mosquitto(tmp)
            mqtt_url = f"mqtt://127.0.0.1:{port}"
        host, port_s = mqtt_url.removeprefix("mqtt://").rsplit("@", 1)[-1].split(":")
        try:
            for count in (int(c) for c in args.counts.split(",")):
                r = run_one(mqtt_url, count, args.heartbeat_s, tmp, args.database_url)
                b = baseline(host, int(port_s), count)
                database = args.database_url.split("@")[-1] or "SQLite"
                print(
                    f"\n== {count} clusters, heartbeat every {args.heartbeat_s:g} s, {mqtt_url}, "
                    f"database {database}"
                )
                print(
                    f"connect storm: simulator all online {r['online_s']:.1f} s; "
                    f"station handled {r['births']} births in {r['births_s']:.1f} s after the "
                    "simulator process was spawned"
                )
                print(
                    f"heartbeats: offered {count / args.heartbeat_s:.0f}/s, station processed "
                    f"{r['heartbeats_per_s']:.0f}/s using "
                    f"{r['heartbeat_cpu_s'] / r['window_s']:.0%}"
                    f" of a core; dropped {r['dropped'] or 'none'}"
                )
                print(
                    f"  baseline bare paho QoS 0 flood through the broker: {b['flood_per_s']:.0f}/s"
                )
                print(
                    f"fan-out of one command: {r['acks']}/{count} acked, publish "
                    f"{r['fanout_publish_s']:.2f} s, ack p50 {r['ack_p50_ms']:.0f} ms, "
                    f"p99 {r['ack_p99_ms']:.0f} ms, max {r['ack_max_ms']:.0f} ms, station CPU "
                    f"{r['fanout_cpu_s']:.2f} s"
                )
                print(
                    f"  baseline bare paho echo of {b['echoed']}: p50 {b['echo_p50_ms']:.0f} ms,"
                    f" p99 {b['echo_p99_ms']:.0f} ms -> station/baseline p99 "
                    f"{r['ack_p99_ms'] / b['echo_p99_ms']:.1f}x"
                )
                print(
                    f"load average during the run: {os.getloadavg()[0]:.1f} "
                    f"on {os.cpu_count()} cores"
                )
                print(f"station: peak RSS {r['peak_rss_mb']:.0f} MB, CPU {r['cpu_total_s']:.1f} s;"
                      f" simulator: peak RSS {r['sim_rss_mb']:.0f} MB")  # fmt: skip
        finally:
            if broker is not None:
                broker.terminate()
                broker.wait(10)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_station":
        url, n, hb, wd, db = sys.argv[2:7]
        asyncio.run(station_role(url, int(n), float(hb), wd, db))
    elif len(sys.argv) > 1 and sys.argv[1] == "_sim":
        url, n, hb = sys.argv[2:5]
        asyncio.run(sim_role(url, int(n), float(hb)))
    else:
        main()
