"""Encoding and strict decoding of protocol messages.

Decoding never raises anything but ``ProtocolError``, whose ``reason`` is a short counter key
(``too_large``, ``json``, ``schema``, ``channel``) so the station can count drops by reason.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from ._messages import (
    MAX_PAYLOAD_BYTES,
    Ack,
    Command,
    Event,
    Heartbeat,
    Status,
)
from ._topics import ClusterChannel

DeviceMessage = Status | Heartbeat | Ack | Event

_COMMAND_ADAPTER: TypeAdapter[Command] = TypeAdapter(Command)
_BY_CHANNEL: dict[str, type[BaseModel]] = {
    "status": Status,
    "heartbeat": Heartbeat,
    "ack": Ack,
    "event": Event,
}


class ProtocolError(ValueError):
    """A payload that is not a valid message; ``reason`` is a counter key."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def encode(message: BaseModel) -> bytes:
    return message.model_dump_json(exclude_none=True).encode()


def _load(payload: bytes) -> Any:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ProtocolError("too_large", f"{len(payload)} bytes > {MAX_PAYLOAD_BYTES}")
    try:
        return json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError("json", str(exc)[:200]) from None
    except RecursionError:  # "[[[[..." nested deeper than the interpreter's stack (found by fuzz)
        raise ProtocolError("json", "nested too deeply") from None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "(root)"
    return f"{where}: {err['msg']}"


def decode_device_message(channel: ClusterChannel, payload: bytes) -> DeviceMessage:
    """Decode what a cluster published on ``channel``."""
    model = _BY_CHANNEL.get(channel)
    if model is None:
        raise ProtocolError("channel", f"clusters do not publish on {channel!r}")
    data = _load(payload)
    try:
        return model.model_validate(data)  # type: ignore[return-value]
    except ValidationError as exc:
        raise ProtocolError("schema", _first_error(exc)) from None


def decode_command(payload: bytes) -> Command:
    """Decode a command as a device receives it."""
    data = _load(payload)
    try:
        return _COMMAND_ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise ProtocolError("schema", _first_error(exc)) from None


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema of every message, keyed by file stem; shipped under ``schemas/``."""
    schemas: dict[str, dict[str, Any]] = {
        name: model.model_json_schema() for name, model in _BY_CHANNEL.items()
    }
    schemas["cmd"] = _COMMAND_ADAPTER.json_schema()
    for name, schema in schemas.items():
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://loaxa.invalid/protocol/v1/{name}.json"
    return schemas
