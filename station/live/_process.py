"""ffmpeg children of a mount: one encoder (PCM in, Opus/MP3 out), decoders (anything in, PCM out).

Every stream inside a mount is 48 kHz mono s16le PCM, so sources and fallbacks can be switched
without the encoder (and so the listeners' stream) ever restarting.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Sequence

log = logging.getLogger(__name__)

RATE = 48000
BYTES_PER_S = RATE * 2
PAGE_SAMPLES = RATE // 10  # Ogg pages of 100 ms (-page_duration 100000)
PCM_ARGS = ["-vn", "-ac", "1", "-ar", str(RATE), "-f", "s16le", "-flush_packets", "1", "pipe:1"]
# Loudness-safe for horns: cut rumble, then a brick-wall limiter at about -1.5 dBFS.
LIMITER = "highpass=f=120,alimiter=limit=0.84:level=disabled"


def encoder_args(codec: str, bitrate: str) -> list[str]:
    head = ["-fflags", "nobuffer", "-blocksize", "1920", "-f", "s16le", "-ar", str(RATE),
            "-ac", "1", "-i", "pipe:0", "-af", LIMITER, "-ac", "1"]  # fmt: skip
    if codec == "mp3":
        return [*head, "-c:a", "libmp3lame", "-b:a", bitrate, "-f", "mp3", "-flush_packets", "1",
                "pipe:1"]  # fmt: skip
    # constrained VBR: a predictable bitrate over 4G (unconstrained overshoots ~1.6x on tones)
    return [*head, "-c:a", "libopus", "-b:a", bitrate, "-vbr", "constrained",
            "-application", "voip", "-page_duration", "100000", "-f", "ogg",
            "-flush_packets", "1", "pipe:1"]  # fmt: skip


def decoder_args(input_args: Sequence[str]) -> list[str]:
    # small probe: a pushed stream starts airing after ~4 KB, not after ffmpeg's default 5 MB
    return ["-fflags", "nobuffer", "-probesize", "4096", "-analyzeduration", "500000",
            *input_args, *PCM_ARGS]  # fmt: skip


class Child:
    """One ffmpeg subprocess; its stderr is drained into a short tail for error messages."""

    def __init__(self, ffmpeg: str, args: Sequence[str], name: str, stdin: bool) -> None:
        self.ffmpeg = ffmpeg
        self.args = list(args)
        self.name = name
        self._stdin = stdin
        self.proc: asyncio.subprocess.Process | None = None
        self.tail: collections.deque[str] = collections.deque(maxlen=8)
        self._stderr_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            self.ffmpeg, "-hide_banner", "-nostats", "-loglevel", "error", *self.args,
            stdin=asyncio.subprocess.PIPE if self._stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        self._stderr_task = asyncio.create_task(self._drain(), name=f"{self.name}-stderr")

    async def _drain(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        async for line in self.proc.stderr:
            text = line.decode(errors="replace").rstrip()
            self.tail.append(text)
            log.debug("%s: %s", self.name, text)

    async def read(self, size: int = 8192) -> bytes:
        assert self.proc is not None and self.proc.stdout is not None
        return await self.proc.stdout.read(size)

    async def write(self, data: bytes) -> None:
        """Write to stdin; ``BrokenPipeError``/``ConnectionResetError`` when ffmpeg is gone."""
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(data)
        await self.proc.stdin.drain()

    def write_nowait(self, data: bytes, max_pending: int) -> bool:
        """Queue without waiting; False (nothing queued) when ffmpeg is gone or lags behind."""
        proc = self.proc
        if proc is None or proc.stdin is None or proc.stdin.is_closing():
            return False
        if proc.stdin.transport.get_write_buffer_size() > max_pending:
            return False
        proc.stdin.write(data)
        return True

    def close_stdin(self) -> None:
        if self.proc is not None and self.proc.stdin is not None:
            self.proc.stdin.close()

    async def stop(self, grace_s: float = 2.0) -> None:
        """SIGTERM, SIGKILL after ``grace_s``; bounded and cancel-safe (a cancelled stop still
        kills and reaps ffmpeg), so a mount that stops never leaves a child behind."""
        proc = self.proc
        if proc is None:
            return
        try:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
                # asyncio.timeout, not wait_for: on 3.11 wait_for may lose a cancellation of
                # this task that arrives as ffmpeg exits, and a cancelled loop then carries on
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(grace_s):
                        await proc.wait()
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
            if self._stderr_task is not None:
                # EOF once ffmpeg is gone; bounded anyway (a pipe held open elsewhere)
                await asyncio.wait({self._stderr_task}, timeout=grace_s)
                self._stderr_task.cancel()
                await asyncio.gather(self._stderr_task, return_exceptions=True)
            if proc.stdin is not None:
                proc.stdin.close()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    await proc.stdin.wait_closed()
