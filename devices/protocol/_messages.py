"""Messages of protocol v1, as pydantic models (the JSON Schemas are generated from these).

Rules every message follows:
- JSON objects, UTF-8, at most ``MAX_PAYLOAD_BYTES``; field ``v`` is the protocol version.
- Times are RFC 3339 strings with an offset (UTC ``Z`` recommended), millisecond precision.
- Unknown fields are ignored so a v1.x device can talk to a v1.y station.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

MAX_PAYLOAD_BYTES = 64 * 1024

ClusterId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
# Free text and ids end up in logs and databases (PostgreSQL refuses NUL): no control characters.
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
CommandId = Annotated[str, Field(min_length=1, max_length=64, pattern=PRINTABLE)]
# v1.2, optional: the station's tie-break between sessions of the same priority (higher wins;
# equal ranks: the newcomer wins). Absent = 0, so an older station's sessions all tie.
RANK_LIMIT = 1_000_000
Rank = Annotated[int, Field(ge=-RANK_LIMIT, le=RANK_LIMIT)]


Codec = Literal["opus", "mp3"]
PowerTarget = Literal["amplifier", "transmitter", "line"]
FaultCode = Literal["amplifier", "speaker", "power", "overheat", "cache_full", "clock", "other"]
Network = Literal["4g", "3g", "ethernet", "wifi", "other"]
LiveTransport = Literal["http", "mqtt"]
_HTTP_ONLY: tuple[LiveTransport, ...] = ("http",)
_ALL_CODECS: tuple[Codec, ...] = ("opus", "mp3")


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    v: Literal[1] = 1


class Capabilities(BaseModel):
    """What a receiver can do; sent in its birth message."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    codecs: list[Codec] = Field(default_factory=lambda: list(_ALL_CODECS))
    cache_bytes: int | None = Field(default=None, ge=0)
    # Live transports it can receive: an HTTP stream URL and/or Opus packets over MQTT.
    live: list[LiveTransport] = Field(default_factory=lambda: list(_HTTP_ONLY))
    # A bridge drives legacy equipment: which outputs it switches and which legacy clusters hang
    # off it (they report nothing themselves).
    outputs: list[PowerTarget] = Field(default_factory=list)
    bridged: list[ClusterId] = Field(default_factory=list, max_length=256)
    store_and_forward: bool = True
    # It switches its outputs itself for held sessions (``SessionSpec.power``), link up or down.
    scheduled_power: bool = False


class Status(_Message):
    """Retained availability: birth ``online`` after connecting, will ``offline``."""

    cluster_id: ClusterId
    state: Literal["online", "offline"]
    ts: AwareDatetime | None = None
    firmware: str | None = Field(default=None, max_length=64, pattern=PRINTABLE)
    model: str | None = Field(default=None, max_length=64, pattern=PRINTABLE)
    capabilities: Capabilities | None = None


class Heartbeat(_Message):
    """Periodic telemetry (QoS 0)."""

    cluster_id: ClusterId
    ts: AwareDatetime
    state: Literal["idle", "waiting", "playing", "fetching"]
    session_id: str | None = Field(default=None, max_length=64, pattern=PRINTABLE)
    volume: int | None = Field(default=None, ge=0, le=100)
    uptime_s: int | None = Field(default=None, ge=0)
    clock_offset_ms: int | None = None
    free_cache_bytes: int | None = Field(default=None, ge=0)
    bytes_downloaded: int | None = Field(default=None, ge=0)  # since boot; resets on reboot
    signal_dbm: int | None = Field(default=None, ge=-150, le=0)
    network: Network | None = None
    firmware: str | None = Field(default=None, max_length=64, pattern=PRINTABLE)
    faults: list[FaultCode] = Field(default_factory=list, max_length=16)
    power_source: Literal["mains", "battery", "solar"] | None = None
    interval_s: int | None = Field(default=None, ge=1, le=3600)
    upcoming_sessions: int | None = Field(default=None, ge=0)  # held for store-and-forward
    outputs_on: list[PowerTarget] | None = Field(default=None, max_length=3)  # a bridge's, now


class MediaRef(BaseModel):
    """One item of a play list: where to fetch it and how to check it."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    media_id: str = Field(min_length=1, max_length=64, pattern=PRINTABLE)
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
    """Fetch the items and start playing them back to back at ``start_at``.

    ``offset_ms`` starts into the programme (resuming after a preemption). A cluster keeps a
    play command until ``expires_at`` and starts on time from its cache even if its link is down.
    ``rank`` (v1.2) breaks ties of ``priority``: the higher wins; equal ranks, the newcomer.
    """

    type: Literal["play"] = "play"
    session_id: str = Field(min_length=1, max_length=64, pattern=PRINTABLE)
    start_at: AwareDatetime
    items: list[MediaRef] = Field(min_length=1, max_length=100)
    volume: int | None = Field(default=None, ge=0, le=100)
    priority: int = Field(default=50, ge=0, le=100)
    rank: Rank = 0
    offset_ms: int = Field(default=0, ge=0)


class StopCommand(_Command):
    """Stop the given session (or whatever plays when ``session_id`` is null)."""

    type: Literal["stop"] = "stop"
    session_id: str | None = Field(default=None, max_length=64, pattern=PRINTABLE)


class PrefetchCommand(_Command):
    """Download these items now and keep them until ``keep_until``; play nothing."""

    type: Literal["prefetch"] = "prefetch"
    items: list[MediaRef] = Field(min_length=1, max_length=100)
    keep_until: AwareDatetime | None = None


class PowerSpec(BaseModel):
    """An output a bridge switches itself for a held session (its link may be down then).

    On ``warmup_s`` before the session's ``start_at`` (sending ``zone_codes`` after power-on,
    as for a ``power`` command); off after the session ends unless another held session needs
    it by then (its own ``start_at - warmup_s`` has come) or the station holds it on.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)
    target: PowerTarget
    warmup_s: float = Field(default=0, ge=0, le=120)
    zone_codes: list[str] = Field(default_factory=list, max_length=64)


class SessionSpec(BaseModel):
    """One upcoming session a cluster holds for store-and-forward.

    ``power`` (v1.1, optional; older clusters ignore it): the outputs a bridge switches itself
    for this session, so bridged FM/wired sets hear it even when the link is down at start.
    ``rank`` (v1.2, optional): as in ``play``; held sessions play offline by the same rule.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)
    session_id: str = Field(min_length=1, max_length=64, pattern=PRINTABLE)
    start_at: AwareDatetime
    expires_at: AwareDatetime
    items: list[MediaRef] = Field(min_length=1, max_length=100)
    priority: int = Field(default=50, ge=0, le=100)
    rank: Rank = 0
    volume: int | None = Field(default=None, ge=0, le=100)
    power: list[PowerSpec] | None = Field(default=None, max_length=3)

    @model_validator(mode="after")
    def _one_spec_per_output(self) -> SessionSpec:
        targets = [p.target for p in self.power or ()]
        if len(set(targets)) != len(targets):
            raise ValueError("power lists each target at most once")
        return self


class ScheduleCommand(_Command):
    """The cluster's complete list of upcoming sessions (replaces any earlier list).

    The cluster fetches the items ahead, starts each session at its ``start_at`` whether or not
    its link is up, and reports proof of play when it can.
    """

    type: Literal["schedule"] = "schedule"
    sessions: list[SessionSpec] = Field(max_length=200)


class StreamCommand(_Command):
    """Play a live or relayed stream now: an HTTP stream ``url`` or Opus packets on ``topic``."""

    type: Literal["stream"] = "stream"
    session_id: str = Field(min_length=1, max_length=64, pattern=PRINTABLE)
    transport: LiveTransport = "http"
    url: str | None = Field(default=None, max_length=2048)
    topic: str | None = Field(default=None, max_length=256)
    codec: Codec = "opus"
    start_at: AwareDatetime | None = None
    until: AwareDatetime | None = None
    priority: int = Field(default=50, ge=0, le=100)
    rank: Rank = 0  # v1.2: as in ``play``
    volume: int | None = Field(default=None, ge=0, le=100)


class VolumeCommand(_Command):
    type: Literal["volume"] = "volume"
    level: int = Field(ge=0, le=100)


class PowerCommand(_Command):
    """Switch an amplifier or a bridged FM transmitter / wired line on or off.

    ``zone_codes`` are the DTMF/RDS selection codes sent to legacy FM sets after power-on.
    """

    type: Literal["power"] = "power"
    target: PowerTarget
    on: bool
    warmup_s: float = Field(default=0, ge=0, le=120)
    zone_codes: list[str] = Field(default_factory=list, max_length=64)


class IdentifyCommand(_Command):
    """Play a test tone so a technician can find and check the cluster at install time."""

    type: Literal["identify"] = "identify"
    seconds: int = Field(default=5, ge=1, le=60)
    tone_hz: int = Field(default=1000, ge=100, le=8000)


class ConfigCommand(_Command):
    type: Literal["config"] = "config"
    heartbeat_s: int | None = Field(default=None, ge=5, le=3600)
    default_volume: int | None = Field(default=None, ge=0, le=100)


class RebootCommand(_Command):
    type: Literal["reboot"] = "reboot"


class TimeCommand(_Command):
    """Clock probe: the ack carries ``device_time``; the station computes the offset."""

    type: Literal["time"] = "time"


Command = Annotated[
    PlayCommand
    | StopCommand
    | PrefetchCommand
    | ScheduleCommand
    | StreamCommand
    | VolumeCommand
    | PowerCommand
    | IdentifyCommand
    | ConfigCommand
    | RebootCommand
    | TimeCommand,
    Field(discriminator="type"),
]

NackCode = Literal[
    "expired",
    "bad_request",
    "unsupported",
    "busy",
    "download_failed",
    "checksum_mismatch",
    "cache_full",
    "no_hardware",
    "internal",
]


class Ack(_Message):
    """Answer to a command: ``ok`` true (accepted) or false with an error ``code``."""

    cluster_id: ClusterId
    cmd_id: CommandId
    ok: bool
    code: NackCode | None = None
    detail: str | None = Field(default=None, max_length=256, pattern=PRINTABLE)
    ts: AwareDatetime
    device_time: AwareDatetime | None = None  # the cluster's clock on handling (``time`` probes)
    duplicate: bool = False  # re-acknowledging a command id it already handled


EventType = Literal[
    "playback_started",
    "playback_finished",
    "playback_interrupted",
    "download_failed",
    "prefetch_done",
    "fault_raised",
    "fault_cleared",
]


class Event(_Message):
    """Something that happened on the cluster, with the cluster's own timestamps."""

    cluster_id: ClusterId
    type: EventType
    session_id: str | None = Field(default=None, min_length=1, max_length=64, pattern=PRINTABLE)
    ts: AwareDatetime
    start_at: AwareDatetime | None = None
    started_at: AwareDatetime | None = None
    finished_at: AwareDatetime | None = None
    played_ms: int | None = Field(default=None, ge=0)
    bytes_downloaded: int | None = Field(default=None, ge=0)
    clock_offset_ms: int | None = None
    code: NackCode | None = None
    detail: str | None = Field(default=None, max_length=256, pattern=PRINTABLE)
    fault: FaultCode | None = None
    # a session id or "stop"
    interrupted_by: str | None = Field(default=None, max_length=64, pattern=PRINTABLE)
    late_ms: int | None = None  # started this late on purpose (it was down at start_at)
    cmd_id: CommandId | None = None  # the command this event answers (``prefetch_done``)
    media_ids: list[Annotated[str, Field(max_length=64, pattern=PRINTABLE)]] | None = Field(
        default=None, max_length=100
    )  # items now cached
    packets: int | None = Field(default=None, ge=0)  # live packets received (MQTT streams)
    # A bridge's outputs switched on as the session starts (``playback_started``).
    outputs_on: list[PowerTarget] | None = Field(default=None, max_length=3)

    @model_validator(mode="after")
    def _needs_session_or_fault(self) -> Event:
        if self.type in _FAULT_EVENTS and self.fault is None:
            raise ValueError(f"{self.type} needs a fault code")
        if self.type in _SESSION_EVENTS and self.session_id is None:
            raise ValueError(f"{self.type} needs a session_id")
        if self.type == "download_failed" and self.session_id is None and self.cmd_id is None:
            raise ValueError("download_failed needs a session_id, or a cmd_id for a prefetch")
        return self


_FAULT_EVENTS = frozenset({"fault_raised", "fault_cleared"})
_SESSION_EVENTS = frozenset({"playback_started", "playback_finished", "playback_interrupted"})


def to_utc_iso(value: datetime) -> str:
    """RFC 3339 with milliseconds in UTC, the form every example in docs/protocol.md uses."""
    from datetime import UTC

    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
