"""Station configuration: a YAML file, then ``LOAXA_<SECTION>__<KEY>`` environment overrides.

``load_config()`` is the only way configuration enters the program; it returns a frozen
``Settings`` or raises ``ConfigError`` with a message naming the key and the problem.

Rules:
- Unknown keys are errors (a typo must not silently fall back to a default).
- Relative paths written in the YAML file (``media.dir``, ``mqtt.ca_file``, ``media.ffmpeg`` when
  it contains a ``/``, the file of a ``sqlite:///`` URL) are relative to the file's folder.
  Relative paths from defaults or the environment are relative to the working directory.
- Secrets (passwords inside URLs) never appear in ``repr()``/``str()`` or error messages; use
  ``Settings.redacted()`` to log the effective configuration.
"""

from __future__ import annotations

import os
import re
import types
import typing
import zoneinfo
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Self
from urllib.parse import unquote, urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

__all__ = [
    "AuthSection",
    "ConfigError",
    "DatabaseSection",
    "DevicesSection",
    "HttpSection",
    "LoggingSection",
    "MediaSection",
    "MetricsSection",
    "MqttBroker",
    "MqttSection",
    "PlayoutSection",
    "QuotaSection",
    "SchedulerSection",
    "Settings",
    "StationSection",
    "UpstreamSection",
    "async_driver_url",
    "load_config",
    "mask_url",
    "sync_driver_url",
]

ENV_PREFIX = "LOAXA_"
_ENV_SEP = "__"
STATION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_MASK = "***"
# scheme://user:PASSWORD@host (greedy up to the last "@" of the authority)
_USERINFO_PASSWORD = re.compile(r"(?P<head>^[A-Za-z][A-Za-z0-9+.-]*://[^:/@?#]*:)[^/?#]*@")


class ConfigError(Exception):
    """The configuration cannot be used. ``str(err)`` is ready to show to an operator."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(f"config error: {p}" for p in problems))


# --------------------------------------------------------------------------- URL helpers


def mask_url(url: str) -> str:
    """``scheme://user:secret@host`` -> ``scheme://user:***@host``; other strings unchanged."""
    return _USERINFO_PASSWORD.sub(rf"\g<head>{_MASK}@", url)


def _db_backend(url: str) -> str:
    scheme, sep, _ = url.partition("://")
    if not sep:
        raise ValueError("must look like sqlite:///path/to/file.db or postgresql://user@host/db")
    backend = scheme.split("+", 1)[0].lower()
    if backend == "postgres":
        backend = "postgresql"
    if backend not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported database {scheme!r}: use sqlite:/// or postgresql://")
    return backend


def _with_driver(url: str, driver: str) -> str:
    _, rest = url.split("://", 1)  # string surgery, not SQLAlchemy: keeps encoding and password
    return f"{driver}://{rest}"


def async_driver_url(url: str) -> str:
    """A database URL for SQLAlchemy's asyncio engine (sqlite+aiosqlite, postgresql+psycopg)."""
    backend = _db_backend(url)
    return _with_driver(url, "sqlite+aiosqlite" if backend == "sqlite" else "postgresql+psycopg")


def sync_driver_url(url: str) -> str:
    """A database URL for a synchronous engine, e.g. Alembic (sqlite, postgresql+psycopg)."""
    backend = _db_backend(url)
    return _with_driver(url, "sqlite" if backend == "sqlite" else "postgresql+psycopg")


def _sqlite_file(url: str) -> tuple[str, str, str] | None:
    """Split ``sqlite[+drv]:///path?query`` into (prefix, path, query); None for memory/others."""
    m = re.match(r"^(?P<prefix>sqlite(\+\w+)?:///)(?P<path>[^?]*)(?P<query>\?.*)?$", url)
    if m is None or m["path"] in ("", ":memory:"):
        return None
    return m["prefix"], m["path"], m["query"] or ""


# --------------------------------------------------------------------------- sections


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, mask_url(value) if isinstance(value, str) else value


class StationSection(_Section):
    id: str = Field(default="xa-demo", pattern=STATION_ID_PATTERN)
    name: str = Field(default="Đài truyền thanh xã", min_length=1, max_length=200)
    timezone: str = "Asia/Ho_Chi_Minh"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError("unknown time zone (use an IANA name: Asia/Ho_Chi_Minh)") from None
        return value

    @property
    def tzinfo(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


class DatabaseSection(_Section):
    url: str = "sqlite:///./var/loaxa.db"

    @field_validator("url")
    @classmethod
    def _supported(cls, value: str) -> str:
        _db_backend(value)
        return value

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return _db_backend(self.url)

    def async_url(self) -> str:
        return async_driver_url(self.url)

    def sync_url(self) -> str:
        return sync_driver_url(self.url)


class MqttBroker(BaseModel):
    """An external broker, parsed from ``mqtt.url``."""

    model_config = ConfigDict(frozen=True)
    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = Field(default=None, repr=False)


class MqttSection(_Section):
    url: str = "embedded"
    embedded_host: str = "127.0.0.1"
    embedded_port: int = Field(default=1883, ge=0, le=65535)
    ca_file: Path | None = None
    # "" -> "loaxa-station-<station.id>", filled in by Settings
    client_id: str = Field(default="", max_length=128)
    keepalive_s: int = Field(default=30, ge=5, le=65535)
    publish_timeout_s: float = Field(default=5.0, gt=0)
    inbound_queue_size: int = Field(default=10000, ge=1)
    reconnect_min_s: float = Field(default=1.0, gt=0)
    reconnect_max_s: float = Field(default=60.0, gt=0)

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        if value == "embedded":
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ValueError("must be 'embedded', mqtt://[user:pass@]host[:port] or mqtts://...")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError as exc:
            raise ValueError(f"bad port: {exc}") from None
        if not parts.hostname:
            raise ValueError("missing host")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError("must not have a path, query or fragment")
        return value

    @field_validator("reconnect_max_s")
    @classmethod
    def _backoff_order(cls, value: float, info: ValidationInfo) -> float:
        low = info.data.get("reconnect_min_s")
        if low is not None and value < low:
            raise ValueError(f"must be >= reconnect_min_s ({low})")
        return value

    @property
    def embedded(self) -> bool:
        return self.url == "embedded"

    def broker(self) -> MqttBroker:
        """Host, port, TLS and credentials of the external broker (ValueError when embedded)."""
        if self.embedded:
            raise ValueError("mqtt.url is 'embedded': there is no external broker")
        parts = urlsplit(self.url)
        tls = parts.scheme == "mqtts"
        return MqttBroker(
            host=parts.hostname or "",
            port=parts.port or (8883 if tls else 1883),
            tls=tls,
            username=unquote(parts.username) if parts.username is not None else None,
            password=unquote(parts.password) if parts.password is not None else None,
        )


class HttpSection(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    public_base_url: str | None = None
    # Media URLs are signed per cluster (HMAC-SHA256) with this secret; empty = generated once
    # and kept in <media.dir>/.url_secret. Never logged.
    url_secret: SecretStr | None = None
    # How long a signed media URL stays valid, in seconds.
    url_ttl_s: int = Field(default=86400, ge=60)
    # HTTPS: certificate chain and private key (PEM). Both set = the station serves HTTPS only
    # (TLS 1.2 or later) and the URLs it hands out are https://. tls_ca: the CA certificate
    # clusters need to trust it (a private CA); it goes into every provisioning bundle.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None

    @field_validator("url_secret")
    @classmethod
    def _long_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value():
            return None  # empty = generate one
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value

    @field_validator("public_base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL such as http://10.0.0.2:8080")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _tls_pair(self) -> Self:
        if (self.tls_cert is None) != (self.tls_key is None):
            missing = "tls_key" if self.tls_key is None else "tls_cert"
            raise ValueError(f"{missing} is required when the other of tls_cert/tls_key is set")
        if self.tls and self.public_base_url and not self.public_base_url.startswith("https://"):
            raise ValueError("public_base_url must be https:// when tls_cert is set")
        return self

    @property
    def tls(self) -> bool:
        """The station itself serves HTTPS."""
        return self.tls_cert is not None

    @property
    def base_url(self) -> str:
        """Where clusters and tools reach the station: ``public_base_url`` or host and port."""
        scheme = "https" if self.tls else "http"
        return self.public_base_url or f"{scheme}://{self.host}:{self.port}"


class MediaSection(_Section):
    dir: Path = Path("./var/media")
    max_upload_mb: int = Field(default=200, ge=1)
    max_duration_s: int = Field(default=10800, ge=1)
    target_lufs: float = Field(default=-16.0, ge=-70.0, le=-5.0)
    true_peak_db: float = Field(default=-1.5, ge=-9.0, le=0.0)
    speech_filter: bool = False
    workers: int = Field(default=2, ge=1, le=64)
    ffmpeg: str = Field(default="auto", min_length=1)
    # Delivery renditions: Opus for receivers that have it, MP3 for those that do not.
    opus_bitrate: str = Field(default="24k", pattern=r"^[0-9]{1,3}k$")
    mp3_bitrate: str = Field(default="48k", pattern=r"^[0-9]{1,3}k$")
    renditions: tuple[typing.Literal["opus", "mp3"], ...] = Field(
        default=("opus", "mp3"), min_length=1, max_length=2
    )

    @field_validator("renditions")
    @classmethod
    def _distinct(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("each codec at most once")
        return value


class SchedulerSection(_Section):
    dispatch_lead_s: float = Field(default=5.0, ge=0)
    play_expiry_s: float = Field(default=60.0, gt=0)
    misfire_grace_s: float = Field(default=300.0, ge=0)
    # Recurring schedules: occurrences starting within this horizon get their jobs; missed ones
    # (station down past their grace) as far back as the lookback are recorded as skipped.
    horizon_s: float = Field(default=3600.0, gt=0)
    missed_lookback_s: float = Field(default=86400.0, ge=0)
    # Store-and-forward: clusters hold the sessions of the next forward_horizon_s (0: off) and
    # fetch the audio of those starting within prefetch_ahead_s.
    forward_horizon_s: float = Field(default=86400.0, ge=0)
    prefetch_ahead_s: float = Field(default=1800.0, ge=0)


class DevicesSection(_Section):
    # Register an unknown cluster when it announces itself (retained status message); when
    # false, clusters must be added by an operator first and unknown ones are ignored.
    auto_register: bool = False
    # Embedded broker only: let clients without a username in (demo/tests). Off = every client
    # logs in (clusters with their own credentials, the station with a password made at start).
    allow_anonymous: bool = False
    # Monitoring [giám sát]: a cluster is offline after ``missed_heartbeats`` intervals of silence.
    heartbeat_interval_s: float = Field(default=30.0, gt=0)
    missed_heartbeats: int = Field(default=3, ge=1)
    clock_offset_max_ms: int = Field(default=500, ge=0)
    low_cache_bytes: int = Field(default=50_000_000, ge=0)
    # Link flapping: this many offline transitions within flap_window_min minutes.
    flap_count: int = Field(default=4, ge=2)
    flap_window_min: float = Field(default=10.0, gt=0)
    # How often the monitor checks for silent clusters and reloads credentials (seconds).
    sweep_s: float = Field(default=5.0, gt=0)
    # Mosquitto (production broker): files the station keeps up to date, and its pid file for
    # the SIGHUP that reloads them. Empty = not managed by the station.
    mosquitto_password_file: Path | None = None
    mosquitto_acl_file: Path | None = None
    mosquitto_pid_file: Path | None = None


class AuthSection(_Section):
    # Browser sessions end after this many idle minutes, and at the latest after absolute_hours.
    session_idle_minutes: int = Field(default=120, ge=1)
    session_absolute_hours: int = Field(default=12, ge=1)
    # Failed logins per username and per client address before exponential backoff (HTTP 429).
    login_max_failures: int = Field(default=5, ge=1)
    login_backoff_max_s: int = Field(default=900, ge=1)
    # Failed logins count for this long (a sliding window, kept in the database); the first
    # lock-out lasts login_lockout_s and doubles with each further failure.
    login_window_s: int = Field(default=900, ge=1)
    login_lockout_s: int = Field(default=1, ge=1)
    # A programme version must be approved by an approver before it can be scheduled.
    approval_required: bool = False
    # An emergency broadcast needs a second user to confirm it.
    emergency_two_person: bool = False
    # Largest JSON request body, in kilobytes (uploads use media.max_upload_mb).
    max_json_kb: int = Field(default=256, ge=1)


class LoggingSection(_Section):
    level: str = "INFO"
    # ``json`` would shadow BaseModel.json(); the YAML/env key is still ``json``.
    json_format: bool = Field(default=False, alias="json")

    @field_validator("level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = value.upper()
        if level not in _LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(_LOG_LEVELS)}")
        return level


class QuotaSection(_Section):
    """Airtime limits of one locality; an empty value means no limit."""

    max_sessions_per_day: int | None = Field(default=None, ge=1)
    max_minutes_per_session: float | None = Field(default=None, gt=0)
    max_days_per_week: int | None = Field(default=None, ge=1, le=7)
    count_relays: bool = True


def _default_localities() -> dict[str, QuotaSection]:
    return {
        "urban": QuotaSection(
            max_sessions_per_day=2, max_minutes_per_session=15, max_days_per_week=5
        ),
        "rural": QuotaSection(max_minutes_per_session=45),
    }


class PlayoutSection(_Section):
    # name -> level; higher wins (emergency > bulletin > live > scheduled > relay > idle)
    priorities: dict[str, int] = Field(
        default_factory=lambda: {
            "emergency": 100,
            "bulletin": 80,
            "live": 60,
            "scheduled": 40,
            "relay": 20,
            "idle": 0,
        }
    )
    newest_wins: list[str] = Field(default_factory=lambda: ["emergency"])
    # Where clusters hear a live slot (the station's live stream); none: live slots are silent.
    live_url: str | None = Field(default=None, max_length=2000)
    # Emergency broadcasts: volume override, and seconds a legacy bridge's transmitter or
    # amplifier needs after switching on before audio starts.
    emergency_volume: int = Field(default=100, ge=0, le=100)
    bridge_warmup_s: float = Field(default=5.0, ge=0, le=120)
    quota_exempt: list[str] = Field(default_factory=lambda: ["emergency", "bulletin"])
    localities: dict[str, QuotaSection] = Field(default_factory=_default_localities)
    default_locality: str = "rural"
    village_localities: dict[str, str] = Field(default_factory=dict)
    cluster_localities: dict[str, str] = Field(default_factory=dict)
    session_gap_min: float = Field(default=5.0, ge=0)
    check_weeks: int = Field(default=5, ge=1, le=60)

    @model_validator(mode="after")
    def _names_known(self) -> Self:
        if not self.priorities:
            raise ValueError("priorities: at least one level is needed")
        for key in ("newest_wins", "quota_exempt"):
            unknown = sorted(set(getattr(self, key)) - set(self.priorities))
            if unknown:
                raise ValueError(f"{key}: unknown priority {', '.join(unknown)}")
        used = {self.default_locality, *self.village_localities.values()}
        used |= set(self.cluster_localities.values())
        unknown = sorted(used - set(self.localities))
        if unknown:
            raise ValueError(f"unknown locality {', '.join(unknown)}: add it under localities")
        return self


ReportCadence = typing.Literal["daily", "monthly", "half_year", "year"]


class ReportPushSection(_Section):
    """Reports pushed upstream on a cadence (docs/upstream.md "Cadence"): each closed period's
    report is queued once (key ``report:<kind>:<period>:auto``), ``delay_h`` after it closes."""

    activity: tuple[ReportCadence, ...] = ("monthly", "half_year", "year")
    inventory: tuple[ReportCadence, ...] = ("half_year", "year")
    check_interval_s: float = Field(default=900.0, gt=0)  # how often due periods are looked for
    delay_h: float = Field(default=6.0, ge=0, le=24 * 31)  # late proof of play settles first


class UpstreamSection(_Section):
    """The provincial Source Information System [Hệ thống thông tin nguồn]; docs/upstream.md."""

    enabled: bool = False
    # https://... in production; http:// is accepted (tests, a VPN) and logged as insecure.
    base_url: str = ""
    token: SecretStr | None = None  # bearer token of this station; never logged
    ca_file: Path | None = None  # extra CA bundle for the upstream server (TLS is always verified)
    timeout_s: float = Field(default=15.0, gt=0)
    # How often schedules and proof of play are collected into the outbox, and bulletins pulled.
    push_interval_s: float = Field(default=60.0, gt=0)
    status_interval_s: float = Field(default=900.0, gt=0)  # cluster status snapshots
    pull_interval_s: float = Field(default=60.0, gt=0)  # 0 is not allowed: use enabled
    pull: bool = True
    # Outbox retries (network errors, 5xx, 429): exponential from retry_min_s to retry_max_s.
    retry_min_s: float = Field(default=2.0, gt=0)
    retry_max_s: float = Field(default=600.0, gt=0)
    # Proof of play is pushed once a record is final, or this long after its start.
    play_report_after_s: float = Field(default=600.0, ge=0)
    collect_window_h: float = Field(default=168.0, gt=0)  # how far back collectors look
    # Webhook POST /upstream/v1/bulletins: HMAC-SHA256 over "<timestamp>.<body>".
    webhook_secret: SecretStr | None = Field(default=None, min_length=16)
    webhook_tolerance_s: int = Field(default=300, ge=10)
    # Emergency bulletins: "never" = trigger at once, "always" = an operator confirms first.
    emergency_confirm: typing.Literal["never", "always"] = "never"
    audio_max_mb: int = Field(default=50, ge=1)
    # A priority bulletin with audio that no operator placed or declined this many minutes
    # after it arrived is placed by the station itself before the next programme on its
    # villages (DOMAIN: priority bulletins play ahead in the next programme). 0/null: never.
    auto_place_priority_after_min: float | None = Field(default=30.0, ge=0)
    push: ReportPushSection = Field(default_factory=ReportPushSection)  # reports' cadence
    audio_content_types: tuple[str, ...] = (
        "audio/mpeg",
        "audio/ogg",
        "audio/opus",
        "audio/wav",
        "audio/x-wav",
        "audio/mp4",
        "audio/aac",
        "audio/flac",
        "application/ogg",
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an https:// URL such as https://ttn.example.gov.vn/api")
        if parts.username or parts.password:
            raise ValueError("must not carry credentials: use upstream.token")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.enabled and not self.base_url:
            raise ValueError("base_url is required when enabled")
        if self.retry_max_s < self.retry_min_s:
            raise ValueError("retry_max_s must be >= retry_min_s")
        return self


class MetricsSection(_Section):
    enabled: bool = True  # GET /metrics (Prometheus text format)
    on_time_ms: int = Field(default=500, ge=0)  # a play is on time when |skew| <= this


class LiveSection(_Section):
    """Live and relay mounts (station/live, docs/live.md)."""

    codec: typing.Literal["opus", "mp3"] = "opus"
    opus_bitrate: str = Field(default="24k", pattern=r"^[0-9]{1,3}k$")
    mp3_bitrate: str = Field(default="48k", pattern=r"^[0-9]{1,3}k$")
    listener_buffer_kb: int = Field(default=64, ge=4, le=4096)  # per listener; beyond: skip forward
    max_skips: int = Field(default=3, ge=0)  # skips in a row, then the listener is dropped
    dead_after_s: float = Field(default=5.0, gt=0)  # no audio from the source: alert + fallback
    silence_after_s: float = Field(default=30.0, gt=0)  # quiet this long: alert + fallback
    silence_db: float = Field(default=-50.0, le=0)
    # While the source is dead or silent: loop this media item (sha256), else air silence.
    fallback_media: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    retry_min_s: float = Field(default=1.0, gt=0)
    retry_max_s: float = Field(default=30.0, gt=0)
    # Icecast source clients (PUT/SOURCE, Basic source:<password>); no password = push refused.
    source_password: SecretStr | None = Field(default=None, min_length=8)
    source_host: str = "0.0.0.0"
    source_port: int | None = Field(default=None, ge=0, le=65535)  # None = no source server
    mqtt: bool = True  # also publish Opus pages on loaxa/v1/<station>/live/<mount>
    # Scheduled live slots air this mount (unless playout.live_url overrides it).
    studio_mount: str = Field(default="studio", pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    # Scale-out: also push every mount as a source to icecast://source:PW@host:port (+ /<mount>).
    icecast_push_url: SecretStr | None = None
    # ... and clusters fetch mounts from this Icecast edge/relay (+ /<mount>, signed per cluster
    # like the station's URLs) instead of the station; needs icecast_push_url. docs/live.md.
    icecast_edge_url: str | None = Field(
        default=None, pattern=r"^https?://[^\s?#]+$", max_length=500
    )
    # HTTP listeners get audio in batches, one socket write per batch and listener (the fan-out's
    # CPU is per write): http_batch_ms of audio at least; with many listeners the batch grows so
    # that the fan-out makes at most http_batch_writes_per_s writes/s, up to http_batch_max_ms
    # (the most delay batching adds; clusters buffer 1-2 s). docs/live.md "Fan-out".
    http_batch_ms: int = Field(default=200, ge=20, le=2000)
    http_batch_max_ms: int = Field(default=600, ge=20, le=2000)
    http_batch_writes_per_s: int = Field(default=2000, ge=100)

    @model_validator(mode="after")
    def _batch_range(self) -> Self:
        if self.http_batch_max_ms < self.http_batch_ms:
            raise ValueError("http_batch_max_ms must be >= http_batch_ms")
        if self.icecast_edge_url is not None and self.icecast_push_url is None:
            raise ValueError("icecast_edge_url needs icecast_push_url (the edge relays the push)")
        return self


class Settings(_Section):
    station: StationSection = Field(default_factory=StationSection)
    database: DatabaseSection = Field(default_factory=DatabaseSection)
    mqtt: MqttSection = Field(default_factory=MqttSection)
    http: HttpSection = Field(default_factory=HttpSection)
    media: MediaSection = Field(default_factory=MediaSection)
    scheduler: SchedulerSection = Field(default_factory=SchedulerSection)
    playout: PlayoutSection = Field(default_factory=PlayoutSection)
    devices: DevicesSection = Field(default_factory=DevicesSection)
    logging: LoggingSection = Field(default_factory=LoggingSection)
    auth: AuthSection = Field(default_factory=AuthSection)
    upstream: UpstreamSection = Field(default_factory=UpstreamSection)
    metrics: MetricsSection = Field(default_factory=MetricsSection)
    live: LiveSection = Field(default_factory=LiveSection)

    @model_validator(mode="after")
    def _default_client_id(self) -> Self:
        if not self.mqtt.client_id:
            mqtt = self.mqtt.model_copy(update={"client_id": f"loaxa-station-{self.station.id}"})
            object.__setattr__(self, "mqtt", mqtt)  # frozen: still inside validation
        return self

    def redacted(self) -> dict[str, Any]:
        """The effective configuration as plain data, with passwords masked (for logs)."""
        data = self.model_dump(mode="json", by_alias=True)
        for section in data.values():
            for key, value in section.items():
                if isinstance(value, str):
                    section[key] = mask_url(value)
        return data


# --------------------------------------------------------------------------- loading


def load_config(path: Path | None = None, environ: Mapping[str, str] = os.environ) -> Settings:
    """Read ``path`` (YAML, optional), apply ``LOAXA_<SECTION>__<KEY>`` overrides, validate."""
    data: dict[str, Any] = {}
    if path is not None:
        data = _read_yaml(path)
        _resolve_paths(data, path.absolute().parent)
    sources = _apply_env(data, environ)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([_describe(err, sources) for err in exc.errors()]) from None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"cannot read {path}: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"cannot read {path}: not UTF-8 ({exc.reason})"]) from None
    try:
        loaded = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError([f"{path}:{where}: invalid YAML: {exc.problem or exc}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: invalid YAML: {exc}"]) from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError([f"{path}: the top level must be a mapping of sections"])
    # A section whose keys are all commented out reads as null: it means "all defaults".
    return {key: {} if value is None else value for key, value in loaded.items()}


def _resolve_paths(data: dict[str, Any], base: Path) -> None:
    def resolve(section: str, key: str, only_if_slash: bool = False) -> None:
        sect = data.get(section)
        if not isinstance(sect, dict):
            return
        value = sect.get(key)
        if not isinstance(value, str) or not value or value == "auto":
            return
        if only_if_slash and "/" not in value and os.sep not in value:
            return  # a bare command name, looked up on PATH
        p = Path(value).expanduser()
        sect[key] = str(p if p.is_absolute() else base / p)

    resolve("media", "dir")
    resolve("mqtt", "ca_file")
    resolve("upstream", "ca_file")
    for key in ("tls_cert", "tls_key", "tls_ca"):
        resolve("http", key)
    for key in ("mosquitto_password_file", "mosquitto_acl_file", "mosquitto_pid_file"):
        resolve("devices", key)
    resolve("media", "ffmpeg", only_if_slash=True)
    db = data.get("database")
    if isinstance(db, dict) and isinstance(db.get("url"), str):
        parts = _sqlite_file(db["url"])
        if parts is not None:
            prefix, file, query = parts
            p = Path(file).expanduser()
            if not p.is_absolute():
                db["url"] = f"{prefix}{base / p}{query}"


def _apply_env(data: dict[str, Any], environ: Mapping[str, str]) -> dict[tuple[str, str], str]:
    """Merge overrides into ``data``; return {(section, key): env var name}."""
    sources: dict[tuple[str, str], str] = {}
    problems: list[str] = []
    for var in sorted(environ):
        if not var.startswith(ENV_PREFIX) or _ENV_SEP not in var:
            continue  # e.g. LOAXA_TEST_DATABASE_URL belongs to someone else
        section, _, key = var[len(ENV_PREFIX) :].lower().partition(_ENV_SEP)
        sect_field = Settings.model_fields.get(section)
        if sect_field is None:
            problems.append(f"unknown key {section} (from {var})")
            continue
        sect_model = typing.cast(type[BaseModel], sect_field.annotation)
        field = _field_by_key(sect_model, key)
        if field is None:
            problems.append(f"unknown key {section}.{key} (from {var})")
            continue
        target = data.setdefault(section, {})
        if not isinstance(target, dict):
            problems.append(f"{section}: must be a mapping (cannot apply {var})")
            continue
        target[key] = _env_value(environ[var], field.annotation)
        sources[(section, key)] = var
    if problems:
        raise ConfigError(problems)
    return sources


def _field_by_key(model: type[BaseModel], key: str) -> Any:
    for name, info in model.model_fields.items():
        if (info.alias or name) == key:
            return info
    return None


def _env_value(raw: str, annotation: Any) -> Any:
    """Parse an environment value as a YAML scalar; text fields keep the raw text."""
    args = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    optional = type(None) in args
    if optional and raw.strip() in ("", "~", "null", "None"):
        return None
    if str in args or Path in args:
        return raw
    if typing.get_origin(annotation) in (tuple, list):  # "opus,mp3" or "[opus, mp3]"
        return [part.strip() for part in raw.strip().strip("[]").split(",") if part.strip()]
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    return value if isinstance(value, (int, float, bool)) else raw


def _describe(err: Any, sources: Mapping[tuple[str, str], str]) -> str:
    loc = [str(p) for p in err["loc"]]
    where = ".".join(loc) or "(top level)"
    var = sources.get((loc[0], loc[1])) if len(loc) >= 2 else None
    origin = f" (from {var})" if var else ""
    if err["type"] == "extra_forbidden":
        return f"unknown key {where}{origin}"
    msg = str(err["msg"]).removeprefix("Value error, ")
    got = err.get("input")
    shown = ""
    secret = any("secret" in part or "password" in part for part in loc)  # never echo those
    if err["type"] != "missing" and not secret and isinstance(got, (str, int, float, bool)):
        shown = f" (got {(repr(mask_url(got)) if isinstance(got, str) else repr(got))})"
    return f"{where}: {msg}{shown}{origin}"
