"""Media pipeline against the real (bundled) ffmpeg; fixtures are generated in tmp dirs."""

from __future__ import annotations

import asyncio
import random
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from station.media import (
    IngestResult,
    MediaError,
    MediaRejected,
    MediaSettings,
    MediaStore,
    MediaWorker,
    ffmpeg_executable,
    synthesize_programme,
)
from station.media import _worker as worker_module
from station.media._errors import clock
from station.media._ffmpeg import _ProgressLog
from station.media._loudness import parse_ebur128, parse_loudnorm

FFMPEG = ffmpeg_executable()
SPEECH_SECONDS = 6.0
TARGET = MediaSettings().target_lufs


# -- helpers -------------------------------------------------------------------------------------


def ff(*args: str) -> str:
    """Run ffmpeg synchronously (fixture building only); returns stderr."""
    done = subprocess.run(
        [FFMPEG, "-hide_banner", "-nostdin", "-y", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stderr


def loudness_sync(path: Path) -> float:
    err = ff("-nostats", "-i", str(path), "-af", "ebur128=framelog=verbose", "-f", "null", "-")
    return parse_ebur128(err.splitlines()).i


def encode(src: Path, dest: Path, *codec: str) -> Path:
    ff("-i", str(src), *codec, str(dest))
    return dest


async def ebur128(path: Path) -> tuple[float, float | None]:
    """Integrated loudness and true peak measured independently of the code under test."""
    proc = await asyncio.create_subprocess_exec(
        FFMPEG, "-hide_banner", "-nostdin", "-nostats", "-i", str(path),
        "-af", "ebur128=peak=true:framelog=verbose", "-f", "null", "-",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    r128 = parse_ebur128(err.decode().splitlines())
    return r128.i, (r128.tp if r128.tp > float("-inf") else None)


async def stream_info(path: Path) -> str:
    proc = await asyncio.create_subprocess_exec(
        FFMPEG, "-hide_banner", "-nostdin", "-i", str(path),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    return err.decode()


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def any_dirs(root: Path) -> bool:
    return any(p.is_dir() for p in root.iterdir())


def has_encoder(name: str) -> bool:
    listing = subprocess.run(
        [FFMPEG, "-hide_banner", "-encoders"], capture_output=True, text=True, check=False
    )
    return re.search(rf"\s{name}\s", listing.stdout) is not None


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every input the tests need, made once per module from synthesized speech."""
    d = tmp_path_factory.mktemp("clips")
    speech = d / "speech.wav"
    asyncio.run(synthesize_programme(speech, SPEECH_SECONDS, seed=7))
    c: dict[str, Path] = {"wav": speech}
    c["mp3"] = encode(speech, d / "speech.mp3", "-c:a", "libmp3lame", "-b:a", "64k")
    c["m4a"] = encode(speech, d / "speech.m4a", "-c:a", "aac", "-b:a", "64k")
    c["ogg"] = encode(speech, d / "speech.ogg", "-c:a", "libvorbis")
    c["flac"] = encode(speech, d / "speech.flac")
    c["wma"] = encode(speech, d / "speech.wma", "-c:a", "wmav2")
    if has_encoder("libopencore_amrnb"):
        c["amr"] = encode(speech, d / "speech.amr", "-ar", "8000", "-c:a", "libopencore_amrnb")
    stereo = "[0:a][0:a]join=inputs=2:channel_layout=stereo"
    c["stereo"] = encode(speech, d / "stereo.wav", "-filter_complex", stereo)
    to_quiet = -35.0 - loudness_sync(speech)
    c["quiet"] = encode(speech, d / "quiet.wav", "-af", f"volume={to_quiet:.2f}dB")
    c["clipped"] = encode(speech, d / "clipped.wav", "-af", "volume=24dB")  # flat-topped
    bangs = "aevalsrc='if(lt(mod(t,1.5),0.003),0.97,0)':s=22050:d=6[b]"
    c["quiet_bangs"] = encode(
        c["quiet"], d / "bangs.wav", "-filter_complex",
        f"{bangs};[0:a][b]amix=inputs=2:normalize=0",
    )  # fmt: skip
    c["silence"] = d / "silence.wav"
    ff("-f", "lavfi", "-i", "anullsrc=r=22050:cl=mono:d=20", str(c["silence"]))
    c["no_audio"] = d / "video.mkv"
    ff("-f", "lavfi", "-i", "color=c=red:s=64x64:d=2", "-c:v", "ffv1", str(c["no_audio"]))
    return c


@pytest.fixture(scope="module")
def broken(clips: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("broken")
    mp3 = clips["mp3"].read_bytes()
    out = {
        "text": d / "notes.mp3",
        "truncated": d / "truncated.mp3",
        "garbled": d / "garbled.mp3",
        "empty": d / "empty.mp3",
        "playlist": d / "playlist.mp3",
        "unknown_codec": d / "unknown.wav",
    }
    out["text"].write_text("Thông báo: họp thôn lúc 8 giờ sáng.\n" * 50, encoding="utf-8")
    out["truncated"].write_bytes(mp3[: len(mp3) // 2])
    noise = random.Random(3).randbytes(len(mp3) // 4)
    third = len(mp3) // 3
    out["garbled"].write_bytes(mp3[:third] + noise + mp3[third + len(noise) :])
    out["empty"].write_bytes(b"")
    wav = bytearray(clips["wav"].read_bytes())
    assert wav[12:16] == b"fmt "
    wav[20:22] = b"\x99\x99"  # WAVE format tag no decoder knows
    out["unknown_codec"].write_bytes(bytes(wav))
    # Without the demuxer whitelist ffmpeg would follow this to another local file.
    out["playlist"].write_text(f"ffconcat version 1.0\nfile '{clips['wav']}'\n")
    return out


@pytest.fixture
def store(tmp_path: Path) -> MediaStore:
    return MediaStore(tmp_path / "store")


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    path = tmp_path / "scratch"
    path.mkdir()
    return path


@pytest.fixture
def worker(scratch: Path) -> MediaWorker:
    return MediaWorker(FFMPEG, workers=2, scratch_dir=scratch)


async def assert_rendition(result: IngestResult, store: MediaStore) -> None:
    assert result.path == store.path_for(result.sha256)
    assert result.path.read_bytes()[:4] == b"OggS"
    assert result.size_bytes == result.path.stat().st_size == store.size(result.sha256)
    assert re.search(r"Audio: opus, 48000 Hz, mono", await stream_info(result.path))
    integrated, peak = await ebur128(result.path)
    assert abs(integrated - TARGET) <= 1.0, integrated
    assert abs(result.loudness_out_lufs - integrated) < 0.2
    assert peak is not None and peak <= -1.0  # -1.5 target; Opus may add a little
    assert result.codec == "opus"


# -- formats and loudness ------------------------------------------------------------------------

FORMATS = ["wav", "mp3", "m4a", "ogg", "flac", "wma", "amr", "stereo"]


@pytest.mark.parametrize("fmt", FORMATS)
async def test_each_format_ingests_to_target_loudness(
    fmt: str, clips: dict[str, Path], worker: MediaWorker, store: MediaStore
) -> None:
    if fmt not in clips:
        pytest.skip("this ffmpeg build has no AMR-NB encoder (libopencore_amrnb) for the fixture")
    result = await worker.ingest(clips[fmt], store, MediaSettings())
    await assert_rendition(result, store)
    assert abs(result.duration_ms - SPEECH_SECONDS * 1000) < 100


@pytest.mark.parametrize("kind", ["quiet", "clipped", "quiet_bangs"])
async def test_quiet_and_loud_inputs_land_on_target(
    kind: str, clips: dict[str, Path], worker: MediaWorker, store: MediaStore
) -> None:
    result = await worker.ingest(clips[kind], store, MediaSettings())
    await assert_rendition(result, store)
    if kind == "quiet":
        assert result.loudness_in_lufs == pytest.approx(-35.0, abs=0.5)
    if kind == "clipped":
        assert result.loudness_in_lufs > -10


async def test_speech_filter_and_other_target(
    clips: dict[str, Path], worker: MediaWorker, store: MediaStore
) -> None:
    settings = MediaSettings(speech_filter=True, target_lufs=-18.0, opus_bitrate="32k")
    result = await worker.ingest(clips["m4a"], store, settings)
    integrated, _ = await ebur128(result.path)
    assert abs(integrated - -18.0) <= 1.0


# -- rejections ----------------------------------------------------------------------------------

REJECTIONS: list[tuple[str, str, str]] = [
    ("text", "not_audio", r"^not audio: unrecognised file format"),
    ("playlist", "not_audio", r"^not audio: unrecognised file format"),
    ("no_audio", "not_audio", r"^not audio: no audio stream found$"),
    ("unknown_codec", "not_audio", r"^not audio: unsupported audio codec$"),
    ("truncated", "corrupt", r"^corrupt at 00:0[1-3]: file ends early"),
    ("garbled", "corrupt", r"^corrupt at 00:0[1-3]$"),
    ("empty", "empty", r"^empty"),
    ("silence", "silent", r"^silent"),
]


@pytest.mark.parametrize(("name", "reason", "message"), REJECTIONS)
async def test_rejections(
    name: str,
    reason: str,
    message: str,
    clips: dict[str, Path],
    broken: dict[str, Path],
    worker: MediaWorker,
    store: MediaStore,
    scratch: Path,
) -> None:
    with pytest.raises(MediaRejected) as info:
        await worker.ingest({**clips, **broken}[name], store, MediaSettings())
    assert info.value.reason == reason
    assert re.search(message, str(info.value)), str(info.value)
    assert files_under(store.root) == []
    assert files_under(scratch) == [] and not any_dirs(scratch)


async def test_limits(clips: dict[str, Path], worker: MediaWorker, store: MediaStore) -> None:
    with pytest.raises(MediaRejected) as info:
        await worker.ingest(clips["wav"], store, MediaSettings(max_bytes=1000))
    assert info.value.reason == "too_large"
    assert str(info.value).startswith("too large: ")
    with pytest.raises(MediaRejected) as info:
        await worker.ingest(clips["mp3"], store, MediaSettings(max_duration_s=4))
    assert info.value.reason == "too_long"
    assert str(info.value) == "too long: 00:00:06 > 00:00:04 limit"
    assert files_under(store.root) == []


# -- store, dedup, progress, cancellation --------------------------------------------------------


async def test_dedup_same_input_same_sha(
    clips: dict[str, Path], worker: MediaWorker, store: MediaStore, tmp_path: Path
) -> None:
    copy = tmp_path / "renamed.bin"
    copy.write_bytes(clips["ogg"].read_bytes())
    first, second = await asyncio.gather(
        worker.ingest(clips["ogg"], store, MediaSettings()),
        worker.ingest(copy, store, MediaSettings()),
    )
    assert first.sha256 == second.sha256
    assert first.source_sha256 == second.source_sha256
    assert first.renditions == second.renditions
    assert sorted(files_under(store.root)) == sorted(r.path for r in first.renditions)
    assert store.exists(first.sha256)
    with store.open(first.sha256) as handle:
        assert handle.read(4) == b"OggS"
    for rendition in first.renditions:
        assert store.delete(rendition.sha256) == 1
        assert not store.exists(rendition.sha256, rendition.codec)
    assert files_under(store.root) == []


@pytest.mark.parametrize(
    "name",
    [
        "../../etc/passwd",
        "A" * 64,
        "a" * 63,
        "a" * 65,
        "/" + "a" * 63,
        "a" * 62 + "/.",
        "a" * 64 + "\n",
        "",
    ],
)
def test_store_rejects_path_tricks(store: MediaStore, name: str) -> None:
    for call in (store.path_for, store.exists, store.delete):
        with pytest.raises(ValueError):
            call(name)


@pytest.mark.parametrize("ext", ["../x", "opus/..", "", "OPUS", "a.b", "x" * 9])
def test_store_rejects_bad_extensions(store: MediaStore, ext: str) -> None:
    with pytest.raises(ValueError):
        store.path_for("a" * 64, ext)


async def test_progress_reaches_one(
    clips: dict[str, Path], worker: MediaWorker, store: MediaStore
) -> None:
    seen: list[float] = []
    await worker.ingest(clips["flac"], store, MediaSettings(), seen.append)
    assert seen == sorted(seen)
    assert all(0.0 <= value <= 1.0 for value in seen)
    assert len(seen) >= 4
    assert seen[-1] == pytest.approx(1.0)


async def test_cancel_kills_ffmpeg_and_leaves_nothing(
    tmp_path: Path,
    worker: MediaWorker,
    store: MediaStore,
    scratch: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    long_clip = tmp_path / "long.wav"
    await synthesize_programme(long_clip, 90, seed=2)
    children: list[asyncio.subprocess.Process] = []
    real_exec = asyncio.create_subprocess_exec

    async def spy(*args: Any, **kwargs: Any) -> asyncio.subprocess.Process:
        proc = await real_exec(*args, **kwargs)
        children.append(proc)
        return proc

    monkeypatch.setattr(asyncio, "create_subprocess_exec", spy)
    started = asyncio.Event()

    def on_progress(fraction: float) -> None:
        if fraction > 0.1:
            started.set()  # inside the loudness pass, ffmpeg running

    task = asyncio.create_task(worker.ingest(long_clip, store, MediaSettings(), on_progress))
    await asyncio.wait_for(started.wait(), 20)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert children and all(proc.returncode is not None for proc in children)
    assert files_under(store.root) == []
    assert files_under(scratch) == [] and not any_dirs(scratch)


async def test_worker_bounds_concurrency(
    store: MediaStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    running = peak = 0

    async def fake_decode_check(*_args: Any) -> float:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1
        raise MediaRejected("corrupt", "corrupt at 00:00")

    monkeypatch.setattr(worker_module, "decode_check", fake_decode_check)
    src = tmp_path / "x.wav"
    src.write_bytes(b"RIFF")
    worker = MediaWorker(FFMPEG, workers=2)
    results = await asyncio.gather(
        *(worker.ingest(src, store, MediaSettings()) for _ in range(6)), return_exceptions=True
    )
    assert all(isinstance(r, MediaRejected) for r in results)
    assert peak == 2


# -- small units ---------------------------------------------------------------------------------


def test_ffmpeg_executable(tmp_path: Path) -> None:
    assert Path(ffmpeg_executable("auto")).is_file()
    assert ffmpeg_executable(FFMPEG) == FFMPEG
    with pytest.raises(MediaError):
        ffmpeg_executable(str(tmp_path / "no-such-ffmpeg"))
    with pytest.raises(MediaError):
        ffmpeg_executable("no-such-ffmpeg-on-path")


async def test_broken_ffmpeg_is_our_error_not_the_uploads(
    clips: dict[str, Path], store: MediaStore, tmp_path: Path
) -> None:
    fake = tmp_path / "ffmpeg"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    with pytest.raises(MediaError):
        await MediaWorker(str(fake)).ingest(clips["wav"], store, MediaSettings())
    assert files_under(store.root) == []


def test_progress_parser_reports_periodic_blocks_only() -> None:
    seen: list[float] = []
    log = _ProgressLog(seen.append)
    for line in ["out_time_us=N/A", "progress=continue", "out_time_us=1500000",
                 "out_time_ms=1500000", "progress=continue", "out_time_us=3000000",
                 "progress=end"]:  # fmt: skip
        log.feed(line)
    assert seen == [1.5]
    assert log.out_time_s == 3.0


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "00:00"), (83.9, "01:23"), (3599, "59:59"), (3723, "01:02:03")]
)
def test_clock(seconds: float, text: str) -> None:
    assert clock(seconds) == text


def test_parsers_handle_silence() -> None:
    loudnorm = ["[Parsed_loudnorm_0 @ 0x1] ", "{", '"input_i" : "-inf",', '"input_tp" : "-inf",',
                '"input_lra" : "0.00",', '"input_thresh" : "-70.00"', "}"]  # fmt: skip
    assert parse_loudnorm(loudnorm).silent
    summary = ["Summary:", "  Integrated loudness:", "    I:         -70.0 LUFS",
               "  True peak:", "    Peak:       -inf dBFS"]  # fmt: skip
    r128 = parse_ebur128(summary)
    assert r128.i == -70.0
    assert r128.tp == float("-inf")
    assert r128.silent


def test_settings_validate() -> None:
    with pytest.raises(ValueError):
        MediaSettings(opus_bitrate="24kbps; rm -rf /")
    with pytest.raises(ValueError):
        MediaSettings(max_bytes=0)


async def test_synthesize_is_deterministic(tmp_path: Path) -> None:
    await asyncio.gather(
        *(synthesize_programme(tmp_path / f"{name}.wav", 2.0, seed=seed)
          for name, seed in (("a", 1), ("b", 1), ("c", 2)))
    )  # fmt: skip
    a, b, c = ((tmp_path / n).read_bytes() for n in ("a.wav", "b.wav", "c.wav"))
    assert a == b != c
    integrated, _ = await ebur128(tmp_path / "a.wav")
    assert -40 < integrated < -10
