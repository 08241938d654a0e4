"""Running things: ``serve``, ``sim``, ``demo``, ``db upgrade``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from ._common import (
    Subparsers,
    add_command,
    add_group,
    settings_from,
    setup_logging,
    wait_for_signal,
)


def cmd_serve(args: argparse.Namespace) -> int:
    from station.app import start_station

    settings = settings_from(args)
    setup_logging(settings)

    async def serve() -> None:
        station = await start_station(settings)
        print(
            f"loaxa station {settings.station.id} serving on {station.base_url} "
            f"(MQTT {station.runtime.mqtt_url})",
            flush=True,
        )
        try:
            await wait_for_signal()
        finally:
            await station.stop()

    asyncio.run(serve())
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from station.db import upgrade

    settings = settings_from(args)
    upgrade(settings.database.url)
    print(f"database upgraded: {settings.redacted()['database']['url']}")
    return 0


def cmd_sim(args: argparse.Namespace) -> int:
    from simulator import run_simulator

    if args.http_ca is not None and not Path(args.http_ca).is_file():
        print(f"loaxa sim: --http-ca {args.http_ca}: no such file", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING)

    async def run() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(
            run_simulator(
                args.mqtt,
                args.station,
                args.count,
                prefix=args.prefix,
                speed=args.speed,
                stop_event=stop,
                heartbeat_s=args.heartbeat_s,
                faults=args.faults,
                seed=args.seed,
                bridges=args.bridges,
                http_ca=args.http_ca,
            )
        )
        waiter = asyncio.create_task(wait_for_signal())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        stop.set()
        waiter.cancel()
        await task

    asyncio.run(run())
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from station.demo import main as demo_main

    return demo_main(keep_running=args.keep_running, clusters=args.clusters)


def register(sub: Subparsers) -> None:
    add_command(sub, "serve", cmd_serve, "run the station")
    db = add_group(sub, "db", "database maintenance")
    add_command(db, "upgrade", cmd_db_upgrade, "apply database migrations")

    sim = sub.add_parser("sim", help="run simulated clusters against a broker")
    sim.add_argument("--mqtt", default="mqtt://127.0.0.1:1883", help="broker URL")
    sim.add_argument("--station", default="xa-demo", help="station id")
    sim.add_argument("--count", type=int, default=20)
    sim.add_argument("--prefix", default="SIM")
    sim.add_argument("--speed", type=float, default=1.0, help="playback speed factor")
    sim.add_argument("--heartbeat-s", type=float, default=30.0, help="heartbeat interval")
    sim.add_argument(
        "--faults",
        default="",
        help="random faults, per cluster per minute: link-drop:0.5,power-loss:0.01,amplifier:0.1,"
        "slow-link:0.1,clock-skew:0.1,corrupt-download:0.1,cache-full:0.1",
    )
    sim.add_argument("--seed", type=int, default=None, help="seed for reproducible faults")
    sim.add_argument("--bridges", type=int, default=0, help="this many clusters are bridges")
    sim.add_argument(
        "--http-ca",
        default=None,
        help="the station's CA certificate (PEM file) for HTTPS downloads and streams, when "
        "its certificate is from a private CA (http.tls_ca); default: the system's CAs",
    )
    sim.set_defaults(func=cmd_sim)

    demo = sub.add_parser("demo", help="run everything on this machine and play a programme")
    demo.add_argument("--keep-running", action="store_true", help="leave the station up")
    demo.add_argument("--clusters", type=int, default=20)
    demo.set_defaults(func=cmd_demo)
