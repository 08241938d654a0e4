"""Speech-like test audio made by ffmpeg's lavfi sources: no network, no recordings in git.

A voiced buzz (a few harmonics of a gliding fundamental) shaped into syllables by a raised-sine
envelope, with a pause every couple of seconds and a little pink room noise underneath. Loudness
statistics (LRA, gating, peaks) then behave like speech rather than like a steady tone.

pydub is not used: it shells out synchronously and warns on import when ffmpeg is not on PATH.
"""

from __future__ import annotations

import random
from pathlib import Path

import ffmpeg

from ._errors import MediaError
from ._ffmpeg import command, ffmpeg_executable, run_ffmpeg

_RATE = 22_050  # plenty for a test voice; aevalsrc costs grow with the sample rate


def _voice_expr(rng: random.Random) -> str:
    f0, rate = rng.uniform(110, 210), rng.uniform(0.5, 1.2)
    # Phase of a fundamental gliding +-18 % around f0 (integrated, so it stays bounded).
    phase = f"(2*PI*{f0:.1f}*t-{f0 * 0.18 / rate:.2f}*cos(2*PI*{rate:.2f}*t))"
    syllables = rng.uniform(3.2, 4.8)
    period, pause = rng.uniform(2.3, 3.4), rng.uniform(0.45, 0.8)
    envelope = f"pow(max(0,sin(2*PI*{syllables:.2f}*t)),2)*gt(mod(t,{period:.2f}),{pause:.2f})"
    harmonics = "+".join(
        f"{amp}*sin({k}*{phase})" for k, amp in ((1, 1.0), (2, 0.5), (3, 0.3), (4, 0.2))
    )
    return f"0.25*{envelope}*({harmonics})"


async def synthesize_programme(
    path: Path, seconds: float, seed: int = 0, ffmpeg_exe: str | None = None
) -> None:
    """Write ``seconds`` of speech-like mono 16-bit WAV to ``path`` (deterministic per seed)."""
    if seconds <= 0:
        raise ValueError("seconds must be positive")
    rng = random.Random(seed)
    exe = ffmpeg_exe or ffmpeg_executable()
    voice = ffmpeg.input(
        f"aevalsrc=exprs='{_voice_expr(rng)}':s={_RATE}:d={seconds:.3f}", f="lavfi"
    )
    noise = ffmpeg.input(
        f"anoisesrc=d={seconds:.3f}:c=pink:a=0.02:r={_RATE}:seed={rng.randrange(1 << 31)}",
        f="lavfi",
    )
    mixed = ffmpeg.filter([voice, noise], "amix", inputs=2, normalize=0)
    output = ffmpeg.output(mixed, str(path), acodec="pcm_s16le", ac=1, f="wav")
    run = await run_ffmpeg(command(exe, output, "-y"))
    if run.returncode != 0:
        raise MediaError(f"synthesis failed: {' | '.join(run.tail[-3:] or run.head[-3:])}")
