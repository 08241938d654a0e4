"""Conformance: every command's ack/nack semantics, expiry and idempotency (docs/protocol.md)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from dut_harness import Clock, MediaServer, Probe

from devices.protocol import (
    ConfigCommand,
    Heartbeat,
    IdentifyCommand,
    PlayCommand,
    PowerCommand,
    PrefetchCommand,
    RebootCommand,
    ScheduleCommand,
    SessionSpec,
    StopCommand,
    StreamCommand,
    TimeCommand,
    VolumeCommand,
)


def _play(clock: Clock, media: MediaServer, *, in_s: float = 1.0, **extra: object) -> PlayCommand:
    fields: dict[str, object] = {
        "id": clock.cmd_id("play"),
        "issued_at": clock.now(),
        "expires_at": clock.expiry(),
        "session_id": clock.session(),
        "start_at": clock.now() + timedelta(seconds=in_s),
        "items": [media.ref()],
        **extra,
    }
    return PlayCommand.model_validate(fields)


async def test_an_expired_command_is_nacked_and_never_executed(
    probe: Probe, media: MediaServer, clock: Clock
) -> None:
    now = clock.now()
    cmd = _play(clock, media).model_copy(
        update={"issued_at": now - timedelta(minutes=2), "expires_at": now - timedelta(minutes=1)}
    )
    probe.send(cmd)
    ack = await probe.ack(cmd.id)
    assert not ack.ok and ack.code == "expired"
    await asyncio.sleep(2)
    assert probe.events(cmd.session_id) == []
    assert media.hits == {}  # not even downloaded


async def test_a_repeated_command_id_is_re_acked_as_duplicate_and_runs_once(
    probe: Probe, media: MediaServer, clock: Clock
) -> None:
    cmd = _play(clock, media, in_s=1.5)
    probe.send(cmd)
    first = await probe.ack(cmd.id)
    mark = probe.mark()
    probe.send(cmd)
    second = await probe.ack(cmd.id, after=mark)
    assert first.ok and not first.duplicate
    assert second.ok and second.duplicate
    # the same session again under a new command id is accepted but never plays twice
    again = cmd.model_copy(update={"id": clock.cmd_id("play-again")})
    probe.send(again)
    assert (await probe.ack(again.id)).ok
    await probe.event("playback_finished", cmd.session_id, timeout=10)
    # and once played, it never plays again, whether it comes back by play or by schedule
    later = clock.now() + timedelta(seconds=0.5)
    replay = again.model_copy(update={"id": clock.cmd_id("replay"), "start_at": later})
    spec = SessionSpec(
        session_id=cmd.session_id, start_at=later, expires_at=clock.expiry(), items=cmd.items
    )
    schedule = ScheduleCommand(
        id=clock.cmd_id("schedule"), issued_at=clock.now(), expires_at=clock.expiry(),
        sessions=[spec],
    )  # fmt: skip
    probe.send(replay)
    probe.send(schedule)
    assert (await probe.ack(replay.id)).ok and (await probe.ack(schedule.id)).ok
    await asyncio.sleep(1.5)
    assert probe.events(cmd.session_id).count("playback_started") == 1


async def test_stop_interrupts_the_session(probe: Probe, media: MediaServer, clock: Clock) -> None:
    cmd = _play(clock, media, in_s=0.5, items=[media.ref(duration_ms=30_000)])
    probe.send(cmd)
    await probe.event("playback_started", cmd.session_id, timeout=10)
    stop = StopCommand(
        id=clock.cmd_id("stop"),
        issued_at=clock.now(),
        expires_at=clock.expiry(),
        session_id=cmd.session_id,
    )
    probe.send(stop)
    assert (await probe.ack(stop.id)).ok
    ended = await probe.event("playback_interrupted", cmd.session_id)
    assert ended.detail == "stopped" and ended.played_ms is not None
    assert ended.played_ms < 30_000
    nothing = StopCommand(
        id=clock.cmd_id("stop"),
        issued_at=clock.now(),
        expires_at=clock.expiry(),
        session_id="cf-none",
    )
    probe.send(nothing)
    assert (await probe.ack(nothing.id)).ok  # stopping what is not there is fine


async def test_higher_priority_preempts_and_lower_is_refused_busy(
    probe: Probe, media: MediaServer, clock: Clock
) -> None:
    low = _play(clock, media, in_s=0.5, priority=50, items=[media.ref(duration_ms=30_000)])
    probe.send(low)
    await probe.event("playback_started", low.session_id, timeout=10)
    high = _play(clock, media, in_s=0.5, priority=100, items=[media.ref(duration_ms=5_000)])
    probe.send(high)
    await probe.event("playback_started", high.session_id, timeout=10)
    lost = await probe.event("playback_interrupted", low.session_id)
    assert lost.interrupted_by == high.session_id
    lower = _play(clock, media, in_s=0.5, priority=10)
    probe.send(lower)
    assert (await probe.ack(lower.id)).ok
    refused = await probe.event("playback_interrupted", lower.session_id, timeout=10)
    assert refused.code == "busy" and refused.played_ms == 0


async def test_prefetch_downloads_verifies_and_reports(
    probe: Probe, media: MediaServer, clock: Clock
) -> None:
    refs = [media.ref(), media.ref()]
    cmd = PrefetchCommand(
        id=clock.cmd_id("prefetch"), issued_at=clock.now(), expires_at=clock.expiry(), items=refs
    )
    probe.send(cmd)
    assert (await probe.ack(cmd.id)).ok
    done = await probe.wait_for(
        lambda s: (
            s.channel == "event"
            and s.data["type"] == "prefetch_done"
            and s.data.get("cmd_id") == cmd.id
        ),
        timeout=10,
    )
    assert sorted(done.data["media_ids"]) == sorted(r.media_id for r in refs)
    assert all(media.hits[r.media_id] == 1 for r in refs)
    play = _play(clock, media, items=refs)  # from the cache: no new download
    probe.send(play)
    await probe.event("playback_started", play.session_id, timeout=10)
    assert all(media.hits[r.media_id] == 1 for r in refs)


async def test_http_stream_is_consumed_until_its_end(
    probe: Probe, media: MediaServer, clock: Clock
) -> None:
    now = clock.now()
    cmd = StreamCommand(
        id=clock.cmd_id("stream"),
        issued_at=clock.now(),
        expires_at=clock.expiry(),
        session_id=clock.session("live"),
        transport="http",
        url=f"{media.base_url}/live",
        until=now + timedelta(seconds=1.5),
    )
    probe.send(cmd)
    assert (await probe.ack(cmd.id)).ok
    await probe.event("playback_started", cmd.session_id, timeout=5)
    finished = await probe.event("playback_finished", cmd.session_id, timeout=10)
    assert finished.bytes_downloaded is not None and finished.bytes_downloaded > 0
    assert media.stream_bytes >= finished.bytes_downloaded


async def test_volume_and_config_show_in_the_next_heartbeat(probe: Probe, clock: Clock) -> None:
    volume = VolumeCommand(
        id=clock.cmd_id("volume"), issued_at=clock.now(), expires_at=clock.expiry(), level=33
    )
    config = ConfigCommand(
        id=clock.cmd_id("config"), issued_at=clock.now(), expires_at=clock.expiry(), heartbeat_s=5
    )
    probe.send(volume)
    probe.send(config)
    assert (await probe.ack(volume.id)).ok and (await probe.ack(config.id)).ok
    mark = probe.mark()
    seen = await probe.wait_for(lambda s: s.channel == "heartbeat", timeout=40, after=mark)
    beat = Heartbeat.model_validate(seen.data)
    assert beat.volume == 33 and beat.interval_s == 5


async def test_time_probe_acks_with_the_device_clock(probe: Probe, clock: Clock) -> None:
    cmd = TimeCommand(id=clock.cmd_id("time"), issued_at=clock.now(), expires_at=clock.expiry())
    sent = clock.now()
    probe.send(cmd)
    ack = await probe.ack(cmd.id)
    received = clock.now()
    assert ack.ok and ack.device_time is not None
    midpoint = sent + (received - sent) / 2
    assert abs((ack.device_time - midpoint).total_seconds()) < 60  # an NTP-disciplined clock


async def test_identify_plays_a_tone_as_a_session(probe: Probe, clock: Clock) -> None:
    cmd = IdentifyCommand(
        id=clock.cmd_id("identify"), issued_at=clock.now(), expires_at=clock.expiry(), seconds=1
    )
    probe.send(cmd)
    assert (await probe.ack(cmd.id)).ok
    session = f"identify-{cmd.id}"
    started = await probe.event("playback_started", session)
    finished = await probe.event("playback_finished", session, timeout=5)
    assert started.started_at is not None and finished.played_ms == 1000


async def test_power_follows_the_announced_outputs(probe: Probe, clock: Clock) -> None:
    birth = await probe.status("online")
    outputs = birth.capabilities.outputs if birth.capabilities else []
    for target in ("amplifier", "transmitter", "line"):
        cmd = PowerCommand(
            id=clock.cmd_id("power"),
            issued_at=clock.now(),
            expires_at=clock.expiry(),
            target=target,
            on=True,
            zone_codes=["1"],
        )
        probe.send(cmd)
        ack = await probe.ack(cmd.id)
        if target in outputs:
            assert ack.ok
        else:
            assert not ack.ok and ack.code == "no_hardware"


async def test_reboot_acks_then_reconnects_with_fresh_uptime(probe: Probe, clock: Clock) -> None:
    cmd = RebootCommand(id=clock.cmd_id("reboot"), issued_at=clock.now(), expires_at=clock.expiry())
    probe.send(cmd)
    assert (await probe.ack(cmd.id)).ok
    mark = probe.mark()
    await probe.status("online", timeout=60, after=mark)
    seen = await probe.wait_for(lambda s: s.channel == "heartbeat", timeout=40, after=mark)
    beat = Heartbeat.model_validate(seen.data)
    assert beat.uptime_s is not None and beat.uptime_s < 30
    assert beat.bytes_downloaded == 0


async def test_mqtt_stream_counts_packets_or_is_unsupported(probe: Probe, clock: Clock) -> None:
    birth = await probe.status("online")
    live = birth.capabilities.live if birth.capabilities else ["http"]
    topic = f"{probe.topics.prefix}/live/{clock.session('live')}"
    cmd = StreamCommand(
        id=clock.cmd_id("stream"), issued_at=clock.now(), expires_at=clock.expiry(),
        session_id=clock.session("live"), transport="mqtt", topic=topic,
        until=clock.now() + timedelta(seconds=2),
    )  # fmt: skip
    probe.send(cmd)
    ack = await probe.ack(cmd.id)
    if "mqtt" not in live:
        assert not ack.ok and ack.code == "unsupported"
        return
    assert ack.ok
    await probe.event("playback_started", cmd.session_id, timeout=5)
    await asyncio.sleep(0.3)  # the device subscribes as it starts
    for n in range(10):
        probe.client.publish(topic, bytes([n]) * 120, qos=0)
        await asyncio.sleep(0.05)
    finished = await probe.event("playback_finished", cmd.session_id, timeout=10)
    assert finished.packets == 10 and finished.bytes_downloaded == 1200


async def test_rank_breaks_priority_ties_and_equal_ranks_go_to_the_newcomer(
    probe: Probe, media: MediaServer, clock: Clock
) -> None:
    """v1.2: at equal priority the higher ``rank`` plays (the station's timeline order); at
    equal rank the newcomer wins (same-priority emergencies: the newest, no stuck microphone)."""
    first = _play(clock, media, in_s=0.5, rank=1, items=[media.ref(duration_ms=30_000)])
    probe.send(first)
    await probe.event("playback_started", first.session_id, timeout=10)
    lower = _play(clock, media, in_s=0.5, rank=0)
    probe.send(lower)
    refused = await probe.event("playback_interrupted", lower.session_id, timeout=10)
    assert refused.code == "busy" and refused.played_ms == 0
    assert "playback_interrupted" not in probe.events(first.session_id)  # still on air
    higher = _play(clock, media, in_s=0.5, rank=2, items=[media.ref(duration_ms=30_000)])
    probe.send(higher)
    await probe.event("playback_started", higher.session_id, timeout=10)
    cut = await probe.event("playback_interrupted", first.session_id)
    assert cut.interrupted_by == higher.session_id and cut.code is None
    newest = _play(clock, media, in_s=0.5, rank=2, items=[media.ref(duration_ms=1_000)])
    probe.send(newest)
    await probe.event("playback_started", newest.session_id, timeout=10)
    replaced = await probe.event("playback_interrupted", higher.session_id)
    assert replaced.interrupted_by == newest.session_id


async def test_held_sessions_follow_the_rank(
    probe: Probe, media: MediaServer, clock: Clock
) -> None:
    """The rank travels with a held session, so a cluster whose link is down at start still
    keeps the session the station ranked first on air (the other is refused ``busy``)."""
    start = clock.now() + timedelta(seconds=1.5)
    first = SessionSpec(
        session_id=clock.session("first"),
        start_at=start,
        expires_at=clock.expiry(),
        items=[media.ref(duration_ms=3_000)],
        rank=1,
    )
    later = first.model_copy(
        update={
            "session_id": clock.session("later"),
            "start_at": start + timedelta(seconds=1),
            "items": [media.ref(duration_ms=1_000)],
            "rank": 0,
        }
    )
    schedule = ScheduleCommand(
        id=clock.cmd_id("schedule"), issued_at=clock.now(), expires_at=clock.expiry(),
        sessions=[first, later],
    )  # fmt: skip
    probe.send(schedule)
    assert (await probe.ack(schedule.id)).ok
    refused = await probe.event("playback_interrupted", later.session_id, timeout=10)
    assert refused.code == "busy" and refused.played_ms == 0
    done = await probe.event("playback_finished", first.session_id, timeout=10)
    assert done.played_ms == 3_000
