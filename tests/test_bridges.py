"""Legacy bridges stay on while a session needs them: the pure rule and the dispatcher's switch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import cast
from zoneinfo import ZoneInfo

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from devices import ClusterGateway
from devices.protocol import Command, PowerCommand, PowerSpec, ScheduleCommand
from scheduler import (
    BridgeNeed,
    BridgePower,
    BridgeSwitch,
    Forwarder,
    ItemRef,
    SessionPlan,
    held_until,
    needs_of,
    session_length,
    switch_off,
    zone_codes_on,
)
from scheduler._bridges import HeldPower, Switch, held_needs, held_power, held_switches
from scheduler._session import StreamPart

T0 = datetime(2026, 3, 2, 5, 45, tzinfo=UTC)
SEC = timedelta(seconds=1)
LEAD = 5 * SEC
FM = {"B01": BridgePower("transmitter", ("11", "12"))}
WIRED = {"B02": BridgePower("amplifier")}
TX = ("B01", "transmitter")
AMP = ("B02", "amplifier")


def _at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def _session(sid: str, start: float, length: float) -> list[BridgeNeed]:
    """A broadcast dispatched ``LEAD`` before its start, needing the FM bridge to its end."""
    return needs_of(sid, FM, _at(start) - LEAD, _at(start + length))


def test_back_to_back_broadcasts_keep_the_output_on_until_the_last_one_ends() -> None:
    # 05:45:00-05:45:10, then 05:45:10-05:45:20: the second's "on" went out at 05:45:05.
    needs = _session("a", 0, 10) + _session("b", 10, 10)
    assert held_until(needs, TX, _at(0)) == _at(20)
    at_a_end = switch_off(needs, [TX], _at(10))
    assert at_a_end.off == [] and at_a_end.held == {TX: _at(20)}
    assert switch_off(needs, [TX], _at(20)).off == [(TX, ("11", "12"))]
    # A gap longer than the lead: off in between, on again at the next dispatch.
    apart = _session("a", 0, 10) + _session("c", 30, 10)
    assert switch_off(apart, [TX], _at(10)).off == [(TX, ("11", "12"))]
    assert held_until(apart, TX, _at(26)) == _at(40)


def test_overlapping_sessions_and_other_outputs() -> None:
    long = needs_of("long", FM, _at(0), _at(100))
    short = needs_of("short", {**FM, **WIRED}, _at(10), _at(20))
    needs = long + short
    found = switch_off(needs, [TX, AMP], _at(20))
    assert found.off == [(AMP, ())]  # the wired line is idle; the transmitter is not
    assert found.held == {TX: _at(100)}
    # Not switched on (not in ``powered``): nothing to switch off.
    assert switch_off(needs, [], _at(200)).off == []
    # An on while another session still listens carries both sessions' zone codes.
    other = needs_of("other", {"B01": BridgePower("transmitter", ("13",))}, _at(5), _at(50))
    assert zone_codes_on(long + other, other[0], _at(5)) == ("13", "11", "12")
    assert zone_codes_on(long + other, other[0], _at(150)) == ("13",)


def test_an_emergency_then_the_resumed_programme_keep_the_output_on() -> None:
    programme = _session("p", 0, 60)  # cut at 20 s by a 30 s emergency
    emergency = needs_of("em", FM, _at(20), _at(50.2))
    # The emergency ends: the programme's own end is still ahead, nothing goes off.
    assert switch_off(programme + emergency, [TX], _at(50.2)).off == []
    # The programme ends while the emergency plays on: held by the emergency.
    longer = needs_of("em", FM, _at(20), _at(90))
    assert switch_off(programme + longer, [TX], _at(60)).held == {TX: _at(90)}
    # It comes back after the emergency with its last 40 s: held to the resumption's end.
    resumed = needs_of("p~r20", FM, _at(90), _at(130.5))
    needs = programme + longer + resumed
    assert switch_off(needs, [TX], _at(90)).held == {TX: _at(130.5)}
    assert switch_off(needs, [TX], _at(130.5)).off == [(TX, ("11", "12"))]


def test_after_a_restart_what_ended_meanwhile_goes_off_and_what_airs_stays_on() -> None:
    """Rebuilt from the database: every output of those sessions may be on."""
    ended = needs_of("old", WIRED, _at(-100), _at(-50))
    airing = _session("now", -10, 30)
    upcoming = _session("later", 3600, 60)  # dispatched in an hour: not needed yet
    needs = ended + airing + upcoming
    powered = {n.output for n in needs if n.since <= _at(0)}
    found = switch_off(needs, powered, _at(0))
    assert found.off == [(AMP, ())] and found.held == {TX: _at(20)}
    assert switch_off(needs, [TX], _at(20)).off == [(TX, ("11", "12"))]


def test_needs_take_aware_times_and_sessions_have_lengths() -> None:
    with pytest.raises(ValueError):
        BridgeNeed("s", "B01", "transmitter", datetime(2026, 3, 2), T0)
    item = ItemRef(1, "a" * 64, 10, 2_500)
    plan = SessionPlan("s", T0, T0, ["B01"], [item, item])
    assert session_length(plan) == timedelta(milliseconds=5_000)


class FakeGateway:
    def __init__(self) -> None:
        self.sent: list[tuple[datetime, str, Command]] = []
        self.now = T0

    async def send(self, cluster_id: str, command: Command, timeout: float | None = None) -> None:
        self.sent.append((self.now, cluster_id, command))


async def test_the_switch_sends_on_at_each_dispatch_and_off_only_after_the_last() -> None:
    gateway = FakeGateway()
    switch = BridgeSwitch(
        cast(ClusterGateway, gateway),
        AsyncIOScheduler(timezone=ZoneInfo("UTC")),
        lambda: gateway.now,
        warmup_s=2,
        expiry=60 * SEC,
    )
    gateway.now = _at(-5)
    await switch.hold("a", FM, _at(-5), _at(10))
    gateway.now = _at(5)
    await switch.hold("b", FM, _at(5), _at(20))
    gateway.now = _at(10)
    await switch.switch_off_idle()  # a's end: b needs it
    gateway.now = _at(20)
    await switch.switch_off_idle()  # b's end
    power = [(at, c) for at, _, c in gateway.sent if isinstance(c, PowerCommand)]
    assert [(at, c.on, c.warmup_s) for at, c in power] == [
        (_at(-5), True, 2),
        (_at(5), True, 2),
        (_at(20), False, 0),
    ]
    before_b = [c for at, c in power if at <= _at(10)]
    assert before_b[-1].on
    assert switch.switched_off == 1 and switch.needs() == []
    # A stopped emergency lets go of its bridge at once.
    gateway.now = _at(30)
    await switch.hold("em", WIRED, _at(30), _at(90), timer=False)
    switch.release("em", _at(35))
    gateway.now = _at(35)
    await switch.switch_off_idle()
    assert [(cid, c.on) for _, cid, c in gateway.sent[-2:]] == [("B02", True), ("B02", False)]


# -- held sessions: what a bridge switches itself (link down at start) -------------------------

WARMUP = 2 * SEC


def _plan(sid: str, start: float, seconds: float, bridges: dict[str, BridgePower]) -> SessionPlan:
    item = ItemRef(1, "a" * 64, 10, int(seconds * 1000))
    return SessionPlan(
        sid, _at(start), _at(start + 60), ["B01", "B02", "I01"], [item], bridges=bridges
    )


def test_held_power_is_computed_from_the_same_needs_for_the_bridge_only() -> None:
    sessions = [_plan("a", 0, 10, FM), _plan("b", 30, 10, {**FM, **WIRED})]
    needs = held_needs(sessions, "B01", WARMUP)
    assert needs == needs_of("a", FM, _at(-2), _at(10)) + needs_of("b", FM, _at(28), _at(40))
    power = held_power(needs, WARMUP)
    assert power == {
        "a": [HeldPower("transmitter", 2.0, ("11", "12"))],
        "b": [HeldPower("transmitter", 2.0, ("11", "12"))],
    }
    assert held_needs(sessions, "I01", WARMUP) == []  # an ICT receiver holds no power
    wired = held_power(held_needs(sessions, "B02", WARMUP), WARMUP)
    assert wired == {"b": [HeldPower("amplifier", 2.0, ())]}


def test_a_relay_slot_is_not_held_and_its_media_runs_are_held_each() -> None:
    news = ItemRef(1, "a" * 64, 10, 5_000)
    plan = SessionPlan(
        "p", T0, T0, ["B01"], [news, news],
        parts=(news, StreamPart("http://vov1/", 20_000), news), bridges=FM,
    )  # fmt: skip
    needs = held_needs([plan], "B01", WARMUP)
    # media 0-5 s, relay 5-25 s (streams need the link), media from 25.2 s (2 guards)
    assert [(n.session_id, n.since, n.until) for n in needs] == [
        ("p", _at(-2), _at(5)),
        ("p~2", _at(23.2), _at(30.2)),
    ]


def test_back_to_back_held_sessions_keep_power_and_a_gap_beyond_the_warmup_switches_off() -> None:
    back_to_back = held_needs(
        [_plan("a", 0, 10, FM), _plan("b", 11, 10, FM), _plan("c", 21.5, 5, FM)], "B01", WARMUP
    )
    codes = ("11", "12")
    assert held_switches(back_to_back) == [
        Switch(_at(-2), TX, True, codes),
        Switch(_at(26.5), TX, False, codes),
    ]
    # a 3 s gap is longer than the 2 s warm-up: off after a, on again 2 s before d
    apart = held_needs([_plan("a", 0, 10, FM), _plan("d", 13, 5, FM)], "B01", WARMUP)
    assert held_switches(apart) == [
        Switch(_at(-2), TX, True, codes),
        Switch(_at(10), TX, False, codes),
        Switch(_at(11), TX, True, codes),
        Switch(_at(18), TX, False, codes),
    ]
    # exactly the warm-up apart: the next session's on is due as the first ends, it stays on
    edge = held_needs([_plan("a", 0, 10, FM), _plan("e", 12, 5, FM)], "B01", WARMUP)
    assert [s.on for s in held_switches(edge)] == [True, False]
    # the station's own rule agrees at each end
    assert switch_off(back_to_back, [TX], _at(10)).held == {TX: _at(26.5)}
    assert switch_off(apart, [TX], _at(10)).off == [(TX, codes)]


def test_overlapping_held_sessions_carry_each_others_zone_codes() -> None:
    village = {"B01": BridgePower("transmitter", ("13",))}
    needs = held_needs([_plan("all", 0, 60, FM), _plan("one", 10, 10, village)], "B01", WARMUP)
    power = held_power(needs, WARMUP)
    assert power["one"] == [HeldPower("transmitter", 2.0, ("13", "11", "12"))]
    assert power["all"] == [HeldPower("transmitter", 2.0, ("11", "12"))]
    assert [s.on for s in held_switches(needs)] == [True, False]  # one on, off at 60 s


async def test_the_forwarder_lists_power_for_the_bridges_sessions_only() -> None:
    gateway = FakeGateway()
    gateway.now = _at(-600)
    forwarder = Forwarder(
        cast(ClusterGateway, gateway),
        lambda cid, item: f"http://st/media/{item.sha256}?c={cid}",
        lambda: gateway.now,
        bridge_warmup=WARMUP,
    )
    sessions = [_plan("a", 0, 10, FM), _plan("b", 11, 10, FM), _plan("c", 60, 10, {})]
    await forwarder.sync(sessions)
    lists = {cid: c for _, cid, c in gateway.sent if isinstance(c, ScheduleCommand)}
    assert sorted(lists) == ["B01", "B02", "I01"]
    fm = PowerSpec(target="transmitter", warmup_s=2.0, zone_codes=["11", "12"])
    assert [(s.session_id, s.power) for s in lists["B01"].sessions] == [
        ("a", [fm]),
        ("b", [fm]),
        ("c", None),  # no legacy set of this bridge is targeted
    ]
    assert all(s.power is None for c in ("B02", "I01") for s in lists[c].sessions)
    # A change of the zone codes alone changes the list: re-sent to the bridge only.
    gateway.sent.clear()
    village = {"B01": BridgePower("transmitter", ("13",))}
    await forwarder.sync([_plan("a", 0, 10, village), *sessions[1:]])
    resent = [(cid, c) for _, cid, c in gateway.sent if isinstance(c, ScheduleCommand)]
    assert [cid for cid, _ in resent] == ["B01"]
    assert resent[0][1].sessions[0].power == [
        PowerSpec(target="transmitter", zone_codes=["13"], warmup_s=2.0)
    ]


async def test_a_list_sent_again_after_another_gets_a_new_command_id() -> None:
    """A device ignores a command id it has seen: withdrawing everything twice (empty, held,
    empty) or going back to an earlier list must reach it each time."""
    gateway = FakeGateway()
    gateway.now = _at(-600)
    forwarder = Forwarder(
        cast(ClusterGateway, gateway),
        lambda cid, item: f"http://st/media/{item.sha256}?c={cid}",
        lambda: gateway.now,
        bridge_warmup=WARMUP,
    )
    held = [_plan("a", 0, 10, {})]
    for sessions in (held, [], held, []):
        gateway.now += timedelta(seconds=1)
        await forwarder.sync(sessions)
    ids = [c.id for _, cid, c in gateway.sent if isinstance(c, ScheduleCommand) and cid == "I01"]
    assert len(ids) == 4 and len(set(ids)) == 4
    assert all(len(i) <= 64 for i in ids)


async def test_a_reconnected_or_unreachable_cluster_gets_its_list_even_when_empty() -> None:
    """A cluster that reconnects, or whose last send failed, may still hold sessions withdrawn
    meanwhile: its next list goes out even when nothing is upcoming for it."""
    gateway = FakeGateway()
    gateway.now = _at(-600)
    failing: set[str] = set()
    send = gateway.send

    async def flaky(cluster_id: str, command: Command, timeout: float | None = None) -> None:
        if cluster_id in failing:
            raise TimeoutError("no PUBACK")
        await send(cluster_id, command, timeout)

    gateway.send = flaky  # type: ignore[method-assign]
    forwarder = Forwarder(
        cast(ClusterGateway, gateway),
        lambda cid, item: f"http://st/media/{item.sha256}?c={cid}",
        lambda: gateway.now,
        bridge_warmup=WARMUP,
    )

    def lists_to(cid: str) -> list[list[str]]:
        return [
            [s.session_id for s in c.sessions]
            for _, to, c in gateway.sent
            if isinstance(c, ScheduleCommand) and to == cid
        ]

    forwarder.forget("I09")  # a birth from a cluster nothing is planned for
    await forwarder.sync([])
    assert lists_to("I09") == [[]]
    await forwarder.sync([])
    assert lists_to("I09") == [[]]  # once: nothing changed since

    held = [_plan("a", 0, 10, {})]
    failing.add("I01")
    await forwarder.sync(held)  # "a" may or may not have reached I01
    failing.clear()
    gateway.now += timedelta(seconds=1)
    await forwarder.sync([])  # withdrawn meanwhile
    assert lists_to("I01") == [[]]


async def test_codecs_are_read_only_for_clusters_with_something_upcoming() -> None:
    """A reconnect storm: thousands of births, each a forgotten list; the clusters with nothing
    planned get their empty lists without the forwarder reading their announcements."""
    gateway = FakeGateway()
    gateway.now = _at(-600)
    asked: list[list[str]] = []

    async def codecs_for(cluster_ids: Sequence[str]) -> Mapping[str, Sequence[str]]:
        asked.append(list(cluster_ids))
        return {cid: ["opus"] for cid in cluster_ids}

    forwarder = Forwarder(
        cast(ClusterGateway, gateway),
        lambda cid, item: f"http://st/media/{item.sha256}?c={cid}",
        lambda: gateway.now,
        codecs_for=codecs_for,
        bridge_warmup=WARMUP,
    )
    born = [f"X{n:04}" for n in range(500)]
    for cid in born:
        forwarder.forget(cid)
    await forwarder.sync([_plan("a", 0, 10, {})])
    assert asked == [["B01", "B02", "I01"]]
    lists = {cid: c for _, cid, c in gateway.sent if isinstance(c, ScheduleCommand)}
    assert sorted(lists) == sorted(["B01", "B02", "I01", *born])
    assert all(lists[cid].sessions == [] for cid in born)
    assert [s.session_id for s in lists["I01"].sessions] == ["a"]
    asked.clear()
    await forwarder.sync([])  # nothing upcoming for anyone: nothing to read
    assert asked == []
