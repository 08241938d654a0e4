"""ffmpeg-python filter chains for the loudness passes and the encode."""

from __future__ import annotations

from typing import Any

from ._loudness import Measurement, pcm_true_peak
from ._models import MediaSettings

SAMPLE_RATE = 48_000  # Opus's native rate; everything is resampled to it once, up front
_LRA = 11.0


def prepare(stream: Any, settings: MediaSettings) -> Any:
    """Mono at 48 kHz, optionally speech-shaped. Every pass starts here, so they all agree."""
    stream = stream.filter("aformat", channel_layouts="mono").filter("aresample", SAMPLE_RATE)
    if settings.speech_filter:
        # Rumble and handling noise off; a gentle 3:1 compressor evens out distance to the mic.
        stream = stream.filter("highpass", f=150).filter(
            "acompressor", threshold=0.125, ratio=3, attack=20, release=250
        )
    return stream


def gain(stream: Any, gain_db: float) -> Any:
    """One constant gain: what loudnorm's linear mode does, without its 192 kHz analysis."""
    return stream.filter("volume", volume=f"{gain_db:.2f}dB")


def loudnorm_measure(stream: Any, settings: MediaSettings) -> Any:
    return stream.filter(
        "loudnorm",
        I=settings.target_lufs,
        TP=settings.true_peak_db,
        LRA=_LRA,
        print_format="json",
    )


def ebur128(stream: Any) -> Any:
    # framelog=verbose keeps the per-100 ms lines out of an info-level log; the summary stays.
    return stream.filter("ebur128", peak="true", framelog="verbose")


def limit(stream: Any, gain_db: float, ceiling_db: float) -> Any:
    """Gain first, then a look-ahead limiter, so the ceiling is in output terms."""
    return stream.filter("volume", volume=f"{gain_db:.2f}dB").filter(
        "alimiter",
        limit=min(max(10 ** (ceiling_db / 20), 0.0625), 1.0),
        attack=5,
        release=50,
        level="false",  # the default auto-levels to 0 dBFS, which would undo the ceiling
        latency="true",  # keep the audio aligned with the original timing
    )


def loudnorm_linear(stream: Any, m: Measurement, settings: MediaSettings) -> Any:
    """loudnorm in linear mode: one constant gain to the target, no dynamic processing.

    Linear mode also insists on 0 < measured LRA <= target LRA. LRA plays no part in a
    constant gain, so it is clamped into range rather than letting loudnorm go dynamic.
    """
    return stream.filter(
        "loudnorm",
        I=settings.target_lufs,
        TP=pcm_true_peak(settings),
        LRA=_LRA,
        measured_I=f"{min(m.i, -0.01):.2f}",
        measured_TP=f"{m.tp:.2f}",
        measured_LRA=f"{min(max(m.lra, 0.1), _LRA):.2f}",
        measured_thresh=f"{m.thresh:.2f}",
        linear="true",
        print_format="json",
    ).filter("aresample", SAMPLE_RATE)  # loudnorm works (and outputs) at 192 kHz
