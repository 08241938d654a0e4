"""Speech-like benchmark material made with pydub: no ffmpeg, no recordings, deterministic.

A bank of voiced syllables (a few harmonics of a random fundamental, faded in and out) is
strung into phrases with short gaps between syllables and longer pauses between phrases, each
phrase at its own level, over a quiet noise bed. Loudness statistics (gating, range, peaks) then
behave like speech, and the codecs see speech-like spectra and pauses.

pydub is synchronous (and shells out to ffmpeg for anything but WAV), so callers on an event
loop run ``write_speech`` in a thread. Its import-time warning about a missing ffmpeg on PATH is
answered by pointing it at loaxa's ffmpeg; only WAV export is used, which needs no ffmpeg.
"""

from __future__ import annotations

import random
import warnings
from pathlib import Path
from typing import Any

from station.media import ffmpeg_executable

RATE = 22_050
_BANK_SIZE = 48


def _pydub() -> tuple[Any, Any]:
    with warnings.catch_warnings():
        # pydub looks for ffmpeg on PATH at import; loaxa's ffmpeg is set explicitly below.
        warnings.filterwarnings("ignore", message="Couldn't find ffmpeg", category=RuntimeWarning)
        warnings.filterwarnings("ignore", message=".*audioop", category=DeprecationWarning)
        from pydub import AudioSegment, generators
    AudioSegment.converter = ffmpeg_executable()
    return AudioSegment, generators


def _syllable(rng: random.Random, audio_segment: Any, generators: Any) -> Any:
    f0 = rng.uniform(110, 210)
    length_ms = rng.uniform(120, 260)
    voice = generators.Sine(f0, sample_rate=RATE).to_audio_segment(length_ms, volume=-15.0)
    for k, level in ((2, -21.0), (3, -25.0), (4, -29.0)):
        harmonic = generators.Sine(f0 * k, sample_rate=RATE).to_audio_segment(
            length_ms, volume=level
        )
        voice = voice.overlay(harmonic)
    return voice.fade_in(25).fade_out(45)


def speech(seconds: float, seed: int = 0) -> Any:
    """``seconds`` of speech-like mono 16-bit audio at 22.05 kHz as a pydub AudioSegment."""
    audio_segment, generators = _pydub()
    rng = random.Random(seed)
    bank = [_syllable(rng, audio_segment, generators) for _ in range(_BANK_SIZE)]
    gap = {ms: audio_segment.silent(ms, frame_rate=RATE).raw_data for ms in range(30, 130, 10)}
    chunks: list[bytes] = []
    total = 0
    wanted = int(seconds * RATE) * 2  # bytes of 16-bit mono
    while total < wanted:
        level = rng.uniform(-4.0, 4.0)  # each phrase a little louder or softer
        for _ in range(rng.randint(6, 14)):
            syllable = rng.choice(bank).apply_gain(level).raw_data
            pause = gap[rng.randrange(30, 130, 10)]
            chunks += (syllable, pause)
            total += len(syllable) + len(pause)
        breath = audio_segment.silent(rng.uniform(350, 800), frame_rate=RATE).raw_data
        chunks.append(breath)
        total += len(breath)
    data = b"".join(chunks)[:wanted]
    voice = audio_segment(data=data, sample_width=2, frame_rate=RATE, channels=1)
    room = generators.WhiteNoise(sample_rate=RATE).to_audio_segment(5000, volume=-58.0)
    return voice.overlay(room, loop=True)


def write_speech(path: Path, seconds: float, seed: int = 0) -> Path:
    """Write ``seconds`` of speech-like audio to ``path`` as WAV (blocking; no ffmpeg used)."""
    speech(seconds, seed).export(str(path), format="wav")
    return path
