"""The station's own HTTPS (``http.tls_cert``/``tls_key``/``tls_ca``): API, console cookie and
media over TLS; a cluster provisioned with the station's CA plays, one without it refuses the
download (``download_failed``); plain HTTP to the TLS port fails; bad key files stop the start
with a message naming the key. Certificates are made here, with ``cryptography``."""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from sqlmodel import select

from devices.protocol import MediaRef
from simulator import SimulatedFleet
from simulator._media import DownloadError, client_ssl_context, fetch, make_http_session
from station import _keys as keys
from station._delivery import signed_path
from station._services import add_media, create_programme, schedule_once
from station.api import create_user
from station.api._auth import SESSION_COOKIE
from station.app import RunningStation, start_station
from station.config import ConfigError, Settings, load_config
from station.db import MediaItem, PlayRecord, PlayRecordStatus, Role
from station.media import synthesize_programme
from tests.api_support import PASSWORD, Client, settings_for, user_with_token
from tests.tls_support import Pki, make_pki


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    """A commune CA and the station's certificate for 127.0.0.1, signed by it."""
    return make_pki(tmp_path / "tls")


def _tls_settings(base: Settings, **http: object) -> Settings:
    return base.model_copy(update={"http": base.http.model_copy(update=http)})


@pytest.fixture
def tls_settings(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str, pki: Pki
) -> Settings:
    base = settings_for(tmp_path, mqtt_url, database_url, station_id)
    return _tls_settings(base, tls_cert=pki.cert, tls_key=pki.key, tls_ca=pki.ca)


@pytest.fixture
async def station(tls_settings: Settings) -> AsyncIterator[RunningStation]:
    running = await start_station(tls_settings)
    try:
        yield running
    finally:
        await running.stop()


def _trusting(pki: Pki) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(pki.ca))


async def _media_item(station: RunningStation, settings: Settings, tmp_path: Path) -> MediaItem:
    source = tmp_path / "in.wav"
    await synthesize_programme(source, 1.0)
    app = station.app
    item, _ = await add_media(
        app[keys.SESSIONS], app[keys.MEDIA_STORE], app[keys.MEDIA_WORKER], settings, source, "t"
    )
    return item


# --------------------------------------------------------------------------- configuration


def test_cert_without_key_is_a_config_error(tmp_path: Path, pki: Pki) -> None:
    (tmp_path / "loaxa.yaml").write_text(f"http:\n  tls_cert: {pki.cert}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="tls_key is required"):
        load_config(tmp_path / "loaxa.yaml", environ={})


def test_tls_paths_are_relative_to_the_file_and_base_url_is_https(pki: Pki) -> None:
    config = pki.ca.parent / "loaxa.yaml"
    text = "http:\n  port: 8443\n  tls_cert: station.pem\n  tls_key: station.key\n"
    text += "  tls_ca: ca.pem\n"
    config.write_text(text, encoding="utf-8")
    http = load_config(config, environ={}).http
    assert (http.tls_cert, http.tls_key, http.tls_ca) == (pki.cert, pki.key, pki.ca)
    assert http.tls and http.base_url == "https://127.0.0.1:8443"
    config.write_text(text + "  public_base_url: http://x.example\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="public_base_url must be https://"):
        load_config(config, environ={})


async def test_missing_key_file_stops_the_start_naming_the_key(
    tls_settings: Settings, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere.key"
    with pytest.raises(ConfigError) as err:
        await start_station(_tls_settings(tls_settings, tls_key=missing))
    assert "http.tls_key" in str(err.value) and str(missing) in str(err.value)


async def test_key_of_another_certificate_stops_the_start(tls_settings: Settings, pki: Pki) -> None:
    with pytest.raises(ConfigError, match=r"http\.tls_key: .* does not match"):
        await start_station(_tls_settings(tls_settings, tls_key=pki.other_key))


async def test_a_certificate_in_place_of_the_key_is_named(tls_settings: Settings, pki: Pki) -> None:
    with pytest.raises(ConfigError, match=r"http\.tls_key: .* is not a PEM private key"):
        await start_station(_tls_settings(tls_settings, tls_key=pki.cert))


# --------------------------------------------------------------------------- serving HTTPS


async def test_api_and_console_cookie_over_https(station: RunningStation, pki: Pki) -> None:
    assert station.base_url.startswith("https://127.0.0.1:")
    await create_user(station.app[keys.SESSIONS], "ops", Role.ADMIN, PASSWORD)
    jar = aiohttp.CookieJar(unsafe=True)
    connector = aiohttp.TCPConnector(ssl=_trusting(pki))
    async with aiohttp.ClientSession(cookie_jar=jar, connector=connector) as http:
        async with http.get(f"{station.base_url}/healthz") as response:
            assert response.status == 200
            assert response.url.scheme == "https"
        api = Client(http, station.base_url)
        login = {"username": "ops", "password": PASSWORD}
        status, body, response = await api.call("POST", "/auth/login", login)
        assert status == 200, body
        session = response.cookies[SESSION_COOKIE]
        assert session["secure"] and session["httponly"], response.headers.getall("Set-Cookie")
        api.csrf = body["csrf_token"]
        status, body, _ = await api.call("GET", "/auth/me")  # the session works over HTTPS
        assert status == 200 and body["username"] == "ops", body


async def test_plain_http_to_the_tls_port_fails(station: RunningStation) -> None:
    plain = station.base_url.replace("https://", "http://")
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientError):
            async with http.get(f"{plain}/healthz") as response:
                await response.read()


async def test_media_over_https_trusted_only_with_the_ca(
    station: RunningStation, tls_settings: Settings, tmp_path: Path, pki: Pki
) -> None:
    item = await _media_item(station, tls_settings, tmp_path)
    url = station.base_url + signed_path(station.app, "C1", item.sha256, item.codec)
    ref = MediaRef(
        media_id="m1", url=url, sha256=item.sha256, size=item.size_bytes, duration_ms=1000
    )
    trusted = make_http_session(await asyncio.to_thread(client_ssl_context, str(pki.ca)))
    async with trusted:
        assert await fetch(trusted, ref) == item.size_bytes
        async with trusted.get(url) as response:
            body = await response.read()
        assert hashlib.sha256(body).hexdigest() == item.sha256
    async with make_http_session() as untrusted:  # only the system's CAs
        with pytest.raises(DownloadError) as err:
            await fetch(untrusted, ref)
    assert err.value.code == "download_failed"
    assert "TLS certificate not trusted" in err.value.detail


def test_a_bad_ca_for_the_simulator_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot load the station's CA"):
        client_ssl_context(str(tmp_path / "missing-ca.pem"))


# --------------------------------------------------------------------------- clusters


async def _register(api: Client, cluster_id: str) -> dict[str, object]:
    status, body, _ = await api.call("POST", "/fleet/clusters", {"id": cluster_id})
    assert status == 201, body
    bundle: dict[str, object] = body["bundle"]
    return bundle


async def test_provisioned_cluster_plays_over_https_and_one_without_the_ca_refuses(
    station: RunningStation, tls_settings: Settings, tmp_path: Path, pki: Pki, station_id: str
) -> None:
    app = station.app
    sessions = app[keys.SESSIONS]
    token = await user_with_token(station, "tech", Role.ADMIN)
    connector = aiohttp.TCPConnector(ssl=_trusting(pki))
    async with aiohttp.ClientSession(connector=connector) as http:
        api = Client(http, station.base_url, token)
        good, bad = await _register(api, "TLS1"), await _register(api, "TLS2")
    ca_pem = good["ca_pem"]
    assert isinstance(ca_pem, str) and pki.ca.read_text().strip() in ca_pem
    assert str(good["http_base_url"]).startswith("https://")

    item = await _media_item(station, tls_settings, tmp_path)
    assert item.id is not None
    programme = await create_programme(sessions, "TLS", [item.id])
    assert programme.id is not None
    mqtt = station.runtime.mqtt_url
    creds = {str(b["cluster_id"]): (str(b["username"]), str(b["password"])) for b in (good, bad)}
    async with (
        SimulatedFleet(mqtt, station_id, ["TLS1"], credentials=creds, http_ca=ca_pem) as fleet,
        SimulatedFleet(mqtt, station_id, ["TLS2"], credentials=creds) as refusing,
    ):
        lead = tls_settings.scheduler.dispatch_lead_s
        start_at = datetime.now(UTC) + timedelta(seconds=lead + 2)
        await schedule_once(sessions, programme.id, start_at, {"all": True})
        await app[keys.DISPATCHER].reconcile()
        async with asyncio.timeout(40):
            while True:
                async with sessions() as db:
                    records = {r.cluster_id: r for r in (await db.exec(select(PlayRecord))).all()}
                done = {PlayRecordStatus.FINISHED, PlayRecordStatus.FAILED}
                if len(records) == 2 and all(r.status in done for r in records.values()):
                    break
                await asyncio.sleep(0.2)
        assert app[keys.DISPATCHER].forwarder.prefetches_sent >= 1
        played = fleet.clusters["TLS1"]
        assert played.cache.downloads == 1 and item.sha256 in played.cache
        assert refusing.clusters["TLS2"].counters.downloads_failed >= 1
        assert not refusing.clusters["TLS2"].cache.sizes

    ok, refused = records["TLS1"], records["TLS2"]
    assert ok.status == PlayRecordStatus.FINISHED, ok
    assert ok.started_at is not None and ok.played_ms and ok.played_ms >= 900
    assert refused.status == PlayRecordStatus.FAILED, refused
    assert refused.error_code == "download_failed"
