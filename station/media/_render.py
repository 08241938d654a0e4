"""The loudness passes and the encode of every delivery rendition, each one ffmpeg child process.

1. ebur128 measures the prepared (mono, 48 kHz, optionally speech-filtered) source: integrated
   loudness and true peak. (loudnorm's first pass measures the same numbers about 5x slower,
   because it resamples to 192 kHz.)
2. If a plain gain to the target would break the true-peak limit, gain + limiter is searched
   (more ebur128 passes) until the limited signal sits at the target with its peaks under the
   ceiling.
3. One ffmpeg process applies the constant gain (after the limiter, if any) and writes every
   rendition (Opus, MP3) from the same normalised audio, each encoder on its own thread.
4. ebur128 measures the primary rendition itself: that is the loudness we report.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import ffmpeg

from . import _filters as fl
from . import _loudness as ln
from ._errors import MediaError, MediaRejected
from ._ffmpeg import FfmpegRun, command, open_source, run_ffmpeg
from ._models import Codec, MediaSettings

log = logging.getLogger(__name__)

OnTime = Callable[[float], None]
_GAIN_SEARCH_PASSES = 4


@dataclass(frozen=True)
class Rendition:
    """The outcome of one render: the files by codec and the loudness around them."""

    paths: dict[Codec, Path]
    loudness_in: float
    loudness_out: float
    true_peak_out: float | None
    duration_s: float

    @property
    def path(self) -> Path:
        return next(iter(self.paths.values()))


@dataclass(frozen=True)
class _Limiter:
    gain_db: float
    ceiling_db: float


@dataclass(frozen=True)
class Plan:
    """What the encode pass applies: an optional gain+limiter, then a constant gain.

    ``measured`` is the loudness of the chain up to (and including) the limiter.
    """

    measured: ln.Measurement
    limiter: _Limiter | None = None

    def final_gain_db(self, settings: MediaSettings) -> float:
        return settings.target_lufs - self.measured.i


async def render(
    exe: str,
    source: Path,
    outputs: dict[Codec, Path],
    settings: MediaSettings,
    phase: Callable[[str], OnTime],
) -> Rendition:
    """Measure, plan, encode every output and verify the first. ``phase(name)`` gives progress."""
    measured = await measure(exe, source, settings, phase("measure"))
    if measured.silent:
        raise MediaRejected("silent", "silent: no audible sound in the recording")
    plan = await make_plan(exe, source, settings, measured, phase("limit"))
    await run_encode(encode_argv(exe, source, outputs, settings, plan), phase("encode"))
    primary = next(iter(outputs.values()))
    result, duration = await _verify(exe, primary, phase("verify"))
    if abs(result.i - settings.target_lufs) > 1.0:
        log.warning(
            "rendition of %s measures %.1f LUFS, target %.1f",
            source.name, result.i, settings.target_lufs,
        )  # fmt: skip
    peak = result.tp if math.isfinite(result.tp) else None  # -inf: nothing to report
    return Rendition(dict(outputs), measured.i, result.i, peak, duration)


def _chain(source: Path, settings: MediaSettings, limiter: _Limiter | None) -> Any:
    stream = fl.prepare(open_source(source)["a:0"], settings)
    if limiter is None:
        return stream
    return fl.limit(stream, limiter.gain_db, limiter.ceiling_db)


def measure_argv(exe: str, source: Path, settings: MediaSettings) -> list[str]:
    stream = fl.ebur128(_chain(source, settings, None))
    return command(exe, ffmpeg.output(stream, "-", f="null"))


async def measure(
    exe: str, source: Path, settings: MediaSettings, on_time: OnTime
) -> ln.Measurement:
    run = await _checked(measure_argv(exe, source, settings), on_time, "measure")
    return ln.parse_ebur128(run.lines)


async def _limited_pass(
    exe: str, source: Path, settings: MediaSettings, limiter: _Limiter, on_time: OnTime
) -> ln.Measurement:
    stream = fl.ebur128(_chain(source, settings, limiter))
    run = await _checked(command(exe, ffmpeg.output(stream, "-", f="null")), on_time, "limiter")
    return ln.parse_ebur128(run.lines)


async def make_plan(
    exe: str, source: Path, settings: MediaSettings, measured: ln.Measurement, on_time: OnTime
) -> Plan:
    """Plain gain when the peaks allow it; otherwise search gain + limiter."""
    if ln.overshoot(measured, settings) <= 0.0:
        return Plan(measured)
    ceiling = ln.limiter_ceiling(settings)
    tried: list[tuple[float, float]] = []
    gain = settings.target_lufs - measured.i
    plan = Plan(measured)
    for _ in range(_GAIN_SEARCH_PASSES):
        limiter = _Limiter(gain, ceiling)
        plan = Plan(await _limited_pass(exe, source, settings, limiter, on_time), limiter)
        if ln.overshoot(plan.measured, settings) <= 0.0:
            return plan
        tried.append((gain, plan.measured.i))
        gain = ln.next_gain(tried, settings)
    # The limiter could not make room: apply a gain that keeps the peak legal (a little quiet).
    log.warning("%s: limiter could not reach the target; the item will be quieter", source.name)
    excess = ln.overshoot(plan.measured, settings)
    return Plan(replace(plan.measured, i=plan.measured.i + excess), plan.limiter)


def _output(stream: Any, path: Path, codec: Codec, settings: MediaSettings) -> Any:
    common: dict[str, Any] = {
        "ac": 1,
        "ar": fl.SAMPLE_RATE,
        "map_metadata": -1,  # uploader's tags (names, phone models) stay out of the rendition
        "fflags": "+bitexact",  # fixed Ogg serial, no encoder tag: same input -> same sha256
        "b:a": settings.bitrate(codec),
        "flags:a": "+bitexact",
    }
    if codec == "opus":
        return ffmpeg.output(stream, str(path), f="ogg", acodec="libopus", **common)
    return ffmpeg.output(stream, str(path), f="mp3", acodec="libmp3lame", **common)


def encode_argv(
    exe: str, source: Path, outputs: dict[Codec, Path], settings: MediaSettings, plan: Plan
) -> list[str]:
    """One ffmpeg process: the normalised audio split to one output per codec."""
    stream = fl.gain(_chain(source, settings, plan.limiter), plan.final_gain_db(settings))
    items = list(outputs.items())
    if len(items) == 1:
        codec, path = items[0]
        return command(exe, _output(stream, path, codec, settings), "-y")
    split = stream.asplit()
    nodes = [_output(split[i], path, codec, settings) for i, (codec, path) in enumerate(items)]
    return command(exe, ffmpeg.merge_outputs(*nodes), "-y")


async def run_encode(argv: Sequence[str], on_time: OnTime) -> None:
    await _checked(list(argv), on_time, "encode")


def verify_argv(exe: str, rendition: Path) -> list[str]:
    stream = fl.ebur128(ffmpeg.input(f"file:{rendition}")["a:0"])
    return command(exe, ffmpeg.output(stream, "-", f="null"))


async def _verify(exe: str, rendition: Path, on_time: OnTime) -> tuple[ln.Measurement, float]:
    run = await _checked(verify_argv(exe, rendition), on_time, "verify")
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
