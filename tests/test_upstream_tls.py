"""HttpUpstream verifies TLS: a server with a certificate from an unknown CA is refused, and
``upstream.ca_file`` makes that CA trusted."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from simulator.provincial import ProvincialServer
from station.upstream import Envelope, HttpUpstream, UpstreamUnavailable
from tests.tls_support import make_pki

TOKEN = "tls-token"


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[tuple[ProvincialServer, Path]]:
    pki = make_pki(tmp_path, "loaxa test CA")
    ca_file, cert_file, key_file = pki.ca, pki.cert, pki.key
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    server = ProvincialServer(token=TOKEN, ssl_context=context)
    await server.start()
    try:
        yield server, ca_file
    finally:
        await server.stop()


def _envelope() -> Envelope:
    return Envelope("report:tls", "report", "xa-test", datetime.now(UTC), {"ok": True})


async def test_unknown_ca_is_refused(tls_server: tuple[ProvincialServer, Path]) -> None:
    server, _ = tls_server
    assert server.base_url.startswith("https://")
    async with HttpUpstream(server.base_url, "xa-test", TOKEN, timeout_s=5) as adapter:
        with pytest.raises(UpstreamUnavailable, match=r"[Cc]ertificate"):
            await adapter.push(_envelope())
    assert server.order == []


async def test_ca_file_makes_it_trusted(tls_server: tuple[ProvincialServer, Path]) -> None:
    server, ca_file = tls_server
    async with HttpUpstream(
        server.base_url, "xa-test", TOKEN, timeout_s=5, ca_file=ca_file
    ) as adapter:
        assert await adapter.push(_envelope()) is True
        assert await adapter.push(_envelope()) is False  # the same key again: a duplicate
        page = await adapter.pull_bulletins("")
    assert server.order == ["report:tls"] and server.duplicates == 1
    assert page.bulletins == [] and page.cursor == "0"
