"""Validation: decode the whole upload once and classify what went wrong, if anything.

The extension is never trusted: ffmpeg probes the content (restricted to audio demuxers) and
the first audio stream is decoded to the null muxer with ``-xerror``, so the first decode error
stops the run and the last progress time is where the file is broken.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import ffmpeg

from ._errors import MediaError, MediaRejected, clock, long_clock
from ._ffmpeg import FfmpegRun, command, open_source, run_ffmpeg
from ._models import MediaSettings

log = logging.getLogger(__name__)

_DURATION = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
_STREAM = re.compile(r"Stream #0:\d+.*?: (Audio|Video|Subtitle|Data|Attachment)")
_LEVEL_ERROR = ("[error]", "[fatal]")
# A file whose header promises more than it decodes was cut short (interrupted upload).
_TRUNCATION_SLACK_S = 1.0
_TRUNCATION_SLACK_RATIO = 0.02


@dataclass(frozen=True)
class DecodeReport:
    """What the validation decode learnt from ffmpeg's log."""

    opened: bool
    has_audio: bool
    declared_s: float | None  # container duration, None when absent or only estimated
    only_stream: bool  # one real stream (cover art ignored): declared duration is the audio's
    open_error: str | None  # first error before the input was opened (why probing failed)
    decode_error: str | None  # first error after that


def check_size(source: Path, settings: MediaSettings) -> int:
    """Reject empty and oversized files before spending any CPU on them."""
    size = source.stat().st_size
    if size == 0:
        raise MediaRejected("empty", "empty: the file has no content")
    if size > settings.max_bytes:
        raise MediaRejected(
            "too_large", f"too large: {_mb(size)} > {_mb(settings.max_bytes)} limit"
        )
    return size


def _mb(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"


async def decode_check(
    exe: str,
    source: Path,
    settings: MediaSettings,
    on_time: Callable[[float], None] | None = None,
) -> float:
    """Decode the first audio stream completely; return its duration in seconds or reject."""
    limit = float(settings.max_duration_s)

    def watch(seconds: float) -> None:
        # Stop early rather than decode a day of audio only to refuse it.
        if seconds > limit:
            raise MediaRejected("too_long", f"too long: over {long_clock(limit)} limit")
        if on_time is not None:
            on_time(seconds)

    run = await run_ffmpeg(decode_argv(exe, source), watch)
    return classify(run, limit)


def decode_argv(exe: str, source: Path) -> list[str]:
    """The validation decode: first audio stream to the null muxer, stop at the first error."""
    output = ffmpeg.output(open_source(source)["a:0"], "-", f="null")
    return command(exe, output, "-loglevel", "level+info", "-xerror")


def classify(run: FfmpegRun, limit_s: float) -> float:
    """Turn a finished validation run into a duration or a MediaRejected."""
    report = parse_log(run.lines)
    _check_readable(report, run)
    decoded = run.out_time_s or 0.0
    _check_decoded(report, run, decoded)
    _check_truncated(report, decoded)
    if decoded > limit_s:
        raise MediaRejected(
            "too_long", f"too long: {long_clock(decoded)} > {long_clock(limit_s)} limit"
        )
    return decoded


def _check_readable(report: DecodeReport, run: FfmpegRun) -> None:
    """Could ffmpeg open the file as a container with an audio stream it can decode?"""
    if not report.opened and report.open_error is None:
        # A bad upload always makes ffmpeg say why; silence means ffmpeg itself is wrong.
        raise MediaError(f"ffmpeg gave no usable output (exit {run.returncode}): {run.lines[-3:]}")
    if not report.opened:
        detail = f" ({_short(report.open_error)})" if report.open_error else ""
        raise MediaRejected("not_audio", f"not audio: unrecognised file format{detail}")
    if not report.has_audio:
        raise MediaRejected("not_audio", "not audio: no audio stream found")
    if report.decode_error is not None and _no_decoder(report.decode_error):
        raise MediaRejected("not_audio", "not audio: unsupported audio codec")


def _check_decoded(report: DecodeReport, run: FfmpegRun, decoded: float) -> None:
    if run.returncode < 0:
        raise MediaError(f"ffmpeg died with signal {-run.returncode} while decoding")
    if run.returncode != 0 or report.decode_error is not None:
        log.info("decode failed at %.2f s: %s", decoded, report.decode_error)
        raise MediaRejected("corrupt", f"corrupt at {clock(decoded)}")
    if decoded <= 0.0:
        raise MediaRejected("empty", "empty: the file contains no audio samples")


def _check_truncated(report: DecodeReport, decoded: float) -> None:
    declared = report.declared_s
    if declared is None or not report.only_stream:
        return
    if declared - decoded > max(_TRUNCATION_SLACK_S, declared * _TRUNCATION_SLACK_RATIO):
        raise MediaRejected(
            "corrupt",
            f"corrupt at {clock(decoded)}: file ends early "
            f"(header says {clock(declared)}; truncated upload?)",
        )


def parse_log(lines: Sequence[str]) -> DecodeReport:
    """Read the ``-loglevel level+info`` output of the validation run."""
    scan = _LogScan()
    for line in lines:
        scan.feed(line)
    return scan.report()


class _LogScan:
    """One pass over ffmpeg's log: the input dump (duration, streams) and the first errors."""

    def __init__(self) -> None:
        self.opened = self.in_input = self.estimated = self.no_audio = False
        self.declared: float | None = None
        self.streams = 0
        self.errors: dict[bool, str] = {}  # first error before / after the input opened

    def feed(self, line: str) -> None:
        if "Input #0" in line:
            self.opened = self.in_input = True
        elif "Stream mapping:" in line or "Output #0" in line:
            self.in_input = False
        self.estimated = self.estimated or "Estimating duration from bitrate" in line
        self.no_audio = self.no_audio or "matches no streams" in line
        if self.in_input:
            self._input_dump(line)
        if any(tag in line for tag in _LEVEL_ERROR):
            self.errors.setdefault(self.opened, _message(line))

    def _input_dump(self, line: str) -> None:
        if self.declared is None and (match := _DURATION.search(line)):
            self.declared = _seconds(match)
        if _STREAM.search(line) and "(attached pic)" not in line:
            self.streams += 1

    def report(self) -> DecodeReport:
        return DecodeReport(
            opened=self.opened,
            # Judged by ffmpeg's own complaint, not by finding the stream line: a huge tag
            # dump (lyrics) can push stream lines out of the kept log.
            has_audio=self.opened and not self.no_audio,
            declared_s=None if self.estimated else self.declared,
            only_stream=self.streams == 1,
            open_error=self.errors.get(False),
            decode_error=self.errors.get(True),
        )


def _seconds(match: re.Match[str]) -> float:
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def _no_decoder(message: str) -> bool:
    lowered = message.lower()
    return "no decoder" in lowered or ("decoder" in lowered and "not found" in lowered)


def _short(detail: str) -> str:
    # "Format not on whitelist '<30 names>'" is noise to a user: the container is not supported.
    if "whitelist" in detail:
        return "unsupported container"
    return detail[:120]


def _message(line: str) -> str:
    """The text after the ``[level]`` tag, without ffmpeg's ``[ctx @ 0x...]`` prefixes."""
    for tag in _LEVEL_ERROR:
        if tag in line:
            return line.split(tag, 1)[1].strip()
    return line.strip()
