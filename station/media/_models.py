"""Value types of the media pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class MediaSettings:
    """Limits and targets for one ingest; the station builds it from its config."""

    max_bytes: int = 200 * 1024 * 1024
    max_duration_s: float = 3 * 3600
    target_lufs: float = -16.0
    true_peak_db: float = -1.5
    speech_filter: bool = False
    opus_bitrate: str = "24k"

    def __post_init__(self) -> None:
        if self.max_bytes <= 0 or self.max_duration_s <= 0:
            raise ValueError("max_bytes and max_duration_s must be positive")
        if not -70.0 < self.target_lufs < 0.0 or self.true_peak_db > 0.0:
            raise ValueError("target_lufs must be in (-70, 0) and true_peak_db <= 0")
        if not self.opus_bitrate.rstrip("k").isdigit():
            raise ValueError(f"opus_bitrate must look like '24k', got {self.opus_bitrate!r}")


@dataclass(frozen=True)
class IngestResult:
    """A stored rendition. ``source_sha256`` identifies the uploaded bytes (for dedup)."""

    sha256: str
    source_sha256: str
    path: Path
    size_bytes: int
    duration_ms: int
    loudness_in_lufs: float
    loudness_out_lufs: float
    true_peak_out_db: float | None
    codec: str = "opus"
