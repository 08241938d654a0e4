"""The CLI's calls to a running station over HTTPS (``http.tls_cert``/``tls_key``/``tls_ca``):
``loaxa stats`` and ``loaxa live ...`` find the station at ``http.base_url`` (``https://``) and
trust the commune's private CA from ``http.tls_ca``; without that CA they refuse the station's
certificate. ``loaxa sim --http-ca`` hands the CA to the simulated clusters."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from station import _keys as keys
from station.api import Role
from station.app import RunningStation, start_station
from station.cli import main
from tests.api_support import settings_for, user_with_token
from tests.tls_support import Pki, make_pki


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    """A commune CA and the station's certificate for 127.0.0.1, signed by it."""
    return make_pki(tmp_path / "tls", "loaxa CLI test CA")


@pytest.fixture
async def station(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str, pki: Pki
) -> AsyncIterator[RunningStation]:
    base = settings_for(tmp_path, mqtt_url, database_url, station_id)
    http = base.http.model_copy(update={"tls_cert": pki.cert, "tls_key": pki.key})
    running = await start_station(base.model_copy(update={"http": http}))
    try:
        yield running
    finally:
        await running.stop()


def _config(tmp_path: Path, station: RunningStation, pki: Pki, *, with_ca: bool) -> str:
    """The technician's config file: the station's HTTP section, no URL given anywhere."""
    port = urlsplit(station.base_url).port
    settings = station.app[keys.SETTINGS]
    path = tmp_path / ("with-ca.yaml" if with_ca else "without-ca.yaml")
    text = (
        f"station: {{id: {settings.station.id}}}\n"
        f"database: {{url: '{settings.database.url}'}}\n"
        f"http:\n  host: 127.0.0.1\n  port: {port}\n"
        f"  tls_cert: {pki.cert}\n  tls_key: {pki.key}\n"
    )
    if with_ca:
        text += f"  tls_ca: {pki.ca}\n"
    path.write_text(text, encoding="utf-8")
    return str(path)


async def test_stats_and_live_over_https_trust_the_configured_ca(
    station: RunningStation, pki: Pki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert station.base_url.startswith("https://127.0.0.1:")
    token = await user_with_token(station, "tech", Role.BROADCASTER)
    trusted = _config(tmp_path, station, pki, with_ca=True)

    def cli(*argv: str, config: str = trusted) -> int:
        return main([*argv, "-c", config, "--token", token])

    assert await asyncio.to_thread(cli, "stats") == 0
    assert "commands_sent: 0" in capsys.readouterr().out
    assert await asyncio.to_thread(cli, "live", "start", "--mount", "xa", "--source", "push") == 0
    assert await asyncio.to_thread(cli, "live", "status") == 0
    out = capsys.readouterr().out
    assert "xa" in out and "push" in out
    assert await asyncio.to_thread(cli, "live", "stop", "--mount", "xa") == 0

    # The same station without its CA: the certificate is refused, the URL is https://.
    untrusted = _config(tmp_path, station, pki, with_ca=False)
    capsys.readouterr()
    assert await asyncio.to_thread(cli, "stats", config=untrusted) == 1
    out = capsys.readouterr().out
    assert f"not reachable at {station.base_url}/api/v1/stats" in out
    assert "CERTIFICATE_VERIFY_FAILED" in out
    assert await asyncio.to_thread(cli, "live", "status", config=untrusted) == 1
    out = capsys.readouterr().out
    assert "CERTIFICATE_VERIFY_FAILED" in out and station.base_url in out


def test_an_unreadable_ca_is_named(
    tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str], pki: Pki
) -> None:
    config = tmp_path / "loaxa.yaml"
    config.write_text(
        f"database: {{url: '{database_url}'}}\n"
        f"http:\n  tls_cert: {pki.cert}\n  tls_key: {pki.key}\n  tls_ca: {pki.key}\n",
        encoding="utf-8",
    )
    assert main(["stats", "-c", str(config)]) == 1
    assert f"cannot load http.tls_ca {pki.key}" in capsys.readouterr().out
    assert main(["live", "status", "-c", str(config)]) == 1
    assert f"cannot load http.tls_ca {pki.key}" in capsys.readouterr().out


def test_sim_hands_its_http_ca_to_the_clusters(
    monkeypatch: pytest.MonkeyPatch, pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    import simulator

    seen: dict[str, Any] = {}

    async def fake_run_simulator(*args: Any, **kwargs: Any) -> None:
        seen.update(kwargs)

    monkeypatch.setattr(simulator, "run_simulator", fake_run_simulator)
    assert main(["sim", "--count", "1", "--http-ca", str(pki.ca)]) == 0
    assert seen["http_ca"] == str(pki.ca)
    assert main(["sim", "--count", "1"]) == 0
    assert seen["http_ca"] is None
    missing = pki.ca.parent / "missing.pem"
    assert main(["sim", "--http-ca", str(missing)]) == 2
    assert f"--http-ca {missing}: no such file" in capsys.readouterr().err
