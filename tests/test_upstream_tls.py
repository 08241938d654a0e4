"""HttpUpstream verifies TLS: a server with a certificate from an unknown CA is refused, and
``upstream.ca_file`` makes that CA trusted."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from simulator.provincial import ProvincialServer
from station.upstream import Envelope, HttpUpstream, UpstreamUnavailable

TOKEN = "tls-token"


def _cert(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name | None,
    issuer_key: ec.EllipticCurvePrivateKey, ca: bool,
) -> x509.Certificate:  # fmt: skip
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        san = x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))])
        builder = builder.add_extension(san, critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[tuple[ProvincialServer, Path]]:
    ca_key, leaf_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = _cert("loaxa test CA", ca_key, None, ca_key, ca=True)
    leaf = _cert("127.0.0.1", leaf_key, ca.subject, ca_key, ca=False)
    ca_file, cert_file, key_file = tmp_path / "ca.pem", tmp_path / "c.pem", tmp_path / "k.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
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
