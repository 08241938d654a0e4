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
    ProtocolError,
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
