"""Helpers of the live tests: a station with live settings, listening, measuring levels."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp

from station.app import RunningStation
from station.config import Settings
from station.live import LIVE_HUB, LiveHub
from station.media import ffmpeg_executable
from tests.api_support import settings_for

FFMPEG = ffmpeg_executable()
SOURCE_PASSWORD = "hackme-source-pw"
TONE = "lavfi:sine=frequency=440:sample_rate=48000"


def live_settings(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str, **live: Any
) -> Settings:
    base = settings_for(tmp_path, mqtt_url, database_url, station_id)
    update: dict[str, Any] = {
        "source_port": 0,
        "source_host": "127.0.0.1",
        "source_password": SOURCE_PASSWORD,
        "dead_after_s": 1.0,
        "retry_min_s": 0.2,
        "retry_max_s": 0.5,
        **live,
    }
    data = base.live.model_dump() | update
    return base.model_copy(update={"live": type(base.live).model_validate(data)})


def hub_of(station: RunningStation) -> LiveHub:
    return station.app[LIVE_HUB]


async def listen(url: str, seconds: float, min_bytes: int = 1) -> tuple[int, bytes]:
    """Status and what a listener got within ``seconds`` (stops early once ``min_bytes``)."""
    got = bytearray()
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        if response.status != 200:
            return response.status, await response.read()
        deadline = time.monotonic() + seconds
        while len(got) < min_bytes and (left := deadline - time.monotonic()) > 0:
            try:
                chunk = await asyncio.wait_for(response.content.readany(), left)
            except TimeoutError:
                break
            if not chunk:
                break
            got += chunk
        return response.status, bytes(got)


async def run_ffmpeg(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        FFMPEG, "-hide_banner", "-nostats", *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, err.decode(errors="replace")


async def max_volume_db(data: bytes, tmp_path: Path, ext: str = "ogg") -> float:
    """Peak level of an encoded snippet, decoded by ffmpeg (volumedetect)."""
    path = tmp_path / f"snippet-{time.monotonic_ns()}.{ext}"
    await asyncio.to_thread(path.write_bytes, data)
    _, err = await run_ffmpeg("-i", str(path), "-af", "volumedetect", "-f", "null", "-")
    found = re.search(r"max_volume: (-?[0-9.]+|-inf) dB", err)
    assert found, err[-2000:]
    return float(found.group(1))


async def eventually(check: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


ICECAST_PASSWORD = "icecast-test-pw"


@asynccontextmanager
async def icecast_server(tmp_path: Path, mounts: str = "") -> AsyncIterator[int]:
    """Debian's icecast2 on a free port (the caller skips when the binary is missing);
    ``mounts``: ``<mount>`` blocks for its config (listener authentication)."""
    binary = shutil.which("icecast2")
    assert binary is not None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    # pytest's tmp_path sits in a 0700 tree that the icecast2 user cannot enter
    root = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="loaxa-icecast-"))
    logdir = root / "log"
    logdir.mkdir()
    owner = ""
    if os.geteuid() == 0:  # icecast2 refuses to run as root without dropping privileges
        shutil.chown(logdir, "icecast2")
        owner = "<security><changeowner><user>icecast2</user><group>icecast</group>"
        owner += "</changeowner></security>"
    conf = root / "icecast.xml"
    conf.write_text(
        f"<icecast><limits><clients>20</clients><sources>2</sources></limits>"
        f"<authentication><source-password>{ICECAST_PASSWORD}</source-password>"
        f"<admin-user>admin</admin-user><admin-password>{ICECAST_PASSWORD}</admin-password>"
        f"</authentication><hostname>127.0.0.1</hostname><listen-socket><port>{port}</port>"
        f"<bind-address>127.0.0.1</bind-address></listen-socket><paths>"
        f"<basedir>/usr/share/icecast2</basedir><logdir>{logdir}</logdir>"
        f"<webroot>/usr/share/icecast2/web</webroot><adminroot>/usr/share/icecast2/admin</adminroot>"
        f"</paths><logging><accesslog>access.log</accesslog><errorlog>error.log</errorlog>"
        f"</logging>{owner}{mounts}</icecast>"
    )
    await asyncio.to_thread(root.chmod, 0o755)
    await asyncio.to_thread(conf.chmod, 0o644)
    proc = await asyncio.create_subprocess_exec(
        binary,
        "-c",
        str(conf),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:

        async def up() -> bool:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                return False
            writer.close()
            return True

        await eventually(up)
        yield port
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        await proc.wait()
        await asyncio.to_thread(shutil.rmtree, root, True)


async def webm_chunks(tmp_path: Path, seconds: float, size: int = 2000) -> list[bytes]:
    """A tone as a browser's MediaRecorder sends it: WebM/Opus in chunks of ``size`` bytes."""
    path = tmp_path / f"mic-{time.monotonic_ns()}.webm"
    code, err = await run_ffmpeg(
        "-f", "lavfi", "-i", f"sine=frequency=300:duration={seconds}", "-c:a", "libopus",
        "-b:a", "32k", "-f", "webm", str(path),
    )  # fmt: skip
    assert code == 0, err
    data = await asyncio.to_thread(path.read_bytes)
    return [data[i : i + size] for i in range(0, len(data), size)]


def unsigned(url: str | None) -> tuple[str, list[tuple[str, str]]]:
    """A signed URL without its expiry and signature (the expiry is rounded: a URL signed a
    moment later across the rounding boundary differs only there)."""
    assert url is not None
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("e", "s")]
    return f"{parts.scheme}://{parts.netloc}{parts.path}", query
