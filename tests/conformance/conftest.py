"""The device under test: loaxa's simulator by default, or a vendor's running receiver.

Vendor mode (docs/protocol.md, "Conformance"): set ``LOAXA_DUT_MQTT_URL`` (a login allowed to
read and write ``loaxa/v1/<station>/#``), ``LOAXA_DUT_STATION``, ``LOAXA_DUT_CLUSTER``, and
``LOAXA_DUT_MEDIA_HOST`` (an address of this machine the receiver can reach; the suite serves
its test audio there). Optional ``LOAXA_DUT_CUT_LINK``: a shell command that cuts the
receiver's network for ``{seconds}`` seconds; without it the link-cut tests do not run.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest
from dut_harness import Clock, DeviceUnderTest, MediaServer, Probe

from simulator import SimulatedFleet

VENDOR_URL = os.environ.get("LOAXA_DUT_MQTT_URL", "")
SIM_CLUSTER = "DUT1"


def _vendor_device() -> DeviceUnderTest:
    cut_cmd = os.environ.get("LOAXA_DUT_CUT_LINK", "")

    async def cut_link(seconds: float) -> None:
        process = await asyncio.create_subprocess_shell(cut_cmd.format(seconds=seconds))
        await process.wait()

    return DeviceUnderTest(
        mqtt_url=VENDOR_URL,
        station_id=os.environ["LOAXA_DUT_STATION"],
        cluster_id=os.environ["LOAXA_DUT_CLUSTER"],
        media_host=os.environ.get("LOAXA_DUT_MEDIA_HOST", "0.0.0.0"),
        cut_link=cut_link if cut_cmd else None,
    )


@pytest.fixture
async def dut(mqtt_url: str, station_id: str) -> AsyncIterator[DeviceUnderTest]:
    """The device factory: the one place a new implementation plugs in."""
    if VENDOR_URL:
        yield _vendor_device()
        return
    fleet = SimulatedFleet(mqtt_url, station_id, [SIM_CLUSTER], heartbeat_s=2.0)

    async def cut_link(seconds: float) -> None:
        fleet.clusters[SIM_CLUSTER].drop_link(seconds)

    device = DeviceUnderTest(
        mqtt_url=mqtt_url,
        station_id=station_id,
        cluster_id=SIM_CLUSTER,
        cut_link=cut_link,
        set_clock_offset=lambda ms: fleet.clusters[SIM_CLUSTER].set_clock_offset(ms),
        start=fleet.start,
    )
    try:
        yield device
    finally:
        await fleet.stop()


@pytest.fixture
async def media(dut: DeviceUnderTest) -> AsyncIterator[MediaServer]:
    server = MediaServer(dut.media_host)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def probe(dut: DeviceUnderTest) -> AsyncIterator[Probe]:
    """The station end, subscribed before the device starts; fails the test on any schema
    violation the device committed."""
    async with Probe(dut) as station:
        if dut.start is not None:
            await dut.start()
        await station.status("online", timeout=30)
        yield station
    assert station.violations == [], "\n".join(station.violations[:20])


@pytest.fixture
def clock() -> Clock:
    return Clock()
