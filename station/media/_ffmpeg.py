"""Locating ffmpeg and running it as an asyncio child process.

Command lines are built with ffmpeg-python (``Stream.compile``) and executed here, never with
``Stream.run`` (which blocks). The child is killed when the awaiting task is cancelled or a
progress callback raises, and its pipes are drained so no transport is left open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ffmpeg

from ._errors import MediaError

log = logging.getLogger(__name__)

# Progress as key=value blocks on stdout; human stats off so stderr holds only log lines.
_GLOBAL_ARGS = ("-hide_banner", "-nostdin", "-nostats", "-progress", "pipe:1")
_STATS_PERIOD = ("-stats_period", "0.25")

# Uploads are untrusted: only plain local files, and only demuxers for audio (or audio-bearing
# video) containers. This keeps playlist/concat demuxers (hls, concat, ...) from opening other
# files or URLs that an attacker names inside the upload.
_PROTOCOLS = "file"
_DEMUXERS = ",".join(
    (
        "aac", "ac3", "aiff", "amr", "amrnb", "amrwb", "ape", "asf", "au", "avi", "caf", "dts",
        "eac3", "flac", "flv", "matroska", "mov", "mp3", "mpc", "mpc8", "mpeg", "mpegts", "ogg",
        "tta", "w64", "wav", "wv",
    )
)  # fmt: skip

_LINE_LIMIT = 1 << 20  # ffmpeg can print long lines (metadata); the default 64 KiB is too tight
_HEAD_LINES = 1000  # the input dump (duration, streams) can carry long tags
_TAIL_LINES = 200  # summaries (loudnorm JSON, ebur128) and the error that stopped ffmpeg


def ffmpeg_executable(configured: str = "auto") -> str:
    """Resolve the ffmpeg binary: ``auto`` = imageio-ffmpeg's build, else PATH; or as configured.

    A value with a slash is a path used as is; a bare name is looked up on PATH.
    Raises MediaError when nothing usable is found.
    """
    if configured == "auto":
        return _bundled_ffmpeg() or _on_path("ffmpeg")
    if os.sep in configured or "/" in configured:
        path = Path(configured)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise MediaError(f"ffmpeg not found or not executable: {configured}")
        return configured
    return _on_path(configured)


def _bundled_ffmpeg() -> str | None:
    try:
        import imageio_ffmpeg

        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError, OSError) as exc:
        log.warning("imageio-ffmpeg has no usable ffmpeg (%s); trying PATH", exc)
        return None
    return str(exe)


def _on_path(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise MediaError(f"ffmpeg not found: {name!r} is not on PATH")
    return found


def open_source(path: Path) -> Any:
    """An ffmpeg-python input for an untrusted upload (restricted protocols and demuxers)."""
    return ffmpeg.input(
        f"file:{path.resolve()}", protocol_whitelist=_PROTOCOLS, format_whitelist=_DEMUXERS
    )


def command(exe: str, output: Any, *extra_global: str) -> list[str]:
    """Compile an ffmpeg-python output node; global options go first, where ffmpeg expects them."""
    argv = [str(arg) for arg in output.compile(cmd=exe)]
    return [argv[0], *_GLOBAL_ARGS, *_STATS_PERIOD, *extra_global, *argv[1:]]


@dataclass(frozen=True)
class FfmpegRun:
    """What a finished ffmpeg run reported: exit code, stderr head/tail, last progress time."""

    returncode: int
    head: tuple[str, ...]
    tail: tuple[str, ...]
    dropped: int
    out_time_s: float | None

    @property
    def lines(self) -> tuple[str, ...]:
        return self.head + self.tail


class _StderrLog:
    """Keeps the first and last lines only: headers come first, summaries and errors last."""

    def __init__(self) -> None:
        self.head: list[str] = []
        self.tail: deque[str] = deque(maxlen=_TAIL_LINES)
        self.dropped = 0

    def feed(self, line: str) -> None:
        if len(self.head) < _HEAD_LINES:
            self.head.append(line)
            return
        if len(self.tail) == self.tail.maxlen:
            self.dropped += 1
        self.tail.append(line)


class _ProgressLog:
    """Parses ``-progress`` blocks: ``out_time_us=...`` lines, each block ending ``progress=``.

    Only periodic blocks (``progress=continue``) go to the callback; the final position is
    kept in ``out_time_s``. A limit check in the callback can thus stop a long run early,
    while a run that finishes anyway is judged on its exact final numbers.
    """

    def __init__(self, on_time: Callable[[float], None] | None) -> None:
        self.on_time = on_time
        self.out_time_s: float | None = None

    def feed(self, line: str) -> None:
        key, _, value = line.partition("=")
        # out_time_ms is microseconds too (an old ffmpeg naming bug); out_time_us is the clear one.
        if key == "out_time_us" and value.lstrip("-").isdigit():
            self.out_time_s = max(int(value), 0) / 1_000_000
            return
        periodic = key == "progress" and value == "continue"
        if periodic and self.on_time is not None and self.out_time_s is not None:
            self.on_time(self.out_time_s)


async def _pump(stream: asyncio.StreamReader | None, sink: Callable[[str], None]) -> None:
    if stream is None:
        return
    async for raw in stream:
        sink(raw.decode("utf-8", "replace").rstrip("\r\n"))


async def run_ffmpeg(
    argv: Sequence[str], on_time: Callable[[float], None] | None = None
) -> FfmpegRun:
    """Run ffmpeg to completion; ``on_time`` gets the output position in seconds as it advances.

    An exception raised by ``on_time`` (e.g. a limit check) stops ffmpeg and propagates unchanged.
    """
    log.debug("ffmpeg: %s", " ".join(argv))
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=_LINE_LIMIT,
        )
    except OSError as exc:
        raise MediaError(f"cannot start ffmpeg ({argv[0]}): {exc}") from exc
    stderr, progress = _StderrLog(), _ProgressLog(on_time)
    err_task = asyncio.create_task(_pump(proc.stderr, stderr.feed))
    finished = False
    try:
        await _pump(proc.stdout, progress.feed)
        await err_task
        returncode = await proc.wait()
        finished = True
    finally:
        if not finished:
            await _abort(proc, err_task)
    return FfmpegRun(
        returncode, tuple(stderr.head), tuple(stderr.tail), stderr.dropped, progress.out_time_s
    )


async def _abort(proc: asyncio.subprocess.Process, err_task: asyncio.Task[None]) -> None:
    err_task.cancel()
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    # Draining both pipes to EOF lets asyncio close the transport (no ResourceWarning later).
    with contextlib.suppress(asyncio.CancelledError):
        await err_task
    await proc.communicate()
