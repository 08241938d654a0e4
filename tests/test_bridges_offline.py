"""A bridge plays a scheduled programme into its FM transmitter even when its link is down.

The station lists the session ahead with ``power`` (store-and-forward); the bridge whose link
is cut before the station's ``power`` on could reach it switches the transmitter on itself
``bridge_warmup_s`` before the start, plays, and switches it off after the end. A bridge whose
link stays up gets the station's ``power`` on and off as well: the two agree, one on, one off.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlmodel import select

from devices.protocol import PowerSpec
from simulator import SimulatedFleet
from simulator._outputs import Outputs
from station import _keys as keys
from station._services import register_clusters
from station.app import start_station
from station.db import MediaItem, PlayRecord, PlayRecordStatus
from station.demo import demo_settings
from tests.playout_support import make_bridges, news_once, until

WARMUP_S = 1.0
BRIDGES = {"CUT": ("FM1", "*01#"), "UP": ("FM2", "*02#")}  # bridge -> its FM set, zone code


async def test_a_bridge_cut_off_before_the_start_powers_its_transmitter_itself(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str
) -> None:
    settings = demo_settings(
        tmp_path, mqtt_url=mqtt_url, database_url=database_url, station_id=station_id
    )
    playout = settings.playout.model_copy(update={"bridge_warmup_s": WARMUP_S})
    settings = settings.model_copy(update={"playout": playout})
    lead_s = max(settings.scheduler.dispatch_lead_s, WARMUP_S)  # when the station's on goes out
    station = await start_station(settings)
    try:
        app = station.app
        sessions = app[keys.SESSIONS]
        legacy = [fm for fm, _ in BRIDGES.values()]
        await register_clusters(sessions, [(c, c) for c in [*BRIDGES, *legacy]])
        await make_bridges(sessions, BRIDGES)
        app[keys.GATEWAY].remember(list(BRIDGES))
        media_id, start = await news_once(app, tmp_path, 1.5, 14, {"all": True})
        await app[keys.DISPATCHER].reconcile()
        async with sessions() as db:
            media = await db.get(MediaItem, media_id)
        assert media is not None
        bridged = {b: [fm] for b, (fm, _) in BRIDGES.items()}
        async with SimulatedFleet(
            station.runtime.mqtt_url, station_id, list(BRIDGES), bridges=bridged
        ) as fleet:
            cut, up = fleet.clusters["CUT"], fleet.clusters["UP"]

            async def cached() -> bool:
                assert media is not None
                return media.sha256 in cut.cache and media.sha256 in up.cache

            await until(cached, timeout=10)  # the schedule list made them fetch at once
            assert cut.power_history == [] and up.power_history == []
            # Down from 2 s before the station's power on until 3 s after the session's end.
            wait = (start - datetime.now(UTC)).total_seconds() - lead_s - 2
            assert wait > 0, "the machine is too slow for this timeline"
            await asyncio.sleep(wait)
            cut.drop_link(lead_s + 2 + 1.5 + 3)

            async def proof_complete() -> bool:
                async with sessions() as db:
                    rows = (await db.exec(select(PlayRecord))).all()
                done = len(rows) == len(BRIDGES) and all(
                    r.status == PlayRecordStatus.FINISHED for r in rows
                )
                return done and all(len(c.power_history) == 2 for c in (cut, up))

            await until(proof_complete, timeout=40)
            await asyncio.sleep(0.5)  # nothing more is switched after the end
            history = {cid: list(c.power_history) for cid, c in fleet.clusters.items()}
        async with sessions() as db:
            records = {r.cluster_id: r for r in (await db.exec(select(PlayRecord))).all()}
    finally:
        await station.stop()
    for cid, record in records.items():
        assert record.skew_ms is not None and abs(record.skew_ms) < 250, (cid, record.skew_ms)
    played = records["CUT"]
    assert played.started_at is not None and played.finished_at is not None
    # The cut-off bridge switched on by itself, a warm-up before the start, and off after the end.
    on, off = history["CUT"]
    assert (on.target, on.on, on.by, on.zone_codes) == ("transmitter", True, "schedule", ("*01#",))
    assert start - timedelta(seconds=WARMUP_S + 0.25) <= on.at <= start
    assert (off.target, off.on, off.by) == ("transmitter", False, "schedule")
    assert off.at >= played.finished_at - timedelta(milliseconds=50)
    assert off.at - played.finished_at < timedelta(seconds=1)
    # The connected bridge: the station's on at dispatch, then one off (the held list's on was
    # a no-op on an output already on, and neither side switched off what the other held).
    on, off = history["UP"]
    assert (on.on, on.by, on.zone_codes) == (True, "station", ("*02#",))
    assert on.at <= start - timedelta(seconds=lead_s - 0.5)
    assert not off.on and off.at >= start + timedelta(seconds=1.5)


async def test_the_station_and_the_held_list_never_fight_over_an_output() -> None:
    """The simulated bridge's precedence (docs/protocol.md, ``power``): an output is on while
    the station or a held session holds it; switching to the state it is in is a no-op."""
    link, playing, warmups = [True], [False], list[float]()
    outputs = Outputs(
        ["transmitter"],
        now=lambda: datetime.now(UTC),
        link_up=lambda: link[0],
        playing=lambda: playing[0],
        warm_up=warmups.append,
    )

    async def settle() -> None:
        for _ in range(5):
            await asyncio.sleep(0)

    def due_now(session_id: str, codes: list[str]) -> None:  # its warm-up has begun
        spec = PowerSpec(target="transmitter", warmup_s=2, zone_codes=codes)
        outputs.hold(session_id, datetime.now(UTC) + timedelta(seconds=1), [spec])

    def switches() -> list[tuple[bool, str]]:
        return [(s.on, s.by) for s in outputs.history]

    outputs.command("transmitter", True, 2, ["1"])  # the station's on at dispatch
    outputs.command("transmitter", True, 2, ["1"])  # again (a second session): no-op
    due_now("a", ["1", "2"])
    await settle()
    assert switches() == [(True, "station")] and warmups == [2]  # warmed up once
    assert outputs.state["transmitter"] == (True, ["1", "2"])  # its zone codes re-sent
    outputs.command("transmitter", False, 0, ["1"])  # the station's off while "a" still plays
    assert outputs.on == ["transmitter"]
    outputs.release("a")  # "a" ends: nobody holds it now
    await settle()
    assert switches() == [(True, "station"), (False, "schedule")]
    # A live session the station switched on for: a held session's end leaves it on ...
    outputs.command("transmitter", True, 2, ["9"])
    due_now("b", ["1"])
    await settle()
    outputs.release("b")  # refused busy by the live session
    await settle()
    assert outputs.on == ["transmitter"]
    # ... also with the link down while something plays; then no off can come: it lapses.
    link[0], playing[0] = False, True
    due_now("c", ["1"])
    outputs.release("c")
    await settle()
    assert outputs.on == ["transmitter"]
    playing[0] = False
    due_now("d", ["1"])
    outputs.release("d")
    await settle()
    assert outputs.on == [] and len(outputs.history) == 4
    # An output the bridge lacks is ignored; the session still plays (nothing to switch).
    outputs.hold("e", datetime.now(UTC), [PowerSpec(target="line")])
    await settle()
    assert outputs.on == [] and len(outputs.history) == 4
    outputs.close()
