"""Media exceptions and the clock format used in their messages."""

from __future__ import annotations

import math
from typing import Literal

RejectReason = Literal["not_audio", "corrupt", "too_long", "too_large", "empty", "silent"]


class MediaError(Exception):
    """Processing failed for a reason that is not the upload's fault (ffmpeg missing, crashed)."""


class MediaRejected(Exception):
    """The upload is unusable; ``reason`` is machine-readable, ``str(exc)`` is for humans."""

    def __init__(self, reason: RejectReason, message: str) -> None:
        super().__init__(message)
        self.reason: RejectReason = reason
        self.message = message

    def __reduce__(self) -> tuple[type[MediaRejected], tuple[RejectReason, str]]:
        # Keeps the exception picklable despite the two-argument constructor.
        return (type(self), (self.reason, self.message))


def clock(seconds: float) -> str:
    """``mm:ss`` under an hour, ``hh:mm:ss`` from an hour on (seconds truncated)."""
    if not math.isfinite(seconds) or seconds < 0:
        seconds = 0.0
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{minutes:02d}:{secs:02d}"


def long_clock(seconds: float) -> str:
    """Always ``hh:mm:ss``: durations compared against a limit read better aligned."""
    whole = int(max(seconds, 0.0)) if math.isfinite(seconds) else 0
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}"
