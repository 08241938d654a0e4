"""Loudness numbers: parsing ffmpeg's loudnorm/ebur128 reports and planning the gain.

Pure functions only; the ffmpeg passes run in ``_render`` and the filter chains live in
``_filters``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ._errors import MediaError
from ._models import MediaSettings

SILENCE_LUFS = -70.0  # EBU R128 absolute gate: at or below this nothing is audible
# Opus at 24k reconstructs peaks ~0.9 dB above the PCM it was given (measured on test speech),
# so the PCM side aims that much lower for the rendition to meet the true-peak target.
CODEC_HEADROOM_DB = 1.0
# The limiter ceiling sits this far below the PCM peak target: room for loudnorm's final
# linear nudge, which may only raise the level by what the true peak can still take.
NUDGE_ROOM_DB = 0.5
# Where the gain search aims: a little above target, since overshooting is free (the nudge
# then turns the level down, which never threatens the peak) and undershooting is not.
_AIM_ABOVE_DB = 0.2
_MAX_EXTRA_GAIN_DB = 12.0  # beyond this the limiter is squashing the programme: stop pushing
_SUMMARY_LINE = re.compile(r"^\s*(I|Threshold|LRA|Peak):\s*(-?(?:inf|nan|[\d.]+))\s*(LUFS|LU|dBFS)")


@dataclass(frozen=True)
class Measurement:
    """Input-side loudness of a chain: integrated, true peak, range, gating threshold."""

    i: float
    tp: float
    lra: float
    thresh: float
    normalization: str | None = None  # what loudnorm did, when the report came from loudnorm

    @property
    def silent(self) -> bool:
        return not math.isfinite(self.i) or self.i <= SILENCE_LUFS


def parse_loudnorm(lines: Sequence[str]) -> Measurement:
    """Extract the JSON block loudnorm prints at the end of its run."""
    start = _last_index(lines, lambda line: line.strip() == "{")
    end = _last_index(lines, lambda line: line.strip() == "}")
    if start is None or end is None or end < start:
        raise MediaError("loudnorm printed no measurement")
    data = json.loads("\n".join(lines[start : end + 1]))
    return Measurement(
        i=float(data["input_i"]),  # float() accepts loudnorm's "-inf" for silence
        tp=float(data["input_tp"]),
        lra=float(data["input_lra"]),
        thresh=float(data["input_thresh"]),
        normalization=data.get("normalization_type"),
    )


def parse_ebur128(lines: Sequence[str]) -> Measurement:
    """Read the ebur128 summary (after the last ``Summary:`` line).

    The first ``Threshold:`` is the integrated-loudness gate, the second the LRA one.
    """
    start = _last_index(lines, lambda line: "Summary:" in line)
    if start is None:
        raise MediaError("ebur128 printed no summary")
    found: dict[str, float] = {}
    for line in lines[start:]:
        if match := _SUMMARY_LINE.match(line):
            found.setdefault(match.group(1), float(match.group(2)))
    if "I" not in found:
        raise MediaError("ebur128 summary has no integrated loudness")
    return Measurement(
        i=found["I"],
        tp=found.get("Peak", -math.inf),
        lra=found.get("LRA", 0.0),
        thresh=found.get("Threshold", SILENCE_LUFS),
    )


def _last_index(lines: Sequence[str], pred: Callable[[str], bool]) -> int | None:
    for index in range(len(lines) - 1, -1, -1):
        if pred(lines[index]):
            return index
    return None


def pcm_true_peak(settings: MediaSettings) -> float:
    """The true-peak target before encoding, leaving headroom for the codec's overshoot."""
    return settings.true_peak_db - CODEC_HEADROOM_DB


def limiter_ceiling(settings: MediaSettings) -> float:
    return pcm_true_peak(settings) - NUDGE_ROOM_DB


def overshoot(m: Measurement, settings: MediaSettings) -> float:
    """dB by which a plain gain to the target would push the true peak over the PCM limit.

    Positive means loudnorm's linear mode would silently fall back to dynamic mode and land
    about 1 LU low (see FINDINGS), so a limiter has to make room first.
    """
    return m.tp + (settings.target_lufs - m.i) - pcm_true_peak(settings)


def next_gain(tried: Sequence[tuple[float, float]], settings: MediaSettings) -> float:
    """The next pre-limiter gain to try, from ``(gain_db, measured_lufs)`` pairs so far.

    Limiting eats part of every extra dB, so loudness grows slower than gain: a secant step on
    the last two tries (slope clamped to a sane range) converges in two or three passes.
    """
    aim = settings.target_lufs + _AIM_ABOVE_DB
    gain, lufs = tried[-1]
    slope = 1.0
    if len(tried) >= 2:
        prev_gain, prev_lufs = tried[-2]
        if gain != prev_gain:
            slope = min(max((lufs - prev_lufs) / (gain - prev_gain), 0.15), 1.0)
    first_gain = tried[0][0]
    return min(gain + (aim - lufs) / slope, first_gain + _MAX_EXTRA_GAIN_DB)
