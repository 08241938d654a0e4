"""Ingest benchmark: speech-like audio validated, normalised and encoded to Opus + MP3.

    python bench/ingest.py [--minutes 60] [--no-naive] [--workdir DIR]

Three runs on the same file (speech-like WAV made by pydub, 22.05 kHz mono), in this order:
- **bare**: the very ffmpeg command lines the pipeline runs (validation decode, ebur128
  measurement, any limiter passes, the one encode writing both renditions, the verify
  decode), one after the other, with no progress parsing and no Python around them: the
  peer for the overhead ratio (goal <= 1.10x);
- **pipeline**: ``MediaWorker.ingest`` (sha256 of the upload, every pass as an asyncio child
  with progress, both renditions stored atomically): goal >= 30x realtime on 2 cores;
- **naive**: loudnorm measurement + loudnorm linear with both outputs (what a first
  two-pass pipeline does; ~26x per FINDINGS), for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# bench/scheduler.py would shadow the scheduler package: keep this folder off the import path.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import ffmpeg  # noqa: E402

from station.media import (  # noqa: E402
    MediaSettings,
    MediaStore,
    MediaWorker,
    _render,
    ffmpeg_executable,
)
from station.media import _filters as fl  # noqa: E402
from station.media._ffmpeg import command, open_source  # noqa: E402
from station.media._validate import decode_argv  # noqa: E402


def _load_speech() -> Any:
    spec = importlib.util.spec_from_file_location("bench_speech", _HERE / "_speech.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _bare(argv: Sequence[str]) -> list[str]:
    """Drop the progress reporting the pipeline adds; keep everything else."""
    out: list[str] = []
    skip = 0
    for arg in argv:
        if skip:
            skip -= 1
            continue
        if arg in ("-progress", "-stats_period"):
            skip = 1
            continue
        out.append(arg)
    return out


async def _run(argv: Sequence[str]) -> None:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    if await proc.wait() != 0:
        raise RuntimeError(f"ffmpeg failed: {' '.join(argv)[:300]}")


@dataclass(frozen=True)
class Timing:
    wall_s: float
    cpu_s: float  # this process + its children (robust against other load on the machine)


def _cpu() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


async def _measured(work: Callable[[], Awaitable[object]]) -> Timing:
    wall, cpu = time.perf_counter(), _cpu()
    await work()
    return Timing(time.perf_counter() - wall, _cpu() - cpu)


async def _run_all(argvs: Sequence[Sequence[str]]) -> None:
    for argv in argvs:
        await _run(argv)


async def pipeline_commands(
    exe: str, source: Path, out_dir: Path, settings: MediaSettings
) -> list[list[str]]:
    """The command lines ``MediaWorker.ingest`` runs for ``source`` (the plan is measured)."""
    measured = await _render.measure(exe, source, settings, lambda _s: None)
    plan = await _render.make_plan(exe, source, settings, measured, lambda _s: None)
    argvs = [decode_argv(exe, source), _render.measure_argv(exe, source, settings)]
    if plan.limiter is not None:  # the search ran limiter passes; count one per pass as bare
        print("note: this material needed the limiter; bare run counts one limiter pass")
        stream = fl.ebur128(_render._chain(source, settings, plan.limiter))
        argvs.append(command(exe, ffmpeg.output(stream, "-", f="null")))
    outputs = {codec: out_dir / f"bare.{codec}" for codec in settings.renditions}
    argvs.append(_render.encode_argv(exe, source, outputs, settings, plan))
    argvs.append(_render.verify_argv(exe, next(iter(outputs.values()))))
    return [_bare(a) for a in argvs]


def naive_commands(exe: str, source: Path, out_dir: Path, settings: MediaSettings) -> list[Any]:
    """loudnorm pass 1 and loudnorm linear pass 2 to both outputs (the plan is not needed
    for timing: loudnorm's cost does not depend on the measured values)."""
    chain = fl.prepare(open_source(source)["a:0"], settings)
    first = command(exe, ffmpeg.output(fl.loudnorm_measure(chain, settings), "-", f="null"))
    fake = _render.ln.Measurement(i=-23.0, tp=-6.0, lra=7.0, thresh=-33.0)
    split = fl.loudnorm_linear(chain, fake, settings).asplit()
    opus = ffmpeg.output(split[0], str(out_dir / "naive.opus"), f="ogg", acodec="libopus",
                         ac=1, **{"b:a": settings.opus_bitrate})  # fmt: skip
    mp3 = ffmpeg.output(split[1], str(out_dir / "naive.mp3"), f="mp3", acodec="libmp3lame",
                        ac=1, **{"b:a": settings.mp3_bitrate})  # fmt: skip
    second = command(exe, ffmpeg.merge_outputs(opus, mp3), "-y")
    return [_bare(first), _bare(second)]


async def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="length of the material")
    parser.add_argument("--repeat", type=int, default=2, help="best of N (bare and pipeline)")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive two-pass run")
    parser.add_argument("--workdir", type=Path, help="keep files here (default: a temp dir)")
    args = parser.parse_args(argv)
    seconds = args.minutes * 60
    exe = ffmpeg_executable()
    settings = MediaSettings(max_duration_s=max(seconds + 60, 3 * 3600))
    with tempfile.TemporaryDirectory(prefix="loaxa-bench-ingest-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        print(
            f"loaxa ingest benchmark: {args.minutes:g} min of speech-like audio, "
            f"{os.cpu_count()} cores, Python {platform.python_version()}, ffmpeg {exe}"
        )
        started = time.perf_counter()
        source = await asyncio.to_thread(
            _load_speech().write_speech, work / "speech.wav", seconds, 1
        )
        print(f"material: {source.stat().st_size / 1e6:.0f} MB WAV made by pydub in "
              f"{time.perf_counter() - started:.1f} s")  # fmt: skip

        bare_argvs = await pipeline_commands(exe, source, work, settings)
        store = MediaStore(work / "store")
        worker = MediaWorker(exe, workers=1, scratch_dir=work)
        load_before = os.getloadavg()[0]
        bare: list[Timing] = []
        pipe: list[Timing] = []
        results: list[Any] = []

        async def ingest() -> None:
            await asyncio.to_thread(shutil.rmtree, work / "store", True)  # a fresh store each time
            results.append(await worker.ingest(source, store, settings))

        for _ in range(args.repeat):  # alternate, so a burst of other load hits both alike
            bare.append(await _measured(lambda: _run_all(bare_argvs)))
            pipe.append(await _measured(ingest))
        naive = None
        if not args.no_naive:
            naive = await _measured(lambda: _run_all(naive_commands(exe, source, work, settings)))
        load_after = os.getloadavg()[0]
        result = results[-1]

    def best(timings: list[Timing]) -> Timing:
        return Timing(min(t.wall_s for t in timings), min(t.cpu_s for t in timings))

    bare_t, pipe_t = best(bare), best(pipe)

    def row(name: str, t: Timing) -> str:
        return (
            f"{name:<28} {t.wall_s:7.1f} s wall {seconds / t.wall_s:6.1f}x realtime | "
            f"{t.cpu_s:7.1f} s CPU {seconds / t.cpu_s:6.1f}x per core"
        )

    print(f"best of {args.repeat}; load average {load_before:.1f} before, {load_after:.1f} after")
    print(row(f"bare ffmpeg ({len(bare_argvs)} commands)", bare_t))
    print(row("pipeline (MediaWorker)", pipe_t))
    if naive is not None:
        print(row("naive loudnorm two-pass", naive))
    print()
    print(
        f"overhead pipeline / bare: {pipe_t.wall_s / bare_t.wall_s:.3f}x wall, "
        f"{pipe_t.cpu_s / bare_t.cpu_s:.3f}x CPU (goal <= 1.10x)"
    )
    print(f"speed, both renditions:   {seconds / pipe_t.wall_s:.1f}x realtime (goal >= 30x)")
    if naive is not None:
        print(f"speed-up over naive:      {naive.wall_s / pipe_t.wall_s:.2f}x wall, "
              f"{naive.cpu_s / pipe_t.cpu_s:.2f}x CPU")  # fmt: skip
    sizes = ", ".join(f"{r.codec} {r.size_bytes / 1e6:.2f} MB" for r in result.renditions)
    print(
        f"renditions: {sizes}; loudness {result.loudness_in_lufs:.1f} -> "
        f"{result.loudness_out_lufs:.1f} LUFS, true peak {result.true_peak_out_db} dBTP"
    )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
