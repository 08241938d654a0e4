"""Messages of protocol v1, as pydantic models (the JSON Schemas are generated from these).

Rules every message follows:
- JSON objects, UTF-8, at most ``MAX_PAYLOAD_BYTES``; field ``v`` is the protocol version.
- Times are RFC 3339 strings with an offset (UTC ``Z`` recommended), millisecond precision.
- Unknown fields are ignored so a v1.x device can talk to a v1.y station.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

MAX_PAYLOAD_BYTES = 64 * 1024

ClusterId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
CommandId = Annotated[str, Field(min_length=1, max_length=64)]


Codec = Literal["opus", "mp3"]
_ALL_CODECS: tuple[Codec, ...] = ("opus", "mp3")


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    v: Literal[1] = 1


class Capabilities(BaseModel):
    """What a receiver can do; sent in its birth message."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    codecs: list[Codec] = Field(default_factory=lambda: list(_ALL_CODECS))
    cache_bytes: int | None = Field(default=None, ge=0)


class Status(_Message):
    """Retained availability: birth ``online`` after connecting, will ``offline``."""

    cluster_id: ClusterId
    state: Literal["online", "offline"]
    ts: AwareDatetime | None = None
    firmware: str | None = Field(default=None, max_length=64)
    model: str | None = Field(default=None, max_length=64)
    capabilities: Capabilities | None = None


class Heartbeat(_Message):
    """Periodic telemetry (QoS 0)."""

    cluster_id: ClusterId
    ts: AwareDatetime
    state: Literal["idle", "waiting", "playing", "fetching"]
    session_id: str | None = Field(default=None, max_length=64)
    volume: int | None = Field(default=None, ge=0, le=100)
    uptime_s: int | None = Field(default=None, ge=0)
    clock_offset_ms: int | None = None
    free_cache_bytes: int | None = Field(default=None, ge=0)
    bytes_downloaded: int | None = Field(default=None, ge=0)


class MediaRef(BaseModel):
    """One item of a play list: where to fetch it and how to check it."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    media_id: str = Field(min_length=1, max_length=64)
    url: str = Field(min_length=1, max_length=2048)
    sha256: Sha256Hex
    size: int = Field(ge=0)
    duration_ms: int = Field(ge=0)
    codec: Codec = "opus"


class _Command(_Message):
    id: CommandId
    issued_at: AwareDatetime
    expires_at: AwareDatetime


class PlayCommand(_Command):
    """Fetch the items and start playing them back to back at ``start_at``."""

    type: Literal["play"] = "play"
    session_id: str = Field(min_length=1, max_length=64)
    start_at: AwareDatetime
    items: list[MediaRef] = Field(min_length=1, max_length=100)
    volume: int | None = Field(default=None, ge=0, le=100)
    priority: int = Field(default=50, ge=0, le=100)


class StopCommand(_Command):
    """Stop the given session (or whatever plays when ``session_id`` is null)."""

    type: Literal["stop"] = "stop"
    session_id: str | None = Field(default=None, max_length=64)


Command = Annotated[PlayCommand | StopCommand, Field(discriminator="type")]

NackCode = Literal[
    "expired",
    "bad_request",
    "unsupported",
    "busy",
    "download_failed",
    "checksum_mismatch",
    "cache_full",
    "internal",
]


class Ack(_Message):
    """Answer to a command: ``ok`` true (accepted) or false with an error ``code``."""

    cluster_id: ClusterId
    cmd_id: CommandId
    ok: bool
    code: NackCode | None = None
    detail: str | None = Field(default=None, max_length=256)
    ts: AwareDatetime


EventType = Literal[
    "playback_started",
    "playback_finished",
    "playback_interrupted",
    "download_failed",
]


class Event(_Message):
    """Something that happened on the cluster, with the cluster's own timestamps."""

    cluster_id: ClusterId
    type: EventType
    session_id: str = Field(min_length=1, max_length=64)
    ts: AwareDatetime
    start_at: AwareDatetime | None = None
    started_at: AwareDatetime | None = None
    finished_at: AwareDatetime | None = None
    played_ms: int | None = Field(default=None, ge=0)
    bytes_downloaded: int | None = Field(default=None, ge=0)
    clock_offset_ms: int | None = None
    code: NackCode | None = None
    detail: str | None = Field(default=None, max_length=256)


def to_utc_iso(value: datetime) -> str:
    """RFC 3339 with milliseconds in UTC, the form every example in docs/protocol.md uses."""
    from datetime import UTC

    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
