"""Live refusals carry their own problem code, and the console says them.

Each refusal of the live hub (a bad mount name or source, a mount already live or not live, a
push to a mount that waits for another kind of source or already has one, the hub shutting
down) brings a registered code and its parameters: the API forwards them, the browser
microphone's WebSocket tells a ``loaxa.mic`` client in the WebSocket itself (a browser cannot
read a refused handshake), and the live screen says it in Vietnamese.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from browser_support import CHROMIUM

from station import _keys as keys
from station.api._problems import CODES
from station.api.endpoints.live import _live_refusal
from station.db import Role
from station.live import LiveError, LiveHub, MountConfig
from station.web._i18n import Catalogue
from tests.api_support import PASSWORD, assert_problem, client, running, user_with_token
from tests.live_support import FFMPEG, hub_of, live_settings

LIVE_CODES = (
    "live_already_live", "live_not_live", "live_mount_invalid", "live_relay_url_invalid",
    "live_device_invalid", "live_source_unsupported", "live_wrong_source", "live_source_busy",
    "live_unavailable",
)  # fmt: skip


def test_live_codes_are_registered_and_said_in_both_languages() -> None:
    strings = Catalogue.load().strings
    for code in LIVE_CODES:
        assert code in CODES, code
        assert strings["vi"][f"code.{code}"] != strings["en"][f"code.{code}"], code
    said = strings["vi"]["code.live_wrong_source"].format(mount="xa", source_kind="icecast")
    assert said.startswith("Kênh xa lấy tiếng từ nguồn phát icecast")
    assert "tiếp âm" in strings["vi"]["code.live_relay_url_invalid"]
    assert "micro" in strings["vi"]["code.live_source_busy"]


async def test_the_hub_says_what_it_refuses() -> None:
    hub = LiveHub(FFMPEG, MountConfig(), lambda m, c: f"/live/{m}?c={c}", "t")
    refusals: list[tuple[LiveError, int, str, dict[str, Any]]] = []

    async def refused(call: Any) -> LiveError:
        with pytest.raises(LiveError) as caught:
            await call
        return caught.value

    cases = [
        (hub.start("Bad Name!", "browser"), 422, "live_mount_invalid", {"mount": "Bad Name!"}),
        (hub.start("xa", "relay:ftp://radio.example/live"), 422, "live_relay_url_invalid", {}),
        (hub.start("xa", "alsa:"), 422, "live_source_unsupported", {}),
        (hub.stop("xa"), 404, "live_not_live", {"mount": "xa"}),
        (hub.open_push("xa", "icecast"), 404, "live_not_live", {"mount": "xa"}),
    ]
    for call, status, code, params in cases:
        refusals.append((await refused(call), status, code, params))
    await hub.stop_all()
    closed = await refused(hub.hold("studio", "push", object()))
    refusals.append((closed, 503, "live_unavailable", {}))
    for error, status, code, params in refusals:
        assert (error.status, error.code, error.params) == (status, code, params), error
    assert not hub.mounts  # nothing started on the way

    # The API forwards the code and its parameters; a refusal without a code is still said
    # by its status.
    problem = _live_refusal(closed, "xa")
    assert problem.code == "live_unavailable" and problem.extra == {"mount": "xa"}
    wrong = LiveError(404, "x", code="live_wrong_source", mount="xa", source_kind="relay")
    assert _live_refusal(wrong, "xa").extra == {"mount": "xa", "source_kind": "relay"}
    assert _live_refusal(LiveError(409, "busy"), "xa").code == "live_already_live"
    assert _live_refusal(LiveError(422, "bad"), "xa").code == "live_bad_source"


async def _first_message(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    message = await ws.receive()
    assert message.type == aiohttp.WSMsgType.TEXT, message
    body = json.loads(message.data)
    assert isinstance(body, dict)
    return body


async def test_api_and_microphone_refusals_carry_their_codes(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str
) -> None:
    settings = live_settings(tmp_path, mqtt_url, database_url, station_id, mqtt=False)
    async with running(settings) as station:
        hub = hub_of(station)
        speaker = await user_with_token(station, "lan", Role.BROADCASTER)
        viewer = await user_with_token(station, "xem", Role.VIEWER)
        async with client(station, speaker) as api:
            status, body, _ = await api.call("POST", "/live", {"mount": "xa", "source": "browser"})
            assert status == 201, body
            status, body, _ = await api.call("POST", "/live", {"mount": "xa", "source": "browser"})
            assert_problem(status, body, 409)
            assert body["code"] == "live_already_live" and body["mount"] == "xa"
            assert body["detail"] == "mount xa is already live"  # English for API clients

            status, body, _ = await api.call("DELETE", "/live/nowhere")
            assert_problem(status, body, 404)
            assert body["code"] == "live_not_live" and body["mount"] == "nowhere"

            refusals = [
                ({"mount": "Xa Đông", "source": "browser"}, "mount", "live_mount_invalid"),
                ({"mount": "vov", "source": "relay:ftp://radio.example/vov1"}, "source",
                 "live_relay_url_invalid"),
                ({"mount": "vov", "source": "relay:rtmp://radio.example/vov1"}, "source",
                 "live_relay_url_invalid"),
                ({"mount": "hoi", "source": "alsa:hw 0"}, "source", "live_device_invalid"),
                ({"mount": "t", "source": "lavfi:amovie=/etc/passwd"}, "source",
                 "live_source_unsupported"),
                ({"mount": "t", "source": "browser\n"}, "source", "live_source_unsupported"),
            ]  # fmt: skip
            for start, field, code in refusals:
                status, body, _ = await api.call("POST", "/live", start)
                assert_problem(status, body, 422, field)
                assert body["code"] == code, (start, body)
            status, body, _ = await api.call("POST", "/live", {"mount": "Xa Đông", "source": "x"})
            assert body["code"] == "live_mount_invalid" and body["mount"] == "Xa Đông"
            assert set(hub.mounts) == {"xa"}

        await hub.start("enc", "icecast")  # an encoder's mount: the microphone is refused
        bearer = {"Authorization": f"Bearer {speaker}"}
        base = station.base_url
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(f"{base}/live/enc/mic", headers=bearer,
                                       protocols=("loaxa.mic",)) as ws:  # fmt: skip
                body = await _first_message(ws)
                assert body["code"] == "live_wrong_source" and body["status"] == 404
                assert body["mount"] == "enc" and body["source_kind"] == "icecast"
                assert (await ws.receive()).type == aiohttp.WSMsgType.CLOSE
                assert ws.close_code == 4404
            # A client without the subprotocol gets the problem over HTTP, code included.
            async with http.get(f"{base}/live/enc/mic", headers=bearer) as answer:
                assert answer.status == 404
                body = await answer.json(content_type=None)
                assert body["code"] == "live_wrong_source" and body["source_kind"] == "icecast"

            # Someone talks on xa: a second microphone is told the mount is busy.
            async with http.ws_connect(f"{base}/live/xa/mic", headers=bearer,
                                       protocols=("loaxa.mic",)) as talking:  # fmt: skip
                assert await _first_message(talking) == {"ready": True, "mount": "xa"}
                async with http.ws_connect(f"{base}/live/xa/mic", headers=bearer,
                                           protocols=("loaxa.mic",)) as second:  # fmt: skip
                    body = await _first_message(second)
                    assert body["code"] == "live_source_busy" and body["mount"] == "xa"
                    assert (await second.receive()).type == aiohttp.WSMsgType.CLOSE
                    assert second.close_code == 4409
                await talking.send_str("stop")

            watcher = {"Authorization": f"Bearer {viewer}"}
            async with http.get(f"{base}/live/xa/mic", headers=watcher) as answer:
                assert answer.status == 403
                body = await answer.json(content_type=None)
                assert body["code"] == "role_forbidden" and body["role"] == "viewer"
            async with http.get(f"{base}/live/xa/mic") as answer:
                assert answer.status == 401
                assert (await answer.json(content_type=None))["code"] == "login_required"


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")
async def test_the_live_screen_says_why_the_microphone_is_refused(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str, browser: Any
) -> None:
    from playwright.async_api import expect
    from test_web_browser import DESKTOP, console_page, log_in, shot

    from station.api import create_user

    settings = live_settings(tmp_path, mqtt_url, database_url, station_id, mqtt=False)
    async with running(settings) as station:
        hub = hub_of(station)
        await create_user(station.app[keys.SESSIONS], "hoa", Role.BROADCASTER, PASSWORD)
        await hub.start("studio-2", "icecast")  # the studio's encoder feeds this mount
        async with console_page(browser, station, DESKTOP, expected=("409",)) as page:
            await log_in(page, "hoa")
            await page.get_by_role("link", name="Phát trực tiếp").click()
            await page.locator("#live-mount").fill("studio-2")
            talk = page.get_by_role("button", name="Giữ để nói")
            await talk.click()
            state = page.locator("#live-state")
            await expect(state).to_have_text(
                "Kênh studio-2 lấy tiếng từ nguồn phát icecast, không nhận nguồn này. Hãy kết "
                "thúc kênh rồi mở lại với nguồn phù hợp, hoặc chọn kênh khác."
            )
            await expect(state).to_have_class("small error")
            await expect(talk).to_have_attribute("aria-pressed", "false")
            await shot(page, "82-live-wrong-source-vi")
            assert hub.mounts["studio-2"].source == "icecast"  # left as it was
