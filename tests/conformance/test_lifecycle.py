"""Conformance: availability, heartbeat, timing, downloads, store-and-forward (docs/protocol.md)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest
from dut_harness import Clock, DeviceUnderTest, MediaServer, Probe

from devices.protocol import (
    Heartbeat,
    MediaRef,
    PlayCommand,
    PowerCommand,
    PowerSpec,
    ScheduleCommand,
    SessionSpec,
    Status,
)

START_TOLERANCE_S = 0.25


def _play(clock: Clock, start_at: datetime, *items: MediaRef) -> PlayCommand:
    """A play command of ``items`` at ``start_at``, in a session of its own."""
    return PlayCommand(
        id=clock.cmd_id("play"),
        issued_at=clock.now(),
        expires_at=clock.expiry(),
        session_id=clock.session(),
        start_at=start_at,
        items=list(items),
    )


def _hold(
    clock: Clock, name: str, start_at: datetime, ref: MediaRef, **spec: Any
) -> ScheduleCommand:
    """A schedule command holding one session of ``ref`` at ``start_at`` (expiring 5 min
    after it); ``spec``: more of the session's fields."""
    session = SessionSpec(
        session_id=clock.session(name),
        start_at=start_at,
        expires_at=start_at + timedelta(minutes=5),
        items=[ref],
        **spec,
    )
    return ScheduleCommand(
        id=clock.cmd_id("schedule"),
        issued_at=clock.now(),
        expires_at=clock.expiry(),
        sessions=[session],
    )


async def _cut_link_before(
    dut: DeviceUnderTest, probe: Probe, media: MediaServer, ref: MediaRef, start_at: datetime
) -> int:
    """Once the device has fetched ``ref``: its link down from 10 s before ``start_at`` for
    14 s, seen offline. The probe's mark from just before the cut."""
    assert dut.cut_link is not None
    async with asyncio.timeout(5):
        while media.hits.get(ref.media_id, 0) == 0:  # noqa: ASYNC110 - a counter
            await asyncio.sleep(0.05)
    await asyncio.sleep(max(0.0, (start_at - Clock.now()).total_seconds() - 10))
    mark = probe.mark()
    await dut.cut_link(14.0)
    await probe.status("offline", timeout=5, after=mark)
    return mark


def _true_start_error_s(started_at_s: float, offset_ms: int | None, start_at_s: float) -> float:
    return started_at_s - (offset_ms or 0) / 1000 - start_at_s


async def test_birth_is_retained_online_with_capabilities(probe: Probe) -> None:
    seen = await probe.wait_for(lambda s: s.channel == "status" and s.data["state"] == "online")
    birth = Status.model_validate(seen.data)
    assert birth.capabilities is not None and birth.capabilities.codecs
    assert birth.firmware
    # a late subscriber gets it too: it is retained
    async with Probe(probe.dut) as late:
        again = await late.wait_for(lambda s: s.channel == "status")
        assert again.retained and again.data["state"] == "online"


async def test_abrupt_link_loss_fires_the_will_then_birth_again(
    dut: DeviceUnderTest, probe: Probe
) -> None:
    if dut.cut_link is None:
        pytest.skip("vendor device without LOAXA_DUT_CUT_LINK")
    mark = probe.mark()
    await dut.cut_link(1.0)
    offline = await probe.status("offline", timeout=10, after=mark)
    assert offline.cluster_id == dut.cluster_id
    await probe.status("online", timeout=20, after=mark)


async def test_heartbeat_carries_full_telemetry(probe: Probe) -> None:
    seen = await probe.wait_for(lambda s: s.channel == "heartbeat", timeout=35)
    beat = Heartbeat.model_validate(seen.data)
    assert beat.state in ("idle", "waiting", "playing", "fetching")
    for name in (
        "volume",
        "uptime_s",
        "clock_offset_ms",
        "bytes_downloaded",
        "firmware",
        "interval_s",
        "upcoming_sessions",
        "free_cache_bytes",
    ):
        assert getattr(beat, name) is not None, f"heartbeat lacks {name}"
    assert isinstance(beat.faults, list)


async def test_play_starts_at_start_at_and_reports_it(
    probe: Probe, media: MediaServer, clock: Clock
) -> None:
    start_at = clock.now() + timedelta(seconds=2)
    cmd = _play(clock, start_at, media.ref())
    probe.send(cmd)
    assert (await probe.ack(cmd.id)).ok
    started_seen = await probe.event_seen("playback_started", cmd.session_id, timeout=10)
    started = (await probe.event("playback_started", cmd.session_id)).model_dump()
    assert started["start_at"] == start_at
    error = _true_start_error_s(
        started["started_at"].timestamp(), started["clock_offset_ms"], start_at.timestamp()
    )
    assert abs(error) < START_TOLERANCE_S
    # the report arrives when it happens, not after the fact
    assert abs((started_seen.at - start_at).total_seconds()) < 1.0
    finished = await probe.event("playback_finished", cmd.session_id, timeout=10)
    assert finished.played_ms == 1500 and finished.bytes_downloaded == media.ref().size


async def test_a_skewed_clock_is_reported_so_the_station_can_correct(
    dut: DeviceUnderTest, probe: Probe, media: MediaServer, clock: Clock
) -> None:
    if dut.set_clock_offset is None:
        pytest.skip("vendor device: clock skew cannot be injected")
    dut.set_clock_offset(1500)  # 1.5 s ahead: it starts 1.5 s early in true time
    start_at = clock.now() + timedelta(seconds=3)
    cmd = _play(clock, start_at, media.ref())
    probe.send(cmd)
    seen = await probe.event_seen("playback_started", cmd.session_id, timeout=10)
    started = await probe.event("playback_started", cmd.session_id)
    assert started.clock_offset_ms == 1500 and started.started_at is not None
    true_start = started.started_at - timedelta(milliseconds=1500)
    assert abs((true_start - seen.at).total_seconds()) < 0.5  # what it reports is the truth
    assert abs((true_start - (start_at - timedelta(seconds=1.5))).total_seconds()) < 0.25


async def test_checksum_mismatch_is_download_failed_and_never_plays(
    probe: Probe, media: MediaServer, clock: Clock
) -> None:
    cmd = _play(clock, clock.now() + timedelta(seconds=1), media.ref(sha256="0" * 64))
    probe.send(cmd)
    assert (await probe.ack(cmd.id)).ok
    failed = await probe.event("download_failed", cmd.session_id, timeout=10)
    assert failed.code == "checksum_mismatch"
    await asyncio.sleep(1.5)
    assert "playback_started" not in probe.events(cmd.session_id)


async def test_store_and_forward_plays_on_time_through_a_link_cut(
    dut: DeviceUnderTest, probe: Probe, media: MediaServer, clock: Clock
) -> None:
    """The link goes down 10 s before the start and comes back 4 s after it: the device plays
    from its cache on time and reports the start, with its real timestamps, on reconnect."""
    if dut.cut_link is None:
        pytest.skip("vendor device without LOAXA_DUT_CUT_LINK")
    ref = media.ref(duration_ms=2000)
    start_at = clock.now() + timedelta(seconds=12)
    cmd = _hold(clock, "saf", start_at, ref)
    session = cmd.sessions[0]
    probe.send(cmd)
    assert (await probe.ack(cmd.id)).ok
    mark = await _cut_link_before(dut, probe, media, ref, start_at)
    started_seen = await probe.event_seen("playback_started", session.session_id, timeout=30)
    back = await probe.status("online", timeout=1, after=mark)
    assert back.state == "online"
    assert (started_seen.at - start_at).total_seconds() > 3  # reported after the reconnect
    started = await probe.event("playback_started", session.session_id)
    assert started.started_at is not None
    error = _true_start_error_s(
        started.started_at.timestamp(), started.clock_offset_ms, start_at.timestamp()
    )
    assert abs(error) < START_TOLERANCE_S
    finished = await probe.event("playback_finished", session.session_id, timeout=10)
    assert finished.played_ms == 2000
    assert media.hits[ref.media_id] == 1


async def test_a_bridge_switches_its_output_for_a_held_session_through_a_link_cut(
    dut: DeviceUnderTest, probe: Probe, media: MediaServer, clock: Clock
) -> None:
    """A held session carries ``power``: a receiver that announces ``scheduled_power`` switches
    that output on ``warmup_s`` before the start by itself (its link is down from 10 s before
    the start until after the end: no ``power`` command can reach it), plays on time into the
    warm output, and switches it off after the end; the start reports ``outputs_on``, the next
    heartbeat shows it off. A receiver without the capability ignores the field and plays."""
    if dut.cut_link is None:
        pytest.skip("vendor device without LOAXA_DUT_CUT_LINK")
    birth = await probe.status("online")
    caps = birth.capabilities
    outputs = caps.outputs if caps is not None else []
    target = outputs[0] if outputs else "transmitter"
    off = PowerCommand(
        id=clock.cmd_id("power"), issued_at=clock.now(), expires_at=clock.expiry(),
        target=target, on=False,
    )  # fmt: skip
    probe.send(off)
    await probe.ack(off.id)
    switching = caps is not None and caps.scheduled_power and bool(outputs)
    if switching:  # off before: whatever is on at the start, the held list switched on
        mark = probe.mark()
        beat = await probe.wait_for(lambda s: s.channel == "heartbeat", timeout=35, after=mark)
        assert target not in (Heartbeat.model_validate(beat.data).outputs_on or [])
    ref = media.ref(duration_ms=2000)
    start_at = clock.now() + timedelta(seconds=12)
    power = [PowerSpec(target=target, warmup_s=1.0, zone_codes=["*05#"])]
    cmd = _hold(clock, "bridge", start_at, ref, power=power)
    session = cmd.sessions[0]
    probe.send(cmd)
    assert (await probe.ack(cmd.id)).ok
    await _cut_link_before(dut, probe, media, ref, start_at)  # back 2 s after the session's end
    started = await probe.event("playback_started", session.session_id, timeout=30)
    finished_seen = await probe.event_seen("playback_finished", session.session_id, timeout=10)
    assert started.started_at is not None
    error = _true_start_error_s(
        started.started_at.timestamp(), started.clock_offset_ms, start_at.timestamp()
    )
    assert abs(error) < START_TOLERANCE_S  # warmed up before the start, not after it
    assert finished_seen.data["played_ms"] == 2000
    if not switching:
        return
    assert started.outputs_on is not None and target in started.outputs_on
    after = probe.seen.index(finished_seen)
    beat = await probe.wait_for(lambda s: s.channel == "heartbeat", timeout=35, after=after)
    assert target not in (Heartbeat.model_validate(beat.data).outputs_on or [])
