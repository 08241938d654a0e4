"""Value types of the media pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Codec = Literal["opus", "mp3"]
CODECS: tuple[Codec, ...] = ("opus", "mp3")
# File extension, Content-Type, ffmpeg muxer and encoder of each delivery codec.
EXTENSIONS: dict[Codec, str] = {"opus": "opus", "mp3": "mp3"}
CONTENT_TYPES: dict[str, str] = {"opus": "audio/ogg", "mp3": "audio/mpeg"}


@dataclass(frozen=True)
class MediaSettings:
    """Limits and targets for one ingest; the station builds it from its config."""

    max_bytes: int = 200 * 1024 * 1024
    max_duration_s: float = 3 * 3600
    target_lufs: float = -16.0
    true_peak_db: float = -1.5
    speech_filter: bool = False
    opus_bitrate: str = "24k"
    mp3_bitrate: str = "48k"
    # Delivery renditions, in order of preference; the first is the item's primary rendition.
    renditions: tuple[Codec, ...] = ("opus", "mp3")

    def __post_init__(self) -> None:
        if self.max_bytes <= 0 or self.max_duration_s <= 0:
            raise ValueError("max_bytes and max_duration_s must be positive")
        if not -70.0 < self.target_lufs < 0.0 or self.true_peak_db > 0.0:
            raise ValueError("target_lufs must be in (-70, 0) and true_peak_db <= 0")
        for name in ("opus_bitrate", "mp3_bitrate"):
            value = getattr(self, name)
            if not value.endswith("k") or not value[:-1].isdigit():
                raise ValueError(f"{name} must look like '24k', got {value!r}")
        if not self.renditions or len(set(self.renditions)) != len(self.renditions):
            raise ValueError("renditions must name each codec at most once, and at least one")
        if any(codec not in CODECS for codec in self.renditions):
            raise ValueError(f"renditions must be among {', '.join(CODECS)}")

    def bitrate(self, codec: Codec) -> str:
        return self.opus_bitrate if codec == "opus" else self.mp3_bitrate


@dataclass(frozen=True)
class RenditionFile:
    """One stored delivery file of an item."""

    codec: Codec
    sha256: str
    path: Path
    size_bytes: int
    bitrate: str


@dataclass(frozen=True)
class IngestResult:
    """Stored renditions. ``sha256``/``path``/``size_bytes``/``codec`` are the primary one's.

    ``source_sha256`` identifies the uploaded bytes (for dedup).
    """

    sha256: str
    source_sha256: str
    path: Path
    size_bytes: int
    duration_ms: int
    loudness_in_lufs: float
    loudness_out_lufs: float
    true_peak_out_db: float | None
    codec: str = "opus"
    renditions: tuple[RenditionFile, ...] = field(default=())
