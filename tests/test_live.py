"""Live mounts end to end: a station, ffmpeg sources, clusters listening over HTTP and MQTT."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

from devices import BrokerAddress, MqttLink
from station.db import Role
from station.live import PACKET, SOURCE_SERVER
from tests.api_support import running, user_with_token
from tests.live_support import (
    SOURCE_PASSWORD,
    TONE,
    eventually,
    hub_of,
    listen,
    live_settings,
    max_volume_db,
    run_ffmpeg,
)


async def test_device_source_reaches_clusters_signed_per_cluster_and_over_mqtt(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str
) -> None:
    settings = live_settings(tmp_path, mqtt_url, database_url, station_id)
    async with running(settings) as station:
        hub = hub_of(station)
        topic = hub.topic_for("xa")
        packets: list[bytes] = []
        listener = MqttLink(BrokerAddress.from_url(mqtt_url), f"{station_id}-horn")
        link_task = asyncio.create_task(listener.run())
        try:
            await listener.wait_connected(timeout=10)
            await listener.subscribe(topic, qos=0)
            await hub.start("xa", TONE)
            url = hub.url_for("xa", "c-1")
            status, data = await listen(url, 10, min_bytes=12_000)
            assert status == 200 and data.startswith(b"OggS") and b"OpusHead" in data[:100]
            assert (
                await max_volume_db(data, tmp_path) > -30
            )  # the tone (lavfi: -18 dBFS), not silence

            # a URL made for one cluster is refused to another and without a signature
            forged = url.replace("c=c-1", "c=c-2")
            assert (await listen(forged, 2))[0] == 403
            assert (await listen(url.split("?")[0], 2))[0] == 403
            assert (await listen(hub.url_for("nope", "c-1"), 2))[0] == 404

            async def got_packets() -> bool:
                while not listener.messages.empty():
                    packets.append(listener.messages.get_nowait().payload)
                return len(packets) >= 5

            await eventually(got_packets)
            version, flags, _seq, sent_ms, _ = PACKET.unpack_from(packets[0])
            assert version == 1 and flags == 1  # header pages first
            assert packets[0][PACKET.size :].startswith(b"OggS")
            seqs = [PACKET.unpack_from(p)[2] for p in packets]
            assert seqs == sorted(seqs) and sent_ms > 0
            assert [s["mount"] for s in hub.status()] == ["xa"]
        finally:
            await listener.disconnect()
            link_task.cancel()
            await asyncio.gather(link_task, return_exceptions=True)
        await hub.stop("xa")
        assert hub.status() == []


async def test_icecast_source_client_pushes_and_wrong_password_airs_nothing(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str
) -> None:
    settings = live_settings(tmp_path, mqtt_url, database_url, station_id, mqtt=False)
    async with running(settings) as station:
        hub = hub_of(station)
        port = station.app[SOURCE_SERVER].port
        await hub.start("studio", "icecast")

        code, err = await run_ffmpeg(
            "-re", "-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "libopus",
            "-f", "ogg", f"icecast://source:wrong-password@127.0.0.1:{port}/studio",
        )  # fmt: skip
        assert code != 0 and "401" in err
        assert station.app[SOURCE_SERVER].refused == 1
        assert [a.kind for a in hub.alerts] == ["auth"]
        assert hub.mounts["studio"].state in ("starting", "waiting")  # nothing aired from it

        url = hub.url_for("studio", "c-1")
        push = asyncio.create_task(
            run_ffmpeg(
                "-re",
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:duration=4",
                "-c:a",
                "libopus",
                "-f",
                "ogg",
                f"icecast://source:{SOURCE_PASSWORD}@127.0.0.1:{port}/studio",
            )
        )
        await eventually(lambda: hub.mounts["studio"].state == "on_source")
        status, data = await listen(url, 6, min_bytes=8_000)
        assert status == 200 and await max_volume_db(data, tmp_path) > -30
        code, err = await push
        assert code == 0, err[-2000:]
        # the client hung up: the mount keeps serving silence, then flags the dead source
        await eventually(lambda: hub.mounts["studio"].state == "fallback")
        await eventually(lambda: "dead" in [a.kind for a in hub.alerts])

        # the legacy SOURCE method (older BUTT/Mixxx, ffmpeg -legacy_icecast 1) works too
        legacy = asyncio.create_task(
            run_ffmpeg(
                "-re",
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:duration=4",
                "-c:a",
                "libopus",
                "-legacy_icecast",
                "1",
                "-f",
                "ogg",
                f"icecast://source:{SOURCE_PASSWORD}@127.0.0.1:{port}/studio",
            )
        )
        await eventually(lambda: hub.mounts["studio"].state == "on_source" or legacy.done())
        code, err = await legacy
        assert code == 0 and hub.mounts["studio"].state == "on_source", err[-2000:]


async def _webm_chunks(tmp_path: Path) -> list[bytes]:
    path = tmp_path / "mic.webm"
    code, err = await run_ffmpeg(
        "-f", "lavfi", "-i", "sine=frequency=300:duration=3", "-c:a", "libopus",
        "-b:a", "32k", "-f", "webm", str(path),
    )  # fmt: skip
    assert code == 0, err
    data = path.read_bytes()
    return [data[i : i + 2000] for i in range(0, len(data), 2000)]


async def test_browser_microphone_websocket_needs_the_live_permission(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str
) -> None:
    settings = live_settings(tmp_path, mqtt_url, database_url, station_id, mqtt=False)
    async with running(settings) as station:
        hub = hub_of(station)
        await hub.start("mic", "browser")
        viewer = await user_with_token(station, "xem", Role.VIEWER)
        speaker = await user_with_token(station, "lan", Role.BROADCASTER)
        ws_url = f"{station.base_url}/live/mic/mic"
        chunks = await _webm_chunks(tmp_path)
        async with aiohttp.ClientSession() as http:
            async with http.get(ws_url) as refused:
                assert refused.status == 401
            bearer = {"Authorization": f"Bearer {viewer}"}
            async with http.get(ws_url, headers=bearer) as refused:
                assert refused.status == 403
            bearer = {"Authorization": f"Bearer {speaker}"}
            hostile = {**bearer, "Origin": "https://evil.example"}
            async with http.get(ws_url, headers=hostile) as refused:
                assert refused.status == 403

            heard = asyncio.create_task(listen(hub.url_for("mic", "c-9"), 8, min_bytes=6_000))
            async with http.ws_connect(ws_url, headers=bearer) as ws:
                for chunk in chunks:  # about 3 s of audio in ~40 MediaRecorder-sized chunks
                    await ws.send_bytes(chunk)
                    await asyncio.sleep(0.05)
                await eventually(lambda: hub.mounts["mic"].state == "on_source")
                await ws.send_str("stop")
            status, data = await heard
            assert status == 200 and await max_volume_db(data, tmp_path) > -30


async def test_console_api_starts_lists_and_stops_mounts(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str
) -> None:
    from tests.api_support import assert_problem, client

    settings = live_settings(tmp_path, mqtt_url, database_url, station_id, mqtt=False)
    async with running(settings) as station:
        viewer = await user_with_token(station, "xem", Role.VIEWER)
        speaker = await user_with_token(station, "lan", Role.BROADCASTER)
        async with client(station, speaker) as api, client(station, viewer) as watcher:
            status, body, _ = await api.call("POST", "/live", {"mount": "xa", "source": "browser"})
            assert status == 201 and body["state"] in ("starting", "waiting")
            assert body["listeners"] == 0
            status, body, _ = await api.call("POST", "/live", {"mount": "xa", "source": "icecast"})
            assert_problem(status, body, 409)
            tone = {"mount": "t", "source": "lavfi:amovie=/etc/passwd"}  # never over the API
            status, body, _ = await api.call("POST", "/live", tone)
            assert_problem(status, body, 422, "source")
            status, body, _ = await watcher.call(
                "POST", "/live", {"mount": "v", "source": "icecast"}
            )
            assert_problem(status, body, 403)
            status, body, _ = await watcher.call("GET", "/live")
            assert status == 200 and [m["mount"] for m in body["items"]] == ["xa"]
            status, body, _ = await watcher.call("GET", "/live/alerts")
            assert status == 200 and body["items"] == []
            status, _, _ = await api.call("DELETE", "/live/xa")
            assert status == 204
            status, body, _ = await api.call("DELETE", "/live/xa")
            assert_problem(status, body, 404)


async def test_cli_starts_and_stops_a_mount_on_the_running_station(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str
) -> None:
    from station.cli import main

    settings = live_settings(tmp_path, mqtt_url, database_url, station_id, mqtt=False)
    async with running(settings) as station:
        token = await user_with_token(station, "lan", Role.BROADCASTER)
        base = ["--url", station.base_url, "--token", token]

        def cli(*argv: str) -> int:
            return main(["live", *argv, *base])

        assert await asyncio.to_thread(cli, "start", "--mount", "xa", "--source", "icecast") == 0
        assert await asyncio.to_thread(cli, "status") == 0
        assert "xa" in hub_of(station).mounts
        assert await asyncio.to_thread(cli, "stop", "--mount", "xa") == 0
        assert await asyncio.to_thread(cli, "stop", "--mount", "xa") == 1
        assert hub_of(station).mounts == {}


async def test_push_source_is_chosen_over_the_api_and_the_cli(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str, capsys: Any
) -> None:
    """``push``: an Icecast source client or the console's microphone, whichever connects
    first; chosen like the other kinds (API with problem+json, CLI with a clear message)."""
    from station.cli import main
    from tests.api_support import assert_problem, client

    settings = live_settings(tmp_path, mqtt_url, database_url, station_id, mqtt=False)
    async with running(settings) as station:
        hub = hub_of(station)
        token = await user_with_token(station, "lan", Role.BROADCASTER)
        async with client(station, token) as api:
            status, body, _ = await api.call("POST", "/live", {"mount": "xa", "source": "push"})
            assert status == 201 and body["source"] == "push" and not body["source_connected"]
            status, body, _ = await api.call("POST", "/live", {"mount": "xb", "source": "pushy"})
            assert_problem(status, body, 422, "source")
            status, doc, _ = await api.call("GET", "/api/openapi.json")
        assert status == 200, doc
        schema = doc["components"]["schemas"]["LiveStart"]["properties"]["source"]
        assert "|push|" in schema["pattern"] and "push (" in schema["description"]
        # a source client pushes to it (the microphone could have, whichever came first)
        port = station.app[SOURCE_SERVER].port
        code, err = await run_ffmpeg(
            "-re", "-f", "lavfi", "-i", "sine=frequency=440:duration=3", "-c:a", "libopus",
            "-b:a", "32k", "-f", "ogg", f"icecast://source:{SOURCE_PASSWORD}@127.0.0.1:{port}/xa",
        )  # fmt: skip
        assert code == 0, err[-2000:]
        assert hub.mounts["xa"].state in ("on_source", "fallback")  # it got audio
        assert hub.mounts["xa"].bytes_encoded > 0

        base = ["--url", station.base_url, "--token", token]

        def cli(*argv: str) -> int:
            return main(["live", *argv, *base])

        assert await asyncio.to_thread(cli, "start", "--mount", "xc", "--source", "push") == 0
        assert hub.mounts["xc"].source == "push"
        capsys.readouterr()
        assert await asyncio.to_thread(cli, "start", "--mount", "xd", "--source", "pushy") == 2
        err = capsys.readouterr().err
        assert "unknown --source 'pushy'" in err and "push (" in err
        assert "xd" not in hub.mounts
