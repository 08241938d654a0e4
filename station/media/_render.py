"""The loudness passes and the Opus encode, each one ffmpeg child process.

1. loudnorm measures the prepared (mono, 48 kHz, optionally speech-filtered) source.
2. If a plain gain to the target would break the true-peak limit, gain + limiter is searched
   (ebur128 passes, ~4x cheaper than loudnorm's 192 kHz analysis) until the limited signal sits
   at the target with its peaks under the ceiling.
3. loudnorm in linear mode applies the last measurement (a constant gain, usually a tiny nudge
   after step 2) and the result is encoded to Opus.
4. ebur128 measures the rendition itself: that is the loudness we report.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ffmpeg

from . import _filters as fl
from . import _loudness as ln
from ._errors import MediaError, MediaRejected
from ._ffmpeg import FfmpegRun, command, open_source, run_ffmpeg
from ._models import MediaSettings

log = logging.getLogger(__name__)

OnTime = Callable[[float], None]
_GAIN_SEARCH_PASSES = 4


@dataclass(frozen=True)
class Rendition:
    path: Path
    loudness_in: float
    loudness_out: float
    true_peak_out: float | None
    duration_s: float


@dataclass(frozen=True)
class _Limiter:
    gain_db: float
    ceiling_db: float


@dataclass(frozen=True)
class _Plan:
    """What the encode pass applies: an optional gain+limiter, then loudnorm on ``measured``."""

    measured: ln.Measurement
    limiter: _Limiter | None = None


async def render(
    exe: str,
    source: Path,
    out: Path,
    settings: MediaSettings,
    phase: Callable[[str], OnTime],
) -> Rendition:
    """Measure, plan, encode to ``out`` and verify. ``phase(name)`` gives a progress callback."""
    measured = await _loudnorm_pass(exe, source, settings, phase("measure"))
    if measured.silent:
        raise MediaRejected("silent", "silent: no audible sound in the recording")
    plan = await _plan(exe, source, settings, measured, phase("limit"))
    await _encode(exe, source, out, settings, plan, phase("encode"))
    result, duration = await _verify(exe, out, phase("verify"))
    if abs(result.i - settings.target_lufs) > 1.0:
        log.warning(
            "rendition of %s measures %.1f LUFS, target %.1f",
            source.name, result.i, settings.target_lufs,
        )  # fmt: skip
    peak = result.tp if math.isfinite(result.tp) else None  # -inf: nothing to report
    return Rendition(out, measured.i, result.i, peak, duration)


def _chain(source: Path, settings: MediaSettings, limiter: _Limiter | None) -> Any:
    stream = fl.prepare(open_source(source)["a:0"], settings)
    if limiter is None:
        return stream
    return fl.limit(stream, limiter.gain_db, limiter.ceiling_db)


async def _loudnorm_pass(
    exe: str, source: Path, settings: MediaSettings, on_time: OnTime
) -> ln.Measurement:
    stream = fl.loudnorm_measure(_chain(source, settings, None), settings)
    run = await _checked(command(exe, ffmpeg.output(stream, "-", f="null")), on_time, "measure")
    return ln.parse_loudnorm(run.lines)


async def _limited_pass(
    exe: str, source: Path, settings: MediaSettings, limiter: _Limiter, on_time: OnTime
) -> ln.Measurement:
    stream = fl.ebur128(_chain(source, settings, limiter))
    run = await _checked(command(exe, ffmpeg.output(stream, "-", f="null")), on_time, "limiter")
    return ln.parse_ebur128(run.lines)


async def _plan(
    exe: str, source: Path, settings: MediaSettings, measured: ln.Measurement, on_time: OnTime
) -> _Plan:
    """Plain linear gain when the peaks allow it; otherwise search gain + limiter."""
    if ln.overshoot(measured, settings) <= 0.0:
        return _Plan(measured)
    ceiling = ln.limiter_ceiling(settings)
    tried: list[tuple[float, float]] = []
    gain = settings.target_lufs - measured.i
    plan = _Plan(measured)
    for _ in range(_GAIN_SEARCH_PASSES):
        limiter = _Limiter(gain, ceiling)
        plan = _Plan(await _limited_pass(exe, source, settings, limiter, on_time), limiter)
        if ln.overshoot(plan.measured, settings) <= 0.0:
            return plan
        tried.append((gain, plan.measured.i))
        gain = ln.next_gain(tried, settings)
    log.warning("%s: limiter could not reach the target; loudnorm will go dynamic", source.name)
    return plan


async def _encode(
    exe: str,
    source: Path,
    out: Path,
    settings: MediaSettings,
    plan: _Plan,
    on_time: OnTime,
) -> None:
    stream = fl.loudnorm_linear(_chain(source, settings, plan.limiter), plan.measured, settings)
    output = ffmpeg.output(
        stream,
        str(out),
        f="ogg",
        acodec="libopus",
        ac=1,
        ar=fl.SAMPLE_RATE,
        map_metadata=-1,  # uploader's tags (names, phone models) stay out of the rendition
        fflags="+bitexact",  # fixed Ogg serial: same input -> same bytes -> same sha256
        **{"b:a": settings.opus_bitrate, "flags:a": "+bitexact"},
    )
    run = await _checked(command(exe, output, "-y"), on_time, "encode")
    applied = ln.parse_loudnorm(run.lines)
    if applied.normalization != "linear":
        log.warning("loudnorm used %s mode for %s", applied.normalization, source.name)


async def _verify(exe: str, rendition: Path, on_time: OnTime) -> tuple[ln.Measurement, float]:
    stream = fl.ebur128(ffmpeg.input(f"file:{rendition}")["a:0"])
    run = await _checked(command(exe, ffmpeg.output(stream, "-", f="null")), on_time, "verify")
    if not run.out_time_s:
        raise MediaError("the rendition decodes to nothing")
    return ln.parse_ebur128(run.lines), run.out_time_s


async def _checked(argv: list[str], on_time: OnTime, what: str) -> FfmpegRun:
    """Run a pass on an already validated file: a failure now is ours, not the upload's."""
    run = await run_ffmpeg(argv, on_time)
    if run.returncode != 0:
        tail = " | ".join(run.tail[-3:] or run.head[-3:])
        raise MediaError(f"ffmpeg {what} pass failed (exit {run.returncode}): {tail}")
    if run.out_time_s is not None:
        on_time(run.out_time_s)  # short files finish before ffmpeg's first periodic report
    return run
