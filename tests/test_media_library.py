"""The media library: metadata, topics, both renditions, dedup, deletion rules, and the CLI."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from station._media_library import (
    add_media,
    delete_media,
    get_media,
    list_media,
    list_topics,
    media_settings,
)
from station._services import Sessions, StationError, create_programme, schedule_once
from station.cli import main
from station.config import Settings
from station.db import (
    MediaItem,
    MediaRendition,
    MediaTopic,
    Programme,
    Topic,
    create_engine_for,
    session_factory,
    upgrade_async,
)
from station.media import MediaRejected, MediaStore, MediaWorker, ffmpeg_executable
from station.media._loudness import parse_ebur128

FFMPEG = ffmpeg_executable()


def ff(*args: str) -> None:
    """Run ffmpeg synchronously (fixture building only)."""
    done = subprocess.run(
        [FFMPEG, "-hide_banner", "-nostdin", "-y", *args], capture_output=True, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]


async def ffmpeg_log(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        FFMPEG, "-hide_banner", "-nostdin", "-nostats", *args,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    return err.decode()


async def ebur128(path: Path) -> tuple[float, float]:
    """Integrated loudness and true peak, measured independently of the code under test."""
    log = await ffmpeg_log("-i", str(path), "-af", "ebur128=peak=true", "-f", "null", "-")
    r128 = parse_ebur128(log.splitlines())
    return r128.i, r128.tp


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("library")
    from station.media import synthesize_programme

    wav = d / "ban-tin.wav"
    asyncio.run(synthesize_programme(wav, 4.0, seed=5))
    other = d / "thong-bao.wav"
    asyncio.run(synthesize_programme(other, 3.0, seed=6))
    mp3 = d / "ban-tin.mp3"
    ff("-i", str(wav), "-c:a", "libmp3lame", "-b:a", "64k", str(mp3))
    text = d / "not-audio.mp3"
    text.write_text("Thông báo\n" * 100, encoding="utf-8")
    return {"wav": wav, "other": other, "mp3": mp3, "text": text}


def _settings(tmp_path: Path, database_url: str, **media: object) -> Settings:
    return Settings.model_validate(
        {"database": {"url": database_url}, "media": {"dir": str(tmp_path / "media"), **media}}
    )


class Library:
    def __init__(self, settings: Settings, sessions: Sessions) -> None:
        self.settings = settings
        self.sessions = sessions
        self.store = MediaStore(settings.media.dir)
        self.worker = MediaWorker(ffmpeg_executable(), 2)

    async def add(self, source: Path, title: str = "Bản tin", **kw: Any) -> tuple[MediaItem, bool]:
        return await add_media(
            self.sessions, self.store, self.worker, self.settings, source, title, **kw
        )

    def files(self) -> list[Path]:
        root = self.settings.media.dir
        return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture
async def library(tmp_path: Path, database_url: str) -> AsyncIterator[Library]:
    settings = _settings(tmp_path, database_url)
    await upgrade_async(database_url)
    engine = create_engine_for(database_url)
    try:
        yield Library(settings, session_factory(engine))
    finally:
        await engine.dispose()


# -- topics ----------------------------------------------------------------------------------


async def test_topic_catalogue_is_seeded_and_editable(library: Library) -> None:
    topics = await list_topics(library.sessions)
    codes = [t.code for t in topics]
    assert codes[:3] == ["I.1", "I.2", "I.3"] and codes.index("I.10") > codes.index("I.9")
    assert len(codes) == 21 and codes[-1] == "II.9"
    by_code = {t.code: t for t in topics}
    assert by_code["I.9"].title_vi.startswith("Phòng, chống thiên tai")
    assert by_code["II.4"].title_en == "Digital transformation and information security"
    assert {t.group for t in topics} == {"I", "II"}
    async with library.sessions() as db:
        retired = await db.get(Topic, "II.1")
        retired.active = False
        db.add(retired)
        db.add(Topic(code="II.10", title_vi="Chủ đề mới 2025", group="II"))
        await db.commit()
    codes = [t.code for t in await list_topics(library.sessions)]
    assert "II.1" not in codes and codes[-1] == "II.10"
    every = await list_topics(library.sessions, include_inactive=True)
    assert "II.1" in [t.code for t in every]


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"topics": ["I.9", "X.1"]}, r"unknown topic\(s\): X\.1"),
        ({"language": "Tiếng Việt"}, r"invalid language code"),
        ({"uploader": "x" * 200}, r"uploader too long"),
    ],
)
async def test_bad_metadata_is_refused_before_any_work(
    library: Library, sources: dict[str, Path], kw: dict[str, object], message: str
) -> None:
    with pytest.raises(StationError, match=message):
        await library.add(sources["wav"], **kw)
    with pytest.raises(StationError, match="needs a title"):
        await library.add(sources["wav"], "  ")
    assert library.files() == []


async def test_retired_topic_is_refused(library: Library, sources: dict[str, Path]) -> None:
    async with library.sessions() as db:
        topic = await db.get(Topic, "I.10")
        topic.active = False
        db.add(topic)
        await db.commit()
    with pytest.raises(StationError, match=r"no longer in use: I\.10"):
        await library.add(sources["wav"], topics=["I.10"])


# -- add: metadata, renditions, dedup --------------------------------------------------------


async def test_add_stores_metadata_and_both_renditions(
    library: Library, sources: dict[str, Path]
) -> None:
    item, created = await library.add(
        sources["mp3"], "Phòng chống bão", topics=["II.4", "I.9", "I.9"], language="ctu",
        uploader="Anh Ba",
    )  # fmt: skip
    assert created and item.id is not None
    entry = await get_media(library.sessions, item.id)
    assert entry.topics == ["I.9", "II.4"]
    assert (item.language, item.uploader, item.title) == ("ctu", "Anh Ba", "Phòng chống bão")
    assert item.loudness_in_lufs is not None and item.loudness_in_lufs < -18
    assert abs((item.loudness_out_lufs or 0) + 16) <= 1.0
    assert item.true_peak_out_db is not None and item.true_peak_out_db <= -1.0
    assert [(r.codec, r.bitrate_kbps) for r in entry.renditions] == [("opus", 24), ("mp3", 48)]
    opus, mp3 = entry.renditions
    assert (item.sha256, item.codec, item.size_bytes) == (opus.sha256, "opus", opus.size_bytes)
    mp3_path = library.store.path_for(mp3.sha256, "mp3")
    data = mp3_path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == mp3.sha256 and len(data) == mp3.size_bytes
    info = await ffmpeg_log("-i", str(mp3_path))
    assert "Audio: mp3" in info and "mono" in info and "48 kb/s" in info
    integrated, peak = await ebur128(mp3_path)
    assert abs(integrated + 16) <= 1.0
    assert peak <= -0.5
    assert sorted(library.files()) == sorted(
        [library.store.path_for(opus.sha256, "opus"), mp3_path]
    )


async def test_identical_upload_is_not_stored_twice(
    library: Library, sources: dict[str, Path], tmp_path: Path
) -> None:
    first, created = await library.add(sources["wav"])
    copy = tmp_path / "copy-from-phone.bin"
    copy.write_bytes(sources["wav"].read_bytes())
    again, created_again = await library.add(copy, "Tên khác")
    assert created and not created_again and again.id == first.id
    async with library.sessions() as db:
        assert len((await db.exec(select(MediaItem))).all()) == 1
        assert len((await db.exec(select(MediaRendition))).all()) == 2
    assert len(library.files()) == 2


async def test_rejected_audio_leaves_nothing(library: Library, sources: dict[str, Path]) -> None:
    with pytest.raises(MediaRejected) as info:
        await library.add(sources["text"], topics=["I.9"])
    assert info.value.reason == "not_audio"
    assert library.files() == []
    assert await list_media(library.sessions) == []


async def test_mp3_only_station(
    tmp_path: Path, database_url: str, sources: dict[str, Path]
) -> None:
    settings = _settings(tmp_path, database_url, renditions=["mp3"], mp3_bitrate="32k")
    assert media_settings(settings).renditions == ("mp3",)
    await upgrade_async(database_url)
    engine = create_engine_for(database_url)
    try:
        lib = Library(settings, session_factory(engine))
        item, _ = await lib.add(sources["other"])
        assert item.codec == "mp3" and item.id is not None
        entry = await get_media(lib.sessions, item.id)
        assert [(r.codec, r.bitrate_kbps) for r in entry.renditions] == [("mp3", 32)]
        assert lib.files() == [lib.store.path_for(item.sha256, "mp3")]
    finally:
        await engine.dispose()


# -- list, delete ----------------------------------------------------------------------------


async def test_list_filters_by_topic_and_title(library: Library, sources: dict[str, Path]) -> None:
    a, _ = await library.add(sources["wav"], "Bản tin sáng", topics=["I.9"])
    b, _ = await library.add(sources["other"], "Thông báo họp thôn", topics=["II.3"])
    every = await list_media(library.sessions)
    assert [e.item.id for e in every] == [a.id, b.id]
    by_topic = await list_media(library.sessions, topic="II.3")
    assert [e.item.id for e in by_topic] == [b.id]
    by_title = await list_media(library.sessions, query="BẢN TIN")
    assert [e.item.id for e in by_title] == [a.id]


async def test_delete_refused_while_a_programme_uses_it(
    library: Library, sources: dict[str, Path]
) -> None:
    from datetime import UTC, datetime, timedelta

    item, _ = await library.add(sources["wav"], topics=["I.9"])
    assert item.id is not None
    programme = await create_programme(library.sessions, "Bản tin sáng thứ hai", [item.id])
    assert programme.id is not None
    later = datetime.now(UTC) + timedelta(days=1)
    schedule = await schedule_once(library.sessions, programme.id, later, {"all": True})
    with pytest.raises(StationError) as info:
        await delete_media(library.sessions, library.store, item.id)
    message = str(info.value)
    assert f"programme {programme.id} “Bản tin sáng thứ hai”" in message
    assert f"pending schedule {schedule.id}" in message
    assert len(library.files()) == 2
    async with library.sessions() as db:
        from station.db import Schedule

        await db.delete(await db.get(Schedule, schedule.id))
        await db.delete(await db.get(Programme, programme.id))
        await db.commit()
    entry = await delete_media(library.sessions, library.store, item.id)
    assert len(entry.renditions) == 2
    assert library.files() == []
    assert not any(library.settings.media.dir.iterdir())  # empty shards removed too
    async with library.sessions() as db:
        assert (await db.exec(select(MediaRendition))).all() == []
        assert (await db.exec(select(MediaTopic))).all() == []
        assert await db.get(Topic, "I.9") is not None  # the catalogue stays
    with pytest.raises(StationError, match="unknown media item"):
        await delete_media(library.sessions, library.store, item.id)


# -- CLI -------------------------------------------------------------------------------------


@pytest.fixture
def config(tmp_path: Path, database_url: str) -> Path:
    path = tmp_path / "loaxa.yaml"
    path.write_text(
        f"database:\n  url: {database_url}\nmedia:\n  dir: {tmp_path / 'media'}\n",
        encoding="utf-8",
    )
    return path


def test_cli_media_commands(
    config: Path, sources: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    c = ["-c", str(config)]
    args = ["media", "add", str(sources["mp3"]), *c, "--title", "Phòng chống bão"]
    assert main([*args, "--topic", "I.9,II.4", "--language", "vi", "--uploader", "Chị Hoa"]) == 0
    out = capsys.readouterr()
    assert out.out.startswith("media 1 added: Phòng chống bão (4.0 s, ")
    assert "100.0%" in out.err and "[" in out.err  # the progress bar
    assert main(["media", "add", str(sources["mp3"]), *c]) == 0
    assert "media 1 already in the library" in capsys.readouterr().out

    assert main(["media", "list", *c]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert "opus+mp3" in listing[1] and "I.9,II.4" in listing[1] and "Phòng chống bão" in listing[1]

    assert main(["media", "show", "1", *c]) == 0
    shown = capsys.readouterr().out
    for expected in ("uploader       Chị Hoa", "topics         I.9, II.4", "rendition      mp3"):
        assert expected in shown

    assert main(["media", "topics", *c]) == 0
    assert "I.9    Phòng, chống thiên tai" in capsys.readouterr().out

    assert main(["media", "add", str(sources["wav"]), *c, "--topic", "IX.9"]) == 2
    assert "loaxa: unknown topic(s): IX.9" in capsys.readouterr().err
    assert main(["media", "add", str(sources["text"]), *c]) == 2
    assert "loaxa: not audio" in capsys.readouterr().err
    assert main(["media", "add", str(config.parent / "missing.mp3"), *c]) == 2
    assert "no such file" in capsys.readouterr().err

    assert main(["schedule", "add", *c, "--at", "2030-01-01T06:00:00+07:00", "--media", "1"]) == 0
    capsys.readouterr()
    assert main(["media", "delete", "1", *c]) == 2
    assert "is used by programme 1" in capsys.readouterr().err
    assert main(["media", "usage", *c, "--days", "7"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{'day':<10}  {'cluster':<16} {'requests':>8} {'bytes':>14}"
    ]
    assert main(["media", "show", "99", *c]) == 2
    assert "unknown media item 99" in capsys.readouterr().err


def test_rendition_settings_from_config() -> None:
    from station.config import ConfigError, load_config

    settings = load_config(None, {"LOAXA_MEDIA__RENDITIONS": "mp3, opus"})
    assert media_settings(settings).renditions == ("mp3", "opus")
    assert media_settings(load_config(None, {})).renditions == ("opus", "mp3")
    for bad in ("aac", "opus,opus", ""):
        with pytest.raises(ConfigError, match=r"media\.renditions"):
            load_config(None, {"LOAXA_MEDIA__RENDITIONS": bad})
    with pytest.raises(ConfigError, match=r"media\.opus_bitrate"):
        load_config(None, {"LOAXA_MEDIA__OPUS_BITRATE": "24kbps"})
