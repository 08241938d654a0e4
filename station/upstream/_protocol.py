"""The contract with the Source Information System: messages, errors, the adapter Protocol.

No public API of the provincial system exists, so loaxa defines the JSON mapping itself
(docs/upstream.md). Any transport that can carry it implements ``UpstreamAdapter``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "MESSAGE_KINDS",
    "BulletinIn",
    "BulletinPage",
    "Envelope",
    "UpstreamAdapter",
    "UpstreamError",
    "UpstreamRejected",
    "UpstreamUnavailable",
]

MESSAGE_KINDS = ("schedule", "proof_of_play", "cluster_status", "report", "bulletin_status")
SCHEMA_VERSION = 1


class UpstreamError(Exception):
    """An exchange with the upstream system did not succeed."""

    def __init__(self, detail: str, http_status: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.http_status = http_status


class UpstreamUnavailable(UpstreamError):
    """Expected, transient: network error, timeout, 5xx, 429. Retry later with backoff."""


class UpstreamRejected(UpstreamError):
    """The upstream system refused the message (4xx): retrying the same bytes cannot help."""


@dataclass(frozen=True)
class Envelope:
    """One outbound message, as it goes on the wire (``to_json``)."""

    key: str  # idempotency key: the same key is never counted twice upstream
    kind: str
    station_id: str
    created_at: datetime
    data: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "key": self.key,
            "kind": self.kind,
            "station_id": self.station_id,
            "created_at": self.created_at.isoformat(),
            "data": self.data,
        }


class BulletinIn(BaseModel):
    """A bulletin as the upstream system sends it. Unknown fields are ignored (forward
    compatible); known fields are checked strictly."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    id: str = Field(min_length=1, max_length=200)
    bulletin_class: Literal["normal", "priority", "emergency"] = Field(alias="class")
    title: str = Field(default="", max_length=500)
    text: str = Field(default="", max_length=20000)
    audio_url: str | None = Field(default=None, max_length=2000)
    valid_from: AwareDatetime | None = None
    valid_to: AwareDatetime | None = None
    villages: list[str] = Field(default_factory=list, max_length=1000)
    issued_at: AwareDatetime | None = None
    issuer: str = Field(default="", max_length=200)

    @field_validator("audio_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value or None

    def content_missing(self) -> bool:
        return not self.text.strip() and self.audio_url is None


@dataclass(frozen=True)
class BulletinPage:
    """One pull: raw bulletin objects (validated one by one by the inbox) and the next cursor."""

    bulletins: list[dict[str, Any]]
    cursor: str


class UpstreamAdapter(Protocol):
    """What the station needs from the upstream system. Implementations raise
    ``UpstreamUnavailable`` for transient failures and ``UpstreamRejected`` for refusals."""

    async def push(self, envelope: Envelope) -> bool:
        """Deliver one message. True: accepted now; False: already had it (duplicate key)."""
        ...

    async def pull_bulletins(self, cursor: str) -> BulletinPage:
        """Bulletins after ``cursor`` ("" = from the start of what the server keeps)."""
        ...

    async def download(self, url: str, dest: Path, max_bytes: int) -> str:
        """Fetch an audio file into ``dest`` (size-limited); returns its content type."""
        ...
