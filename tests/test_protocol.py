"""Protocol v1 codec and the shipped JSON Schemas."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest

import devices.protocol as protocol
from devices.protocol import (
    MediaRef,
    PlayCommand,
    PowerSpec,
    ProtocolError,
    ScheduleCommand,
    Topics,
    decode_command,
    decode_device_message,
    encode,
    json_schemas,
)

SCHEMA_DIR = Path(protocol.__file__).with_name("schemas")
NOW = datetime(2026, 3, 2, 22, 59, 55, tzinfo=UTC)


def _play() -> PlayCommand:
    return PlayCommand(
        id="s1-1772492400.C01.play",
        issued_at=NOW,
        expires_at=NOW + timedelta(minutes=1),
        session_id="s1-1772492400",
        start_at=NOW + timedelta(seconds=5),
        items=[
            MediaRef(
                media_id="1",
                url="http://st/media/" + "a" * 64 + ".opus",
                sha256="a" * 64,
                size=1000,
                duration_ms=8000,
            )
        ],
    )


def test_shipped_schemas_match_the_models() -> None:
    shipped = {p.stem: json.loads(p.read_text()) for p in SCHEMA_DIR.glob("*.json")}
    assert shipped == json_schemas(), "run `python -m devices.protocol` to regenerate"


def test_encoded_messages_validate_against_the_shipped_schemas() -> None:
    schema = json.loads((SCHEMA_DIR / "cmd.json").read_text())
    jsonschema.validate(json.loads(encode(_play())), schema)


def test_command_round_trip() -> None:
    command = _play()
    assert decode_command(encode(command)) == command


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"[", "json"),
        (b"\xc3\x28", "json"),
        (b'{"type": "dance"}', "schema"),
        (b"{}", "schema"),
        (b" " * 70_000, "too_large"),
    ],
)
def test_bad_commands_raise_protocol_errors_with_a_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_command(payload)
    assert info.value.reason == reason


def test_naive_times_are_schema_errors() -> None:
    raw = json.loads(encode(_play()))
    raw["start_at"] = "2026-03-02T23:00:00"  # no offset
    with pytest.raises(ProtocolError, match="start_at"):
        decode_command(json.dumps(raw).encode())


def test_devices_cannot_publish_commands() -> None:
    with pytest.raises(ProtocolError) as info:
        decode_device_message("cmd", encode(_play()))
    assert info.value.reason == "channel"


def test_topics_are_namespaced_and_parsed_strictly() -> None:
    topics = Topics("xa-demo")
    assert topics.cluster("C01", "cmd") == "loaxa/v1/xa-demo/c/C01/cmd"
    assert topics.parse_cluster("loaxa/v1/xa-demo/c/C01/event") == ("C01", "event")
    assert topics.parse_cluster("loaxa/v1/other/c/C01/event") is None
    assert topics.parse_cluster("loaxa/v1/xa-demo/c/C01/nope") is None
    assert topics.parse_cluster("loaxa/v1/xa-demo/c/C01/event/x") is None
    with pytest.raises(ValueError):
        Topics("bad/id")


def test_a_failed_prefetch_is_reported_by_command_id() -> None:
    base = {
        "cluster_id": "C01",
        "type": "download_failed",
        "ts": "2026-03-02T23:00:00Z",
        "code": "checksum_mismatch",
    }
    event = decode_device_message("event", json.dumps(base | {"cmd_id": "p1"}).encode())
    assert event.cmd_id == "p1" and event.session_id is None  # type: ignore[union-attr]
    with pytest.raises(ProtocolError, match="cmd_id"):
        decode_device_message("event", json.dumps(base).encode())


def _schedule(power: list[dict[str, object]] | None) -> dict[str, object]:
    session: dict[str, object] = {
        "session_id": "s1-1772492400",
        "start_at": "2026-03-02T23:00:00Z",
        "expires_at": "2026-03-02T23:01:00Z",
        "items": [json.loads(_play().items[0].model_dump_json())],
    }
    if power is not None:
        session["power"] = power
    return {
        "id": "sched.B01.1",
        "type": "schedule",
        "issued_at": "2026-03-02T22:59:55Z",
        "expires_at": "2026-03-02T23:00:55Z",
        "sessions": [session],
    }


def test_a_held_session_may_carry_the_power_a_bridge_switches_itself() -> None:
    fm = {"target": "transmitter", "warmup_s": 5, "zone_codes": ["*07#"]}
    raw = _schedule([fm])
    jsonschema.validate(raw, json.loads((SCHEMA_DIR / "cmd.json").read_text()))
    command = decode_command(json.dumps(raw).encode())
    assert isinstance(command, ScheduleCommand)
    spec = command.sessions[0]
    assert spec.power == [PowerSpec(target="transmitter", warmup_s=5, zone_codes=["*07#"])]
    assert decode_command(encode(command)) == command
    # optional: a session without it (an ICT receiver's) leaves it out on the wire
    plain = decode_command(json.dumps(_schedule(None)).encode())
    assert isinstance(plain, ScheduleCommand) and plain.sessions[0].power is None
    assert b'"power"' not in encode(plain)
    # one spec per output; only the outputs of the protocol
    for bad in ([fm, fm], [{"target": "siren"}], [{"target": "line", "warmup_s": 121}]):
        with pytest.raises(ProtocolError, match="power"):
            decode_command(json.dumps(_schedule(bad)).encode())


def test_the_power_field_stays_within_v1_both_ways() -> None:
    """Receivers older than the field validate a session as v1.0 did: extra fields allowed
    (the schema never forbids them) and ignored; and a newer field unknown to us is ignored."""
    schema = json.loads((SCHEMA_DIR / "cmd.json").read_text())
    for name in ("SessionSpec", "PowerSpec", "ScheduleCommand"):
        assert schema["$defs"][name].get("additionalProperties", True) is not False, name
    raw = _schedule([{"target": "line", "zone_codes": [], "hold_s": 30}])
    raw["sessions"][0]["later_field"] = {"x": 1}  # type: ignore[index]
    command = decode_command(json.dumps(raw).encode())
    assert isinstance(command, ScheduleCommand) and command.sessions[0].power is not None
    assert command.sessions[0].power[0].target == "line"


def test_rank_is_optional_in_play_stream_and_held_sessions_and_bounded() -> None:
    """v1.2: ``rank`` breaks priority ties; absent (an older station) it is 0 everywhere, so
    sessions tie and the newcomer wins as before."""
    schema = json.loads((SCHEMA_DIR / "cmd.json").read_text())
    for name in ("PlayCommand", "StreamCommand", "SessionSpec"):
        definition = schema["$defs"][name]
        assert "rank" not in definition.get("required", []), name
        assert definition["properties"]["rank"]["default"] == 0, name
    old = json.loads(encode(_play()))
    del old["rank"]
    assert decode_command(json.dumps(old).encode()) == _play()
    ranked = decode_command(json.dumps(old | {"rank": -3}).encode())
    assert isinstance(ranked, PlayCommand) and ranked.rank == -3
    held = _schedule(None)
    held["sessions"][0]["rank"] = 2  # type: ignore[index]
    jsonschema.validate(held, schema)
    command = decode_command(json.dumps(held).encode())
    assert isinstance(command, ScheduleCommand) and command.sessions[0].rank == 2
    for bad in (protocol.RANK_LIMIT + 1, -protocol.RANK_LIMIT - 1, "first"):
        with pytest.raises(ProtocolError, match="rank"):
            decode_command(json.dumps(old | {"rank": bad}).encode())
